"""A real HTTP server on 127.0.0.1 for tests: files with Range/If-Range, and faults scripted per request."""

from __future__ import annotations

import hashlib
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    """What the next matching GET does instead of behaving."""

    path: str | None = None  # None: any path
    status: int | None = None  # answer this status with an empty body
    headers: dict[str, str] = field(default_factory=dict)  # extra headers for `status`
    reset_after: int | None = None  # send this many body bytes, then a TCP reset
    truncate_after: int | None = None  # send this many body bytes, then close cleanly
    ignore_range: bool = False  # answer 200 with the whole file
    wrong_range: bool = False  # answer 206 starting 10 bytes later than asked
    trickle: float | None = None  # seconds between single bytes
    stall: float | None = None  # seconds of silence after the headers, before the first body byte
    drop: bool = False  # close the connection without an answer (a kept-alive one timing out as it is used)
    delay: float | None = None  # seconds before the answer's status line
    chunked: bool = False  # a 200 body in chunked transfer coding, with no Content-Length
    close_after: bool = False  # answer, then close the connection without saying so (an idle timeout)
    times: int = 1  # how many requests this fault applies to
    corrupt: bool = False  # one byte of the body is wrong: same length, same validators (a flaky cache)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    port: int = 0  # the client's port: one per connection


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that stops a transfer (suspend, abort) closes the connection under the handler's write:
        # expected here, so no traceback in the test output. Anything else is still printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FaultServer:
    def __init__(self, tls: object | None = None) -> None:
        """``tls``: an ssl.SSLContext to serve HTTPS instead of HTTP."""
        self.files: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.faults: deque[Fault] = deque()
        self.seen: list[Seen] = []
        self.head_allowed = True
        self.chunk_delay = 0.0  # seconds between 64 KiB chunks of every body: a slow link
        self.digest: str | None = None  # "Repr-Digest", "Digest" or "Content-MD5": sent with every body
        self.validators = True  # False: no ETag or Last-Modified, and conditional requests are ignored
        self.lock = threading.Lock()
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)  # type: ignore[attr-defined]
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def put(self, path: str, data: bytes) -> None:
        with self.lock:
            self.files[path] = data
            self.versions[path] = self.versions.get(path, 0) + 1

    def etag(self, path: str) -> str:
        digest = hashlib.sha256(self.files[path]).hexdigest()[:16]
        return f'"{digest}-{self.versions[path]}"'

    def fault(self, **kwargs: object) -> None:
        self.faults.append(Fault(**kwargs))  # type: ignore[arg-type]

    def take_fault(self, path: str, head: bool) -> Fault | None:
        """The next fault for this request; HEAD only takes status faults (body faults need a body)."""
        with self.lock:
            for fault in self.faults:
                if fault.path in (None, path) and (not head or fault.status):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def gets(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.owner
        owner.seen.append(Seen(self.command, self.path, dict(self.headers.items()), self.client_address[1]))
        if head and not owner.head_allowed:
            return self._empty(405)
        data = owner.files.get(self.path)
        fault = owner.take_fault(self.path, head)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.drop:
            self.close_connection = True
            return None
        if fault and fault.status:
            return self._empty(fault.status, fault.headers)
        if data is None:
            return self._empty(404)
        etag = owner.etag(self.path)
        modified = formatdate(1_700_000_000 + owner.versions[self.path], usegmt=True)
        if owner.validators and _not_modified(self.headers, etag, 1_700_000_000 + owner.versions[self.path]):
            return self._empty(304, {"ETag": etag, "Last-Modified": modified})
        start, end = 0, len(data) - 1
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        honour = range_header and (if_range is None or if_range == etag) and not (fault and fault.ignore_range)
        if honour:
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), len(data) - 1) if last else len(data) - 1
            if start >= len(data):
                return self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
        status = 206 if honour else 200
        if fault and fault.wrong_range and status == 206:
            start += 10
        body = data[start : end + 1]
        if fault and fault.corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_response(status)
        if fault and fault.chunked and status == 200:
            return self._chunked(body, fault)
        self.send_header("Content-Length", str(len(body)))
        if owner.validators:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        if owner.digest:  # of the file as it should be, whatever a fault does to the body
            self.send_header(owner.digest, _digest(owner.digest, data))
        self.end_headers()
        if head:
            return None
        self._body(body, fault)
        if fault and fault.close_after:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        return None

    def _body(self, body: bytes, fault: Fault | None) -> None:
        if fault and fault.stall:
            time.sleep(fault.stall)
        if fault and fault.trickle:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(fault.trickle)
            return
        if fault and fault.reset_after is not None:
            self.wfile.write(body[: fault.reset_after])
            self.wfile.flush()
            # Linux drops the bytes a socket has not read yet when the reset arrives: a busy client that had not
            # read them would see a reset before any byte, and the test would not be the one it means to be.
            time.sleep(0.2)
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset", mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if fault and fault.truncate_after is not None:
            self.wfile.write(body[: fault.truncate_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if self.owner.chunk_delay:
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i : i + 65536])
                time.sleep(self.owner.chunk_delay)
            return
        self.wfile.write(body)

    def _chunked(self, body: bytes, fault: Fault) -> None:
        """The body in 64 KiB chunks (RFC 9112 §7.1); truncate_after cuts it, mid-chunk, and closes."""
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
                          for i in range(0, len(body), 65536)) + b"0\r\n\r\n"  # fmt: skip
        if fault.truncate_after is not None:
            self.wfile.write(framed[: fault.truncate_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(framed)

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serving(path: str, data: bytes) -> Iterator[FaultServer]:
    """A fixture's server of one file: ``yield from serving("/f", DATA)``; closed after the test, even a failed one."""
    srv = FaultServer()
    srv.put(path, data)
    try:
        yield srv
    finally:
        srv.close()


def _digest(header: str, data: bytes) -> str:
    import base64

    if header == "Repr-Digest":  # RFC 9530: a dictionary of byte sequences
        return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    if header == "Digest":  # RFC 3230
        return f"SHA-512={base64.b64encode(hashlib.sha512(data).digest()).decode()}"
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 (Content-MD5 is MD5)


def _not_modified(headers: object, etag: str, modified: float) -> bool:
    """RFC 9110 §13.1.2-3: If-None-Match wins; else If-Modified-Since at or after the file's time."""
    from email.utils import parsedate_to_datetime

    none_match = headers.get("If-None-Match")  # type: ignore[attr-defined]
    if none_match is not None:
        return etag in [tag.strip() for tag in none_match.split(",")] or none_match.strip() == "*"
    since = headers.get("If-Modified-Since")  # type: ignore[attr-defined]
    if since is None:
        return False
    try:
        return parsedate_to_datetime(since).timestamp() >= modified
    except (TypeError, ValueError):
        return False
