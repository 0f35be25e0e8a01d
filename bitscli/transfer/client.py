"""One job's HTTP connections: http.client keep-alive on the common path, requests for auth schemes and proxies."""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast
from urllib.parse import quote, urlsplit

import requests
import requests.auth
import urllib3.exceptions
import urllib3.util

# What a request or a body read raises when the network or the server fails (classify.transport_error).
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)

_MAX_LINE = 65536  # http.client's limits on a header line and on the number of header fields
_MAX_FIELDS = 100
_DRAIN_LIMIT = 64 * 1024  # read what is left of a body this small rather than drop the connection
_MAX_CONNECTIONS = 16  # kept-alive connections per job (redirects can lead to several hosts)
_IDEMPOTENT = ("GET", "HEAD")  # requests that may be sent again on a new connection (RFC 9110 §9.2.2)
_URL_SAFE = "!$&'()*+,/:;=?@~%"  # RFC 3986 reserved and already-encoded characters stay as they are


class Response:
    """The parts of a response the engine uses, whichever library produced it."""

    def __init__(self, status_code: int, reason: str, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers  # case-insensitive in both libraries
        self._done = False

    def read1(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body as they arrive (at most one read from the socket); b"" at its end."""
        raise NotImplementedError

    @property
    def readinto1(self) -> Callable[[memoryview], int] | None:
        """Like read1, into a buffer of the caller's: the bytes read, 0 at the end. None where not offered."""
        return None

    def abort(self) -> None:
        """Shut the socket down, from another thread: a read blocked on a stalled server returns at once."""
        raise NotImplementedError

    def close(self) -> None:
        """Keep the connection when the body was read to its end (or nearly), else drop it."""
        if not self._done:
            self._done = True
            self._release()

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Fields(Mapping[str, str]):
    """A response's header fields, found whatever their case; a repeated field gives its first value, as
    http.client's email.message does (at a tenth of its cost: see _LeanResponse)."""

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
        """Every value of a repeated field (http.client's getheader joins them)."""
        wanted = name.lower()
        return [value for field, value in self._fields if field.lower() == wanted] or default

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)


def _read_fields(fp: Any) -> list[tuple[str, str]]:
    """The header section up to its empty line (RFC 9112 §5), with http.client's limits."""
    fields: list[tuple[str, str]] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return fields
        if len(fields) >= _MAX_FIELDS:
            raise http.client.HTTPException(f"got more than {_MAX_FIELDS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):
            if fields:  # obsolete line folding continues the field before (RFC 9112 §5.2)
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:  # a line that is not a field is skipped, as email.parser does
            fields.append((name, value.strip(" \t")))


class _LeanResponse(http.client.HTTPResponse):
    """http.client's response, with its header section parsed by _read_fields instead of email.parser.

    email.parser and email.message were about a fifth of the worker's time in a job of many small files (py-spy).
    begin() is http.client's own, step for step, but for that parser.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _read_fields(self.fp)  # an interim 100 Continue's header section
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _Fields(_read_fields(self.fp))
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                parsed = int(length)
            except ValueError:
                parsed = -1
            self.length = parsed if parsed >= 0 else None  # a nonsense length is ignored
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0  # no body (RFC 9112 §6.3)
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # the body ends when the server closes the connection


class _PlainResponse(Response):
    """An http.client response on one of the job's kept-alive connections."""

    def __init__(
        self, raw: http.client.HTTPResponse, connection: http.client.HTTPConnection, sock: socket.socket | None
    ) -> None:
        super().__init__(raw.status, raw.reason or "", cast(Mapping[str, str], raw.headers))
        self.raw = raw
        self.connection = connection
        self.sock = sock  # kept: http.client forgets it when the server said Connection: close

    def read1(self, size: int) -> bytes:
        return self.raw.read1(size)

    @property
    def readinto1(self) -> Callable[[memoryview], int] | None:
        raw = self.raw
        if raw.chunked or raw.length is None or raw.fp is None:
            return None  # offered for bodies of known length only, which are the socket's bytes as they come
        return self._readinto1

    def _readinto1(self, view: memoryview) -> int:
        raw = self.raw
        if raw.fp is None or not raw.length:
            return 0
        got = raw.fp.readinto1(view[: raw.length])  # http.client's buffer first, else one read from the socket
        if got:
            raw.length -= got
        else:
            raw._close_conn()  # type: ignore[attr-defined]  # cut short: as http.client's read1 does
        return got

    def abort(self) -> None:
        _shut_down(self.sock)

    def _release(self) -> None:
        remaining = self.raw.length
        if not self.raw.isclosed() and (remaining is None or remaining > _DRAIN_LIMIT):
            self.connection.close()  # an unread body or an aborted transfer: the connection cannot be reused
            return
        try:
            self.raw.read()  # finish the (empty or short) body so the connection can be reused
        except TRANSPORT_ERRORS:
            self.connection.close()


class _RequestsResponse(Response):
    """A response from requests (proxies, NTLM/Negotiate, Digest); its raw urllib3 response streams the body."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code, response.reason or "", response.headers)
        self.raw = response.raw

    def read1(self, size: int) -> bytes:
        return self.raw.read1(size, decode_content=False)

    def abort(self) -> None:
        connection = getattr(self.raw, "_connection", None)
        _shut_down(getattr(connection, "sock", None))

    def _release(self) -> None:
        remaining = self.raw.length_remaining
        if remaining is not None and remaining <= _DRAIN_LIMIT:
            self.raw.drain_conn()
        else:
            self.raw.close()
            self.raw.release_conn()


def _shut_down(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Client:
    """Keep-alive connections for the files of one job.

    The common path (no proxy; no login, or Basic) uses http.client directly: about half the CPU a request of
    urllib3's pool, and a third of requests', which matters for jobs of many small files. Made and used by one
    thread (the job's worker); abort() is the one call meant for others.
    """

    def __init__(self) -> None:
        self._connections: dict[tuple[object, ...], http.client.HTTPConnection] = {}
        self._tls: dict[object, ssl.SSLContext] = {}
        self._session: requests.Session | None = None
        self._active: socket.socket | None = None  # the socket of the request in flight
        self._aborts = 0  # abort() calls so far: a request they broke is not sent again

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        if self._session is not None:
            self._session.close()

    def abort(self) -> None:
        """Break the request in flight, from another thread: a blocked send or wait for the answer fails at once.

        An upload's last Ack may take the server application 5 minutes (bits.md §4); a suspend must not wait
        for it. Requests through a proxy or an NTLM/Negotiate login (the requests path) are not reached.
        """
        self._aborts += 1
        _shut_down(self._active)

    def send(
        self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], options: Mapping[str, Any],
        body: Iterable[bytes] | None = None,
    ) -> Response:  # fmt: skip
        """One request; a body (an iterable of bytes) goes out as is, with the caller's Content-Length."""
        auth = options.get("auth")
        proxies = {k: v for k, v in (options.get("proxies") or {}).items() if v and k != "no_proxy"}
        plain_auth = auth is None or type(auth) is requests.auth.HTTPBasicAuth
        if proxies or not plain_auth:
            return self._via_requests(method, url, headers, timeout, options, body)
        headers = dict(headers)
        if auth is not None:
            headers.update(urllib3.util.make_headers(basic_auth=f"{auth.username}:{auth.password}"))
        parts = urlsplit(url)
        # Characters HTTP does not allow in a request line (spaces, non-ASCII) are percent-encoded, as browsers do.
        target = quote(f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/", safe=_URL_SAFE)
        connection, reused = self._connection(parts, timeout, options.get("verify", True))
        aborts = self._aborts
        try:
            return self._exchange(connection, method, target, headers, body, timeout)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused or method not in _IDEMPOTENT or self._aborts != aborts:
                raise
        # The server closed the kept-alive connection as we used it (its idle timeout): a GET or HEAD is sent
        # again on a new one (RFC 9112 §9.3.1), rather than failing the file for the retry delay.
        connection.close()
        return self._exchange(connection, method, target, headers, body, timeout)

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str],
        body: Iterable[bytes] | None, timeout: tuple[float, float],
    ) -> Response:  # fmt: skip
        try:
            if connection.sock is None:
                connection.timeout = timeout[0]
                connection.connect()
            sock = self._active = connection.sock
            sock.settimeout(timeout[1])
            connection.request(method, target, body=body, headers=headers)
            raw = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        return _PlainResponse(raw, connection, sock)

    def _connection(
        self, parts: Any, timeout: tuple[float, float], verify: object
    ) -> tuple[http.client.HTTPConnection, bool]:
        """The job's connection to this origin (and TLS settings), and whether it served requests before."""
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise http.client.InvalidURL(f"unsupported scheme {parts.scheme!r}")
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port, verify if scheme == "https" else None)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and not _dropped(connection.sock):
            return connection, True
        if connection is None:
            if len(self._connections) >= _MAX_CONNECTIONS:
                self._connections.pop(next(iter(self._connections))).close()
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=timeout[0], context=self._tls_for(verify))
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout[0])
            connection.response_class = _LeanResponse
            self._connections[key] = connection
        connection.close()  # a connection the server closed while idle: a new one
        return connection, False

    def _tls_for(self, verify: object) -> ssl.SSLContext:
        """Certificates checked against the CA bundle in ``verify`` (a path), else certifi's; none if False."""
        context = self._tls.get(verify)
        if context is None:
            if verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(verify, str) and os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else _default_ca())
            self._tls[verify] = context
        return context

    def _via_requests(
        self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], options: Mapping[str, Any],
        body: Iterable[bytes] | None = None,
    ) -> Response:  # fmt: skip
        # requests would frame an iterable as chunked: auth schemes and proxies are rare, so the body is joined
        data = b"".join(body) if body is not None else None
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # the job's proxies come in `options`, resolved once per host
        r = self._session.request(
            method, url, headers=headers, data=data, stream=True, allow_redirects=False, timeout=timeout, **options
        )
        return _RequestsResponse(r)


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


def _default_ca() -> str:
    import certifi  # requests' own CA bundle, so both paths trust the same roots

    return certifi.where()
