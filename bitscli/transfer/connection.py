"""One kept-alive connection to an origin: its socket and TLS, and h11's strict framing of requests and responses."""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import h11

MAX_LINE = 65536  # a header line longer than this, or more fields than MAX_FIELDS, is refused (http.client's)
MAX_FIELDS = 100
DRAIN_LIMIT = 64 * 1024  # read what is left of a body this small rather than drop the connection


Origin = tuple[str, int]  # host, port
ProxyLogin = Callable[[Mapping[str, str] | None], "str | None"]  # a 407's headers (None: before) -> the answer


class HeadersTooLarge(http.client.HTTPException):
    """The response's header section is over bitscli's limits (MAX_LINE a line, MAX_FIELDS fields)."""


class ProxyUnreachable(ConnectionError):
    """The proxy itself could not be reached: the error names it, not the origin."""

    def __init__(self, proxy: Origin, cause: OSError) -> None:
        super().__init__(f"cannot reach the proxy {_host_field(*proxy, tls=False, always_port=True)}: {cause}")
        self.proxy, self.cause = proxy, cause


class ProxyRefused(http.client.HTTPException):
    """The proxy answered CONNECT with something other than 2xx."""

    def __init__(self, proxy: Origin, status: int, reason: str) -> None:
        where = _host_field(*proxy, tls=False, always_port=True)
        super().__init__(f"the proxy {where} answered CONNECT with {status} {reason}".rstrip())
        self.proxy, self.status = proxy, status


class Fields(Mapping[str, str]):
    """A response's header fields, found whatever their case; a repeated field gives its first value."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    def get_all(self, name: str, default: Any = None) -> Any:
        """Every value of a repeated field, in order."""
        wanted = name.lower()
        return [value for field, value in self._fields if field.lower() == wanted] or default

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)


class Connection:
    """A socket to one origin (TLS when ``tls`` is given), reused for the job's requests while the server allows.

    h11 writes each request and parses each response's status line, header fields and chunked bodies, with its
    strict rules: a bad or conflicting Content-Length, a transfer coding other than chunked, or a malformed chunk
    is a protocol error, never data. A body of known length is read straight from the socket, h11 having
    checked the length: it is the long transfers' path, and the bytes need no parsing.
    """

    def __init__(
        self, origin: Origin, tls: ssl.SSLContext | None, proxy: Origin | None = None, tunnel: bool = False
    ) -> None:
        self.origin, self.tls, self.proxy, self.tunnel = origin, tls, proxy, tunnel
        self.sock: socket.socket | None = None
        self.reader: Any = None  # a buffered reader on the socket (socket.makefile)
        self.served = 0  # responses read on this socket

    def open(
        self, connect_timeout: float, proxy_login: ProxyLogin | None = None, receive_buffer: int | None = None
    ) -> None:
        """Connect: to the origin, or to the proxy (a CONNECT tunnel through it for TLS), then TLS if asked.

        ``receive_buffer`` (SO_RCVBUF) is set before the connection is made, so the window it advertises fits:
        a job paced to a low rate then slows the sender instead of taking seconds of data in one burst.
        """
        host, port = self.proxy or self.origin
        try:
            sock = _connect(host, port, connect_timeout, receive_buffer)
        except OSError as exc:
            if self.proxy is None:
                raise
            raise ProxyUnreachable(self.proxy, exc) from None
        self.sock, self.reader, self.served = sock, sock.makefile("rb"), 0
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tunnel:
                self._connect_through(connect_timeout, proxy_login)
            if self.tls is not None:
                self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.origin[0])
                self.reader = self.sock.makefile("rb")
        except BaseException:
            self.close()
            raise
        self.served = 0

    def _connect_through(self, timeout: float, proxy_login: ProxyLogin | None) -> None:
        """CONNECT host:port (RFC 9110 §9.3.6), answering the proxy's 407s; then the socket is the origin's."""
        assert self.proxy is not None
        authority = _host_field(*self.origin, tls=False, always_port=True)
        answer: str | None = proxy_login(None) if proxy_login else None
        for _ in range(4):  # the legs of a proxy login at most
            headers = {"Proxy-Authorization": answer} if answer else {}
            response = self.exchange("CONNECT", authority, headers, None, timeout, host=authority)
            if 200 <= response.status_code < 300:
                return
            if response.status_code == 407 and proxy_login is not None:
                answer = proxy_login(response.headers)
                if answer is not None:
                    response.release()
                    if self.sock is None:  # the proxy closed the connection with its 407: a new one
                        self.sock = socket.create_connection(self.proxy, timeout=timeout)
                        self.reader = self.sock.makefile("rb")
                    continue
            raise ProxyRefused(self.proxy, response.status_code, response.reason)
        raise ProxyRefused(self.proxy, 407, "Proxy Authentication Required")

    def usable(self) -> bool:
        """An open socket the server has not closed while it was idle."""
        return self.sock is not None and not _dropped(self.sock)

    def close(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(OSError):
                self.reader.close()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = self.reader = None

    def exchange(
        self, method: str, target: str, headers: Mapping[str, str], body: Iterable[bytes] | None, read_timeout: float,
        host: str | None = None,
    ) -> WireResponse:  # fmt: skip
        """Send one request and read the answer's header section; the body is left to the response's reads."""
        assert self.sock is not None
        self.sock.settimeout(read_timeout)
        machine = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_LINE)
        fields = [("Host", host or _host_field(*self.origin, tls=self.tls is not None)), *headers.items()]
        self.sock.sendall(machine.send(h11.Request(method=method, target=target, headers=fields)) or b"")
        for chunk in body or ():
            # Passed through, not joined into a copy: fragments stream from the file (h11 counts the length).
            for piece in machine.send_with_data_passthrough(h11.Data(data=chunk)) or ():
                self.sock.sendall(piece)
        self.sock.sendall(machine.send(h11.EndOfMessage()) or b"")
        while True:
            section = self._header_section()
            machine.receive_data(section)
            event = machine.next_event()
            if isinstance(event, h11.Response):
                self.served += 1
                return WireResponse(self, machine, event, method)
            # An interim 1xx answer (100 Continue, 103 Early Hints): the final one follows.

    def _header_section(self) -> bytes:
        """The raw bytes up to the empty line that ends a header section (RFC 9112 §2.1)."""
        lines: list[bytes] = []
        while True:
            line = self.reader.readline(MAX_LINE + 1)
            if not line:
                if not lines and self.served:  # the server closed the kept-alive connection as we used it
                    raise http.client.RemoteDisconnected("the server closed the connection without an answer")
                raise ConnectionResetError("the connection closed in the middle of a response's headers")
            if len(line) > MAX_LINE:
                raise HeadersTooLarge(f"a response header line is over {MAX_LINE} bytes")
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return b"".join(lines)
            if len(lines) > MAX_FIELDS + 1:
                raise HeadersTooLarge(f"the response has more than {MAX_FIELDS} header fields")


class WireResponse:
    """A response read by h11 on a Connection; the body comes by read1 (or readinto1, when its length is known)."""

    def __init__(self, connection: Connection, machine: h11.Connection, event: h11.Response, method: str) -> None:
        self.connection = connection
        self.machine = machine
        self.status_code = event.status_code
        self.reason = event.reason.decode("iso-8859-1")
        self.headers = Fields([(n.decode("iso-8859-1"), v.decode("iso-8859-1")) for n, v in event.headers])
        self.keep_alive = event.http_version == b"1.1" and "close" not in _tokens(self.headers.get_all("connection"))
        no_body = method == "HEAD" or event.status_code in (204, 304) or event.status_code < 200
        self.chunked = not no_body and bool(self.headers.get("transfer-encoding"))
        length = self.headers.get("content-length")  # h11 has checked it: digits, and one value
        # A body of unknown length runs to the close of the connection (RFC 9112 §6.3).
        self.remaining: int | None = 0 if no_body else None if self.chunked or length is None else int(length)
        self.ended = self.remaining == 0

    def read1(self, size: int) -> bytes:
        if self.ended:
            return b""
        if self.chunked:
            return self._read_chunked(size)
        if self.remaining is None:  # to the close
            data = self.connection.reader.read1(size)
            self.ended = not data
            return data
        data = self.connection.reader.read1(min(size, self.remaining))
        if not data:  # cut short: the caller sees fewer bytes than the length and says so
            self.ended, self.keep_alive = True, False
            return b""
        self.remaining -= len(data)
        self.ended = self.remaining == 0
        return data

    def readinto1(self, view: memoryview) -> int:
        """Like read1, into the caller's buffer; bodies of known length only (see ``direct_reads``)."""
        assert self.remaining is not None, "readinto1 needs a body of known length"
        if self.ended:
            return 0
        got: int = self.connection.reader.readinto1(view[: self.remaining])
        if not got:
            self.ended, self.keep_alive = True, False
            return 0
        self.remaining -= got
        self.ended = self.remaining == 0
        return got

    @property
    def direct_reads(self) -> bool:
        return not self.chunked and self.remaining is not None

    def _read_chunked(self, size: int) -> bytes:
        while True:
            event = self.machine.next_event()
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                self.ended = True
                if self.machine.trailing_data[0]:
                    self.keep_alive = False  # bytes nobody asked for follow the body: the connection is suspect
                return b""
            if event is h11.NEED_DATA:
                self.machine.receive_data(self.connection.reader.read1(size))
                continue
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a chunked body")

    def release(self) -> None:
        """Keep the connection for the next request if this body was read to its end (or nearly), else close it."""
        if not self.ended and self.remaining is not None and self.remaining <= DRAIN_LIMIT and self.keep_alive:
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException, h11.ProtocolError):
                while self.read1(DRAIN_LIMIT):
                    pass
        if not (self.ended and self.keep_alive):
            self.connection.close()


def _connect(host: str, port: int, timeout: float, receive_buffer: int | None) -> socket.socket:
    if receive_buffer is None:
        return socket.create_connection((host, port), timeout=timeout)
    failure: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        return sock
    raise failure


def _tokens(values: list[str] | None) -> set[str]:
    return {token.strip().lower() for value in values or () for token in value.split(",")}


def _host_field(host: str, port: int, tls: bool, always_port: bool = False) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) and not always_port else f"{name}:{port}"


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive socket that is readable was closed by the server (or it sent something unasked)."""
    try:
        if hasattr(select, "poll"):  # select() cannot watch descriptors above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def shut_down(sock: socket.socket | None) -> None:
    """Break a blocked send or read from another thread: it fails at once (a stop within a second)."""
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
