"""The client side of the BITS upload protocol: session, fragments, host id, reply, close (bits.md §4)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

import urllib3.util

from bitscli import protocol
from bitscli.errors import HResult, http_status
from bitscli.model import ErrorContext, UploadState
from bitscli.transfer.classify import TransferError, local_error, protocol_error, status_is_transient, transport_error
from bitscli.transfer.client import TRANSPORT_ERRORS, Client, Response
from bitscli.transfer.types import Stopped

log = logging.getLogger("bitscli.daemon")

FIRST_FRAGMENT = 1 << 20
MAX_FRAGMENT = 64 << 20  # streamed from the file, never held whole; reference servers accept up to 100 MiB
READ_CHUNK = 256 << 10  # a stop is noticed between reads, even inside a fragment on a slow link
MIN_FRAGMENT = 4096
FRAGMENT_SECONDS = 1.0  # fragments grow until one takes about this long, so a stop waits at most that
MAX_STALLS = 3  # Acks in a row that move the offset nowhere before we call the server broken
MAX_REGRESSIONS = 3  # times a server may go back on bytes it acknowledged before we call it broken
LAST_ACK_SECONDS = 330.0  # the last Ack waits for the server application, which has 5 minutes (bits.md §4)


class _ShortRead(Exception):
    """The local file ended before the fragment did: it shrank under us."""


class SessionLost(Exception):
    """BG_E_SESSION_NOT_FOUND: the server forgot the session; a new one starts from byte 0."""


class LikelySessionLost(SessionLost):
    """After a fragment's connection broke, the session's next fragments got 5xx answers without a BITS error
    code, twice: some servers answer a session they lost that way, so a new one is started (once)."""


@dataclass
class Upload:
    url: str
    local: str
    reply: bool  # an upload-reply job: fetch BITS-Reply-URL before closing
    headers: Mapping[str, str] = field(default_factory=dict)
    request_options: Mapping[str, Any] = field(default_factory=dict)
    timeout: tuple[float, float] = (30.0, 60.0)
    size: int | None = None  # the file's size when it was added to the job: a different one is a changed file


class Events(Protocol):
    """How the engine reports; each call is saved in the queue before the engine goes on."""

    def save(self, state: UploadState, offset: int | None = None, size: int | None = None) -> None: ...

    def stop_requested(self) -> bool: ...

    def now(self) -> float: ...

    def pace(self, nbytes: int) -> int:
        """``nbytes`` were just sent or received: wait while they are ahead of the job's rate; the next size."""
        ...


def local_stamp(path: str) -> tuple[str, int]:
    """What identifies this version of the local file (size, mtime, inode), and its size."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise local_error(exc, path) from None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}", st.st_size


def local_changed(path: str) -> TransferError:
    return TransferError(
        f"the file being uploaded changed during the upload: {path}", code=HResult.BG_E_LOCAL_FILE_CHANGED,
        context=ErrorContext.LOCAL_FILE, transient=False,
    )  # fmt: skip


def send_file(client: Client, up: Upload, state: UploadState, offset: int, events: Events) -> UploadState:
    """Upload from ``offset`` (the server's last acknowledged byte) until the server has every byte."""
    stamp, size = local_stamp(up.local)
    # bits.md §2.7: a file that changed is BG_E_LOCAL_FILE_CHANGED and the job goes to ERROR. Before the first
    # byte that means a size other than the one addfile saw (an emptied file once went up as a "complete"
    # upload of nothing); after it, any change of size, time or inode. An empty upload is never sent.
    if not size or (up.size is not None and up.size > 0 and size != up.size):
        raise local_changed(up.local)
    if state.local_stamp is None:
        state = dataclasses.replace(state, local_stamp=stamp)
        events.save(state)
    elif state.local_stamp != stamp:
        raise local_changed(up.local)
    recreated = False
    while True:
        if state.session_id is not None and state.host_failing_since is not None:
            _ping_host(client, up, state, events)  # the host-id server failed before: is it back?
            state = dataclasses.replace(state, host_failing_since=None)
            events.save(state)
        if state.session_id is None:
            state = create_session(client, up, state, events)
            offset = 0
            events.save(state, 0, size)
        try:
            return _fragments(client, up, state, offset, size, stamp, events)
        except SessionLost as lost:
            guessed = isinstance(lost, LikelySessionLost)
            why = f"{lost}, taken as a lost session" if guessed else "the server lost the upload session"
            if recreated:
                raise protocol_error(f"{why}, twice in a row") from None
            log.info("upload %s: %s (%s); starting a new one", up.url, why, state.session_id)
            recreated = True
            state = dataclasses.replace(
                state, session_id=None, session_url=None, host_failing_since=None, after_break=0
            )  # fmt: skip


def create_session(client: Client, up: Upload, state: UploadState, events: Events) -> UploadState:
    headers = {
        protocol.SUPPORTED_PROTOCOLS: protocol.PROTOCOL_GUID,
        protocol.CONTENT_NAME: os.path.basename(up.local),
    }
    with packet(client, up, up.url, protocol.CREATE_SESSION, headers) as response:
        if response.status_code not in (200, 201):
            raise answer_error(response, up.url)
        session = response.headers.get(protocol.SESSION_ID)
        chosen = (response.headers.get(protocol.PROTOCOL) or "").strip().lower()
        if not protocol.valid_session_id(session):
            raise TransferError(  # a plain web server that accepts any method: it will never speak BITS
                f"{up.url} does not speak the BITS upload protocol (no {protocol.SESSION_ID} in its answer)",
                code=HResult.BG_E_INSUFFICIENT_HTTP_SUPPORT, context=ErrorContext.REMOTE_FILE, transient=False,
            )  # fmt: skip
        if chosen != protocol.PROTOCOL_GUID:
            raise TransferError(
                f"{up.url} chose protocol {chosen or 'none'}, not the BITS 1.5 upload protocol",
                code=HResult.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH, context=ErrorContext.REMOTE_FILE, transient=False,
            )  # fmt: skip
        host = (response.headers.get(protocol.HOST_ID) or "").strip()
        fallback = (response.headers.get(protocol.HOST_ID_FALLBACK) or "").strip()
    url = _with_host(up.url, host) if host else up.url
    new = dataclasses.replace(
        state, session_id=session, session_url=url, host_failing_since=None,
        host_fallback=float(fallback) if fallback.isdigit() else None,
    )  # fmt: skip
    if host:
        events.save(new)
        _ping_host(client, up, new, events)  # BITS pings the host-id server before the first fragment
    return new


def _with_host(url: str, host: str) -> str:
    parsed = urllib3.util.parse_url(url)
    name, _, port = host.partition(":") if host.count(":") == 1 else (host, "", "")
    return parsed._replace(host=name, port=int(port) if port.isdigit() else parsed.port).url


def _ping_host(client: Client, up: Upload, state: UploadState, events: Events) -> None:
    with packet(client, up, state.session_url or up.url, protocol.PING, {}, state=state, events=events) as response:
        if response.status_code != 200:
            raise answer_error(response, state.session_url or up.url)


def _fragments(
    client: Client, up: Upload, state: UploadState, offset: int, size: int, stamp: str, events: Events
) -> UploadState:  # fmt: skip
    url = state.session_url or up.url
    fragment = FIRST_FRAGMENT
    stalls = regressions = 0
    try:
        fd = os.open(up.local, os.O_RDONLY)
    except OSError as exc:
        raise local_error(exc, up.local) from None
    try:
        while offset < size:
            if events.stop_requested():
                raise Stopped
            length = min(fragment, size - offset)
            headers = {
                "Content-Range": protocol.format_range(offset, offset + length - 1, size),
                "Content-Type": "application/octet-stream",
            }
            if offset == 0:
                headers[protocol.CONTENT_NAME] = os.path.basename(up.local)
            started = time.monotonic()
            body = _file_body(fd, offset, length, events)
            last = offset + length == size
            wait = (up.timeout[0], max(up.timeout[1], LAST_ACK_SECONDS)) if last else up.timeout
            try:
                with packet(client, up, url, protocol.FRAGMENT, headers, body, state, events, length, wait) as response:
                    if local_stamp(up.local)[0] != stamp:
                        raise local_changed(up.local)  # changed while this fragment was read
                    state = _after_break(response, url, state, events)
                    ack = _fragment_ack(response, url, size, length)
            except _ShortRead:
                raise local_changed(up.local) from None
            if ack is None:
                fragment = max(MIN_FRAGMENT, length // 2)  # 413: the fragment is too big for the server; halve it
                continue
            status, acked, reply_url = ack
            stalls = stalls + 1 if acked <= offset else 0
            regressions += acked < offset
            if stalls >= MAX_STALLS or regressions > MAX_REGRESSIONS:
                raise protocol_error(f"{url} acknowledges no progress (stuck at byte {acked})")
            offset = acked  # 416 included: go on from where the server says it is
            if offset == size and reply_url:
                state = dataclasses.replace(state, reply_url=urljoin(url, reply_url.strip()))
            events.save(state, offset, size)
            took = time.monotonic() - started
            if status != 416 and took < FRAGMENT_SECONDS / 2:
                fragment = min(MAX_FRAGMENT, fragment * 2)
            elif took > FRAGMENT_SECONDS * 2:  # a slow link: smaller fragments keep a suspend quick
                fragment = max(MIN_FRAGMENT, fragment // 2)
    finally:
        os.close(fd)
    return state


def _after_break(response: Response, url: str, state: UploadState, events: Events) -> UploadState:
    """Watch for a lost session that the server does not name: a 5xx without a BITS error code (or with 0x1)
    after the session's connection broke is counted; the second one in a row is taken as a lost session."""
    plain = response.status_code >= 500 and protocol.error_code(response.headers) in (None, 1)
    if not state.after_break:
        return state
    if not plain:
        return dataclasses.replace(state, after_break=0)  # saved with the Ack's offset
    if state.after_break >= 2:
        raise LikelySessionLost(f"{url} answered {response.status_code} without a BITS error code twice after "
                                "the connection broke")  # fmt: skip
    state = dataclasses.replace(state, after_break=2)
    events.save(state)
    error = answer_error(response, url)
    raise TransferError(
        f"{error.message} (after a broken connection; if it comes again, the session is taken as lost)",
        code=error.code, context=error.context, transient=error.transient, retry_after=error.retry_after,
    )  # fmt: skip


def _fragment_ack(response: Response, url: str, size: int, length: int) -> tuple[int, int, str | None] | None:
    """A fragment's Ack: (status, the server's next offset, the reply URL); None asks for smaller fragments."""
    status = response.status_code
    code = protocol.error_code(response.headers)
    if status == 413 and code != HResult.BG_E_TOO_LARGE and length > MIN_FRAGMENT:
        return None
    # A BITS-Error-Code on a 200 is an error too (servers in the wild send one).
    if status not in (200, 201, 416) or (status != 416 and code):
        raise answer_error(response, url)
    try:
        acked = protocol.received_offset(response.headers.get(protocol.RECEIVED_RANGE), size)
    except protocol.ProtocolViolation as why:
        raise protocol_error(f"{url}: {why}") from None
    return status, acked, response.headers.get(protocol.REPLY_URL)


def close_session(client: Client, up: Upload, state: UploadState, kind: str = protocol.CLOSE_SESSION) -> None:
    """Close (or Cancel) the session: retried later on 5xx, never on 1xx-4xx (bits.md §4)."""
    url = state.session_url or up.url
    headers = {protocol.SESSION_ID: state.session_id or ""}
    try:
        with packet(client, up, url, kind, headers) as response:
            status = response.status_code
            if status in (200, 201):
                return
            if status >= 500:
                raise answer_error(response, url)
            log.warning("upload %s: %s answered %d; not retried", up.url, kind, status)
    except SessionLost:
        return  # the server already freed it


class packet:  # lower case: used as a context manager, like open()
    """Send one BITS_POST packet and hold its answer; transport failures become transient errors."""

    def __init__(
        self, client: Client, up: Upload, url: str, kind: str, headers: Mapping[str, str],
        body: Iterator[bytes] | None = None, state: UploadState | None = None, events: Events | None = None,
        length: int = 0, timeout: tuple[float, float] | None = None,
    ) -> None:  # fmt: skip
        self.client, self.up, self.url, self.state, self.events = client, up, url, state, events
        self.timeout = timeout or up.timeout
        # Content-Length always, 0 included (servers in the wild need it); a body is never chunked.
        self.headers = {**up.headers, **headers, protocol.PACKET_TYPE: kind, "Content-Length": str(length)}
        if state is not None and state.session_id is not None and kind != protocol.CREATE_SESSION:
            self.headers[protocol.SESSION_ID] = state.session_id
        self.body = body
        self.response: Response | None = None

    def __enter__(self) -> Response:
        try:
            self.response = self.client.send(
                protocol.METHOD, self.url, self.headers, self.timeout, self.up.request_options, self.body
            )
        except TRANSPORT_ERRORS as exc:
            if self.events is not None and self.events.stop_requested():
                raise Stopped from None  # the worker broke the connection to stop (Client.abort)
            raise self._unreachable(exc) from None
        if protocol.error_code(self.response.headers) == HResult.BG_E_SESSION_NOT_FOUND:
            self.response.close()
            raise SessionLost
        return self.response

    def __exit__(self, *exc: object) -> None:
        if self.response is not None:
            self.response.close()

    def _unreachable(self, exc: BaseException) -> Exception:
        """A host-id server that stays unreachable past its fallback timeout sends us back to the start."""
        error = transport_error(exc, self.url)
        state, events = self.state, self.events
        if state is None or events is None:
            return error
        if self.headers[protocol.PACKET_TYPE] == protocol.FRAGMENT and state.session_id and not state.after_break:
            state = dataclasses.replace(state, after_break=1)  # watch the next answers for a lost session
            events.save(state)
        if state.session_url in (None, self.up.url):
            return error
        now = events.now()
        since = state.host_failing_since if state.host_failing_since is not None else now
        if state.host_fallback is not None and now - since >= state.host_fallback:
            log.info("upload %s: host %s unreachable for %.0f s; back to the original server", self.up.url, self.url,
                     now - since)  # fmt: skip
            events.save(dataclasses.replace(state, session_id=None, session_url=None, host_failing_since=None), 0)
            return error
        events.save(dataclasses.replace(state, host_failing_since=since))
        return error


def _file_body(fd: int, offset: int, length: int, events: Events) -> Iterator[bytes]:
    """A fragment's bytes, read as they are sent: the next read overlaps the network, nothing is held whole.

    A stop (suspend, cancel, pre-emption) ends the fragment between reads; the server keeps the contiguous
    bytes it got, and the next run goes on from its BITS-Received-Content-Range.
    """
    step = min(READ_CHUNK, events.pace(0))
    while length > 0:
        if events.stop_requested():
            raise Stopped
        data = os.pread(fd, min(step, length), offset)
        if not data:
            raise _ShortRead
        yield data
        offset += len(data)
        length -= len(data)
        step = min(READ_CHUNK, events.pace(len(data)))  # the bytes are on their way: pace the next


def answer_error(response: Response, url: str) -> TransferError:
    """A non-success Ack, with the server's BITS-Error-Code and context (0x7: the server application)."""
    status = response.status_code
    code = protocol.error_code(response.headers) or http_status(status)
    context = protocol.error_context(response.headers)
    where = ErrorContext.REMOTE_APPLICATION if context == protocol.CONTEXT_APPLICATION else ErrorContext.REMOTE_FILE
    fatal = code in (HResult.BG_E_TOO_LARGE, HResult.E_ACCESSDENIED) or status in (401, 407)
    return TransferError(
        f"HTTP {status} {response.reason} from {url} (BITS error {protocol.hresult_text(code)})".replace("  ", " "),
        code=code, context=where, transient=status_is_transient(status) and not fatal,
    )  # fmt: skip
