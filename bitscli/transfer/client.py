"""One job's HTTP connections: its own h11-framed keep-alive connections, and requests for auth schemes and proxies."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import h11
import requests
import requests.auth
import urllib3.exceptions
import urllib3.util

from bitscli.transfer.connection import Connection, WireResponse, shut_down

# What a request or a body read raises when the network or the server fails (classify.transport_error).
TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    h11.ProtocolError,
    OSError,
)

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


class _PlainResponse(Response):
    """A response on one of the job's own kept-alive connections, framed by h11 (connection.py)."""

    def __init__(self, wire: WireResponse) -> None:
        super().__init__(wire.status_code, wire.reason, wire.headers)
        self.wire = wire

    def read1(self, size: int) -> bytes:
        return self.wire.read1(size)

    @property
    def readinto1(self) -> Callable[[memoryview], int] | None:
        return self.wire.readinto1 if self.wire.direct_reads else None  # known length: the socket's bytes as they come

    def abort(self) -> None:
        shut_down(self.wire.connection.sock)

    def _release(self) -> None:
        self.wire.release()


class _RequestsResponse(Response):
    """A response from requests (proxies, NTLM/Negotiate, Digest); its raw urllib3 response streams the body."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code, response.reason or "", response.headers)
        self.raw = response.raw

    def read1(self, size: int) -> bytes:
        return self.raw.read1(size, decode_content=False)

    def abort(self) -> None:
        connection = getattr(self.raw, "_connection", None)
        shut_down(getattr(connection, "sock", None))

    def _release(self) -> None:
        remaining = self.raw.length_remaining
        if remaining is not None and remaining <= _DRAIN_LIMIT:
            self.raw.drain_conn()
        else:
            self.raw.close()
            self.raw.release_conn()


class Client:
    """Keep-alive connections for the files of one job.

    The common path (no proxy; no login, or Basic) uses http.client directly: about half the CPU a request of
    urllib3's pool, and a third of requests', which matters for jobs of many small files. Made and used by one
    thread (the job's worker); abort() is the one call meant for others.
    """

    def __init__(self) -> None:
        self._connections: dict[tuple[object, ...], Connection] = {}
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
        shut_down(self._active)

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
        connection = self._connection(parts, options.get("verify", True))
        reused = connection.usable()
        aborts = self._aborts
        try:
            return self._exchange(connection, reused, method, target, headers, body, timeout)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused or method not in _IDEMPOTENT or self._aborts != aborts:
                raise
        # The server closed the kept-alive connection as we used it (its idle timeout): a GET or HEAD is sent
        # again on a new one (RFC 9112 §9.3.1), rather than failing the file for the retry delay.
        return self._exchange(connection, False, method, target, headers, body, timeout)

    def _exchange(
        self, connection: Connection, reused: bool, method: str, target: str, headers: dict[str, str],
        body: Iterable[bytes] | None, timeout: tuple[float, float],
    ) -> Response:  # fmt: skip
        try:
            if not reused:
                connection.close()
                connection.open(timeout[0])
            self._active = connection.sock
            return _PlainResponse(connection.exchange(method, target, headers, body, timeout[1]))
        except BaseException:
            connection.close()
            raise

    def _connection(self, parts: Any, verify: object) -> Connection:
        """The job's connection to this origin with these TLS settings (opened by the caller when needed)."""
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise http.client.InvalidURL(f"unsupported scheme {parts.scheme!r}")
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port, verify if scheme == "https" else None)
        connection = self._connections.get(key)
        if connection is None:
            if len(self._connections) >= _MAX_CONNECTIONS:
                self._connections.pop(next(iter(self._connections))).close()
            connection = Connection(host, port, self._tls_for(verify) if scheme == "https" else None)
            self._connections[key] = connection
        return connection

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


def _default_ca() -> str:
    import certifi  # requests' own CA bundle, so both paths trust the same roots

    return certifi.where()
