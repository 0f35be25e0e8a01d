"""The Starlette application: ranged GET/HEAD from the root, BITS_POST uploads into it, a cleanup task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

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
        except (namespace.Refused, OSError):
            return Response("not found\n", status_code=404, media_type="text/plain")
        return RangedFileResponse(path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_cleanup_loop(store, settings, clock))
        try:
            yield
        finally:
            task.cancel()

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=list(METHODS))], lifespan=lifespan)


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
