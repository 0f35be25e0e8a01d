"""The Starlette application: ranged GET/HEAD from the root, BITS_POST uploads into it, a cleanup task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bitscli import protocol
from bitscli.clock import Clock, SystemClock
from bitscli.errors import HResult
from bitscli.server import namespace
from bitscli.server.auth import BasicAuth, read_password_file
from bitscli.server.sessions import SessionStore
from bitscli.server.settings import ServerSettings
from bitscli.server.uploads import UploadHandler, ack

log = logging.getLogger("bitscli.serve")
METHODS = ("GET", "HEAD", protocol.METHOD)


class RangedFileResponse(FileResponse):
    """Starlette answers Range and If-Range itself; 1 MiB chunks keep the per-chunk cost off large files."""

    chunk_size = 4 << 20


def create_app(settings: ServerSettings, clock: Clock | None = None) -> Starlette:
    clock = clock or SystemClock()
    store = SessionStore(settings.root)
    uploads = UploadHandler(settings, store, clock)
    auth = BasicAuth(read_password_file(settings.password_file)) if settings.password_file else None

    async def endpoint(request: Request) -> Response:
        url_path = request.scope["path"]  # percent-decoded once by the server
        if b"#" in request.scope.get("raw_path", b""):
            # RFC 3986 §3.5: a raw "#" starts a fragment, which a client never sends; it would end up in the name.
            if request.method == protocol.METHOD:
                return ack(400, error=HResult.E_INVALIDARG)
            return Response("not found\n", status_code=404, media_type="text/plain")
        if request.method == protocol.METHOD:
            user = _client_name(request)
            if auth is not None:
                authenticated = await auth.user(request.headers.get("Authorization"), user)
                if authenticated is None:  # uploads need a login when a password file is configured
                    return ack(401, headers={"WWW-Authenticate": 'Basic realm="bitscli"'},
                               error=HResult.E_ACCESSDENIED)  # fmt: skip
                user = authenticated
            return await uploads.handle(request, url_path, user)
        if url_path.startswith(namespace.REPLY_PREFIX):
            return uploads.reply(url_path)
        try:
            path = namespace.readable_file(settings.root, url_path)
            stat = os.stat(path)  # given to the response, its validators are known before it is sent
        except (namespace.Refused, OSError):
            return Response("not found\n", status_code=404, media_type="text/plain")
        response = RangedFileResponse(path, stat_result=stat)
        if _not_modified(request, response):
            return Response(status_code=304, headers={k: response.headers[k] for k in ("etag", "last-modified")})
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_cleanup_loop(store, settings, clock))
        try:
            yield
        finally:
            task.cancel()

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=list(METHODS))], lifespan=lifespan)


def _not_modified(request: Request, response: Response) -> bool:
    """RFC 9110 §13.1.2-3: If-None-Match (weak comparison) decides when present, else If-Modified-Since; a ranged
    request is answered in full or in part, never 304 (If-Range covers it)."""
    if "range" in request.headers:
        return False
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in none_match.split(",")}
        return "*" in tags or response.headers["etag"].removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(response.headers["last-modified"])
    except (TypeError, ValueError):
        return False


def _client_name(request: Request) -> str:
    return request.client.host if request.client else "anonymous"


async def _cleanup_loop(store: SessionStore, settings: ServerSettings, clock: Clock) -> None:
    """Expired sessions are deleted at start and then every cleanup interval, or every quarter of the shorter
    timeout when that is sooner (a 3-second timeout once waited 12 hours)."""
    shortest = min(settings.session_timeout, settings.empty_session_timeout)
    interval = min(settings.cleanup_interval, max(1.0, shortest / 4))
    while True:
        expired = store.cleanup(clock.now(), settings.session_timeout, settings.empty_session_timeout)
        if expired:
            log.info("cleanup: %d expired session(s) deleted", len(expired))
        await asyncio.sleep(interval)
