"""The server side of the BITS upload protocol: one handler a packet type, every answer an Ack (bits.md §4)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response

from bitscli import libc, protocol
from bitscli.clock import Clock
from bitscli.errors import HResult, http_status
from bitscli.server import namespace, notification
from bitscli.server.sessions import COMMITTED, OPEN, RECEIVED, Session, SessionStore
from bitscli.server.settings import ServerSettings

log = logging.getLogger("bitscli.serve")


def ack(
    status: int = 200, session_id: str | None = None, headers: dict[str, str] | None = None,
    error: int | None = None, context: int = protocol.CONTEXT_SERVER,
) -> Response:  # fmt: skip
    """An Ack: always BITS-Packet-Type and a Content-Length (0); error headers only when not 200/201."""
    out = {protocol.PACKET_TYPE: protocol.ACK}
    if session_id is not None:
        out[protocol.SESSION_ID] = session_id
    if error is not None and status not in (200, 201):
        out[protocol.ERROR_CODE] = protocol.hresult_text(error)
        out[protocol.ERROR_CONTEXT] = f"0x{context:x}"
    out.update(headers or {})
    return Response(b"", status_code=status, headers=out)


def bad_request(why: str, session_id: str | None = None) -> Response:
    log.info("400 to a BITS packet: %s", why)
    return ack(400, session_id, error=HResult.E_INVALIDARG)


class UploadHandler:
    def __init__(self, settings: ServerSettings, store: SessionStore, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._readers: dict[str, asyncio.Task[object]] = {}  # session id -> the request reading its body now
        self._taken_over: set[asyncio.Task[object]] = set()
        self.buffers = BufferBudget(settings.upload_buffer)
        self._swept_at = float("-inf")

    async def handle(self, request: Request, url_path: str, user: str) -> Response:
        kind = protocol.packet_type(request.headers)
        if kind is None:
            return bad_request(f"no {protocol.PACKET_TYPE} header")
        if kind == protocol.PING:
            return ack(200)
        if kind == protocol.CREATE_SESSION:
            return await self._create(request, url_path, user)
        if kind not in (protocol.FRAGMENT, protocol.CLOSE_SESSION, protocol.CANCEL_SESSION):
            return bad_request(f"unknown packet type {kind!r}")  # an unexpected packet gets a 400 Ack
        session_id = request.headers.get(protocol.SESSION_ID)
        if not session_id:
            return bad_request(f"{kind} without {protocol.SESSION_ID}")
        self._take_over(session_id)
        async with self._locks[session_id]:  # one packet of a session at a time, whatever the client does
            session = self.store.get(session_id)
            if session is not None and self.store.expired(
                session, self.clock.now(), self.settings.session_timeout, self.settings.empty_session_timeout
            ):
                # Expiry is checked when a session is used, not only by the sweep: a fragment must not land in
                # a session the cleanup is about to delete.
                log.info("session %s: expired without progress", session_id)
                self.store.delete(session)
                session = None
            if session is None or session.user != user or session.url_path != url_path:
                self._locks.pop(session_id, None)
                return ack(500, session_id, error=HResult.BG_E_SESSION_NOT_FOUND)
            try:
                if kind == protocol.FRAGMENT:
                    return await self._fragment(request, session)
                self.store.delete(session)  # Close and Cancel both free everything; a committed file stays
                self._locks.pop(session_id, None)
                return ack(200, session_id)
            except OSError as exc:
                log.error("session %s: %s", session_id, exc)
                disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                code = HResult.ERROR_DISK_FULL if disk_full else HResult.E_FAIL
                return ack(503 if disk_full else 500, session_id, error=code)

    async def _create(self, request: Request, url_path: str, user: str) -> Response:
        try:
            target, clean_path = namespace.upload_target(self.settings.root, url_path)
        except namespace.Refused as why:
            log.warning("upload to %r refused: %s", url_path, why)
            return ack(403, error=HResult.E_ACCESSDENIED)
        except namespace.TooLong as why:  # no file can have this name: a client error the client must not retry
            log.warning("upload to %r refused: %s", url_path[:300], why)
            return ack(400, error=HResult.E_INVALIDARG)
        except FileNotFoundError:
            return ack(404, error=http_status(404))
        if not self.settings.uploads_enabled(clean_path):
            return ack(501, error=HResult.E_ACCESSDENIED)  # uploads are disabled on this directory
        if not protocol.supports_protocol(request.headers.get(protocol.SUPPORTED_PROTOCOLS)):
            return bad_request("no common protocol")
        if target.exists() and not self.settings.allow_overwrite:
            return ack(409, error=HResult.E_ACCESSDENIED)  # BITSAllowOverwrites is off
        now = self.clock.now()
        if self._full(user) and now - self._swept_at >= 1:  # expired sessions must not hold a place until the sweep
            self._swept_at = now
            self.store.cleanup(now, self.settings.session_timeout, self.settings.empty_session_timeout, strays=False)
        if self.store.open_for(user) >= self.settings.sessions_per_user:
            return ack(503, error=HResult.ERROR_TOO_MANY_SESS)  # BITSNumberOfSessionsLimit: free one and retry later
        dropped = None
        if len(self.store) >= self.settings.max_sessions:
            # A flood of Create-Sessions from many addresses must not lock everyone out until they expire: the
            # oldest session that never received a byte makes room (its client, if any, starts another).
            dropped = self.store.oldest_empty()
            if dropped is None:
                log.warning("the server holds %d sessions (--max-sessions): a new one was refused", len(self.store))
                return ack(503, error=HResult.ERROR_TOO_MANY_SESS)
            log.warning("the server holds %d sessions (--max-sessions): the oldest empty one was dropped",
                        len(self.store))  # fmt: skip
            self.store.forget(dropped)
        name = request.headers.get(protocol.CONTENT_NAME)
        session = self.store.new(target, clean_path, user, now, name)
        try:  # files are made on a worker thread: on a slow disk a flood of these held up every upload
            await anyio.to_thread.run_sync(_make_files, self.store, session, dropped)
        except OSError as exc:  # a full disk (or quota) while the session's files are made: the client retries
            self.store.forget(session)
            log.error("create-session for %s: %s", clean_path, exc)
            disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            return ack(503 if disk_full else 500, error=HResult.ERROR_DISK_FULL if disk_full else HResult.E_FAIL)
        headers = {protocol.PROTOCOL: protocol.PROTOCOL_GUID, "Accept-Encoding": "Identity"}
        if self.settings.host_id:
            headers[protocol.HOST_ID] = self.settings.host_id
            headers[protocol.HOST_ID_FALLBACK] = str(self.settings.host_id_fallback)
        log.info("session %s: upload to %s by %s", session.id, clean_path, user)
        return ack(200, session.id, headers)

    def _full(self, user: str) -> bool:
        settings = self.settings
        return self.store.open_for(user) >= settings.sessions_per_user or len(self.store) >= settings.max_sessions

    async def _fragment(self, request: Request, session: Session) -> Response:
        sid = session.id
        try:
            first, last, total = protocol.fragment_range(request.headers.get("Content-Range"))
        except protocol.ProtocolViolation as why:
            return bad_request(str(why), sid)
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity":
            return bad_request(f"Content-Encoding {encoding} (only identity is supported)", sid)
        length = last - first + 1
        if request.headers.get("Content-Length") != str(length):
            return bad_request("Content-Length does not match Content-Range", sid)
        if self.settings.max_upload_size is not None and total > self.settings.max_upload_size:
            return ack(413, sid, error=HResult.BG_E_TOO_LARGE)  # the whole upload is over the limit: fatal
        if length > self.settings.max_fragment_size:
            return ack(413, sid)  # only this fragment is too big: the client shrinks its fragments
        if session.total is not None and total != session.total:
            return bad_request(f"the total changed from {session.total} to {total}", sid)
        if session.total is None:
            session = self.store.update(session, total=total)
        if session.state != OPEN:
            return await self._repeat(request, session, last)
        received = self.store.received(session)
        if first > received:  # a gap: say where to go on from (the 416 rule)
            return ack(416, sid, {protocol.RECEIVED_RANGE: str(received)})
        log.info("session %s: receiving bytes %d-%d/%d", sid, first, last, total)
        try:
            with self._reading(sid), self.buffers.block_size(length) as block_size:
                received = await _store_body(request, session.data, first, length, received, block_size)
        except (ClientDisconnect, TakenOver):
            self.store.update(session, progress_at=self.clock.now())  # bytes kept so far count as progress
            return ack(400, sid, {"Connection": "close"}, error=HResult.E_INVALIDARG)
        except ValueError as why:
            return bad_request(str(why), sid)
        session = self.store.update(session, progress_at=self.clock.now())
        if received < total:
            return ack(200, sid, {protocol.RECEIVED_RANGE: str(received)})
        session = self.store.update(session, state=RECEIVED)
        return await self._finish(request, session)

    def _take_over(self, session_id: str) -> None:
        """A newer packet of a session stops the request still reading that session's body: its client has
        most likely given up on it (a dead laptop, a NAT timeout), and the session's lock must not wait on it."""
        reader = self._readers.get(session_id)
        if reader is not None and reader is not asyncio.current_task() and reader not in self._taken_over:
            log.info("session %s: a new packet takes over from a request still sending its body", session_id)
            self._taken_over.add(reader)
            reader.cancel()

    @contextlib.contextmanager
    def _reading(self, session_id: str) -> Iterator[None]:
        """Mark the current request as reading the session's body; a take-over ends the read as TakenOver."""
        task = asyncio.current_task()
        assert task is not None
        self._readers[session_id] = task
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._taken_over:
                raise
            self._taken_over.discard(task)
            task.uncancel()
            raise TakenOver() from None
        finally:
            if self._readers.get(session_id) is task:
                del self._readers[session_id]

    async def _repeat(self, request: Request, session: Session, last: int) -> Response:
        """A fragment after every byte arrived (the client lost our Ack): never stored twice."""
        try:
            with self._reading(session.id):
                async for _ in request.stream():
                    pass
        except (ClientDisconnect, TakenOver):
            return ack(400, session.id, {"Connection": "close"}, error=HResult.E_INVALIDARG)
        if session.state == RECEIVED and last == (session.total or 0) - 1:  # the total is set by now
            return await self._finish(request, session)  # the application had not accepted it yet: try again
        return self._final_ack(request, session)

    async def _finish(self, request: Request, session: Session) -> Response:
        """Every byte is here: make it durable, then store it or hand it to the notification."""
        await anyio.to_thread.run_sync(_fsync, session.data)
        if self.settings.notification_type:
            reply = self.store.reply_path(session)
            answer = await anyio.to_thread.run_sync(
                notification.notify, self.settings, session.data, reply, str(request.url)
            )
            if not answer.ok:
                log.warning("session %s: %s", session.id, answer.message)
                return ack(answer.status, session.id, error=http_status(answer.status),
                           context=protocol.CONTEXT_APPLICATION)  # fmt: skip
            reply_url = answer.static_reply_url
            if answer.reply_file and not reply_url:
                reply_url = str(request.base_url).rstrip("/") + namespace.REPLY_PREFIX + session.id.strip("{}")
            session = self.store.update(session, reply_url=reply_url, reply_file=answer.reply_file)
            if not answer.copy_to_destination:
                self.store.update(session, state=COMMITTED)
                return self._final_ack(request, session)
        try:
            _publish(session.data, Path(session.target), self.settings.allow_overwrite)
        except FileExistsError:
            return ack(409, session.id, error=HResult.E_ACCESSDENIED)
        session = self.store.update(session, state=COMMITTED)
        log.info("session %s: %s stored (%d bytes)", session.id, session.url_path, session.total)
        return self._final_ack(request, session)

    def _final_ack(self, request: Request, session: Session) -> Response:
        headers = {protocol.RECEIVED_RANGE: str(session.total)}
        if session.reply_url:
            headers[protocol.REPLY_URL] = session.reply_url
        return ack(200, session.id, headers)

    def reply(self, url_path: str) -> Response:
        """GET of a stored reply: the URL the last fragment's Ack named."""
        session = self.store.get("{" + url_path[len(namespace.REPLY_PREFIX) :].strip("/") + "}")
        if session is None or not session.reply_file or not os.path.isfile(session.reply_file):
            return Response("not found\n", status_code=404)
        return FileResponse(session.reply_file, media_type="application/octet-stream")


class TakenOver(Exception):
    """A newer packet of the same session took over while this request's body was still arriving."""


WRITE_BLOCK = 4 << 20  # the body arrives in pieces of up to 256 KiB; the disk gets fewer, larger writes
SMALLEST_BLOCK = 64 << 10  # what a fragment buffers when the shared budget is spent


class BufferBudget:
    """The bytes all fragments together may hold in memory (40 fragments at once once took 155 MB)."""

    def __init__(self, limit: int) -> None:
        self.free = limit

    @contextlib.contextmanager
    def block_size(self, length: int) -> Iterator[int]:
        """A fragment's write block: one filling and one being written are taken from the budget."""
        granted = min(self.free, 2 * min(WRITE_BLOCK, length))
        self.free -= granted
        try:
            yield max(SMALLEST_BLOCK, granted // 2)
        finally:
            self.free += granted


async def _store_body(request: Request, data: str, first: int, length: int, received: int, block_size: int) -> int:
    """Write the body's bytes past ``received`` (stored bytes are never overwritten); returns the new end.

    Blocks go to the disk on a helper thread while the next bytes arrive, one write in flight at a time, so the
    file only ever grows by whole contiguous blocks in order.
    """
    position = first
    fd = os.open(data, os.O_WRONLY)
    pending: asyncio.Future[None] | None = None
    block = bytearray()
    block_at = received
    loop = asyncio.get_running_loop()

    async def flush() -> None:
        nonlocal pending, block, block_at
        if pending is not None:
            await asyncio.shield(pending)  # a take-over cancels the read, never a write in progress
            pending = None
        if block:
            pending = loop.run_in_executor(None, _write_at, fd, block, block_at)
            block_at += len(block)
            block = bytearray()

    try:
        try:
            async for chunk in request.stream():
                end = position + len(chunk)
                if end > first + length:
                    raise ValueError("the body is longer than its Content-Range")
                if end > received:
                    block += memoryview(chunk)[max(0, received - position) :]
                    received = end
                    if len(block) >= block_size:
                        await flush()
                position = end
        finally:
            await flush()  # what arrived before a disconnect is kept: it is a contiguous prefix
            await flush()
    finally:
        os.close(fd)
    if position != first + length:
        raise ValueError("the body is shorter than its Content-Range")
    return received


def _make_files(store: SessionStore, session: Session, dropped: Session | None) -> None:
    if dropped is not None:
        store.delete_files(dropped)
    store.write_new(session)


def _write_at(fd: int, data: bytearray, offset: int) -> None:
    view = memoryview(data)
    start = offset
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
    libc.write_back_and_drop(fd, start, offset)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(data: str, target: Path, overwrite: bool) -> None:
    """The upload appears under its final name only now, complete (an atomic rename or link)."""
    if target.is_symlink():
        raise FileExistsError(str(target))
    if overwrite:
        os.replace(data, target)
    else:
        os.link(data, target)  # fails if the name exists: no overwrite, even in a race
        os.unlink(data)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
