"""One job's HTTP client: its kept-alive connections, direct or through its proxies, and its logins."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from bitscli.transfer import tcpinfo
from bitscli.transfer.auth import Authenticator, Login, challenges
from bitscli.transfer.connection import Connection, Origin, ProxyUnreachable, WireResponse, shut_down
from bitscli.transfer.tcpinfo import Delay
from bitscli.transfer.tls import context_for

# What a request or a body read raises when the network or the server fails (classify.transport_error).
TRANSPORT_ERRORS = (http.client.HTTPException, h11.ProtocolError, OSError)

_MAX_CONNECTIONS = 16  # kept-alive connections per job (redirects can lead to several hosts)
_IDEMPOTENT = ("GET", "HEAD")  # requests that may be sent again on a new connection (RFC 9110 §9.2.2)
_URL_SAFE = "!$&'()*+,/:;=?@~%"  # RFC 3986 reserved and already-encoded characters stay as they are
_LOGIN_LEGS = 4  # requests one login may take (NTLM: three)


class Response:
    """A response as the engine uses it: status, header fields, and the body by read1 (or readinto1)."""

    def __init__(self, wire: WireResponse) -> None:
        self.wire = wire
        self.status_code = wire.status_code
        self.reason = wire.reason
        self.headers = wire.headers  # found whatever their case
        self._done = False

    def read1(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body as they arrive (at most one read from the socket); b"" at its end."""
        return self.wire.read1(size)

    @property
    def readinto1(self) -> Callable[[memoryview], int] | None:
        """Like read1, into a buffer of the caller's: the bytes read, 0 at the end. Bodies of known length only."""
        return self.wire.readinto1 if self.wire.direct_reads else None

    def abort(self) -> None:
        """Shut the socket down, from another thread: a read blocked on a stalled server returns at once."""
        shut_down(self.wire.connection.sock)

    def close(self) -> None:
        """Keep the connection when the body was read to its end (or nearly), else drop it."""
        if not self._done:
            self._done = True
            self.wire.release()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """Keep-alive connections for the files of one job, and the logins its servers and proxies asked for.

    Every request, direct or through a proxy, with or without a login, goes through connection.py: one set of
    framing rules for all. Made and used by one thread (the job's worker); abort() is the one call for others.
    """

    def __init__(self, receive_buffer: Callable[[], int | None] | None = None) -> None:
        self._receive_buffer = receive_buffer or (lambda: None)  # SO_RCVBUF for new sockets: a paced job's
        self._connections: dict[tuple[object, ...], Connection] = {}
        self._logins: dict[tuple[str, tuple[Login, ...]], Authenticator] = {}
        self._active: Connection | None = None  # the connection of the request in flight
        self._aborts = 0  # abort() calls so far: a request they broke is not sent again

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def delays(self) -> tuple[object, Delay] | None:
        """The kernel's round-trip times on the connection in use, with its peer (the signal of yielding).
        All zeros where the platform does not report them; None when no connection is open."""
        active = self._active
        if active is None or active.sock is None:
            return None
        return active.proxy or active.origin, tcpinfo.read(active.sock) or Delay(0.0, 0.0, 0.0)

    def set_receive_window(self, window: int | None) -> None:
        """Bound the receive window of the connection in use (SO_RCVBUF), or None: the largest the system
        allows (net.core.rmem_max). Setting it ends the kernel's own tuning of that buffer, for this socket."""
        active = self._active
        if active is not None and active.sock is not None:
            with contextlib.suppress(OSError):
                active.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window or 1 << 30)

    def abort(self) -> None:
        """Break the request in flight, from another thread: a blocked send or wait for the answer fails at once.

        An upload's last Ack may take the server application 5 minutes (bits.md §4); a suspend must not wait
        for it.
        """
        self._aborts += 1
        active = self._active
        if active is not None:
            shut_down(active.sock)

    def send(
        self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], options: Mapping[str, Any],
        body: Iterable[bytes] | None = None,
    ) -> Response:  # fmt: skip
        """One request; a body (an iterable of bytes) goes out as is, with the caller's Content-Length.

        ``options``: ``verify`` (True, False or a CA file or directory), ``cert`` (a client certificate and key),
        ``logins`` and ``proxy_logins`` (Login tuples), ``proxies`` (proxy URLs to try in order; none: direct).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise http.client.InvalidURL(f"unsupported scheme {parts.scheme!r}")
        origin = (parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        proxies: list[Origin | None] = [_origin_of(p) for p in options.get("proxies") or ()]
        failure: ProxyUnreachable | None = None
        for proxy in proxies or [None]:
            try:
                return self._send(method, url, scheme, origin, proxy, headers, timeout, options, body)
            except ProxyUnreachable as exc:  # BITS tries the proxies of the list in order
                failure = exc
        assert failure is not None
        raise failure

    def _send(
        self, method: str, url: str, scheme: str, origin: Origin, proxy: Origin | None, headers: dict[str, str],
        timeout: tuple[float, float], options: Mapping[str, Any], body: Iterable[bytes] | None,
    ) -> Response:  # fmt: skip
        tls = None
        if scheme == "https":
            tls = context_for(options.get("verify", True), options.get("cert"), options.get("check_hostname", True))
        connection = self._connection(origin, tls, proxy, options)
        absolute = proxy is not None and tls is None  # plain HTTP through a proxy: the whole URL as the target
        target = _target(url, absolute)
        servers = self._authenticator("server", options.get("logins") or (), "Authorization")
        proxies = self._authenticator("proxy", options.get("proxy_logins") or (), "Proxy-Authorization")
        peer = f"{scheme}://{origin[0]}:{origin[1]}"
        proxy_peer = f"proxy://{proxy[0]}:{proxy[1]}" if proxy else ""
        sent = dict(headers)
        given = {name.lower() for name in headers}
        # A custom Authorization header of the job's goes as it is; a login answers only when asked then.
        unasked = servers.unasked(peer, method, url) if servers and "authorization" not in given else None
        if unasked:
            sent["Authorization"] = unasked
        # Through a tunnel the proxy's login goes with the CONNECT, never inside the origin's TLS.
        unasked = proxies.unasked(proxy_peer, method, url) if proxies and absolute else None
        if unasked:
            sent["Proxy-Authorization"] = unasked
        answered: dict[str, str] = {}  # the logins this request sent in answer to a challenge
        for _ in range(_LOGIN_LEGS):
            response = self._exchange(connection, method, target, sent, body, timeout, proxies, proxy_peer, url)
            status = response.status_code
            asked = {401: (servers, peer, "Authorization", "WWW-Authenticate"),
                     407: (proxies, proxy_peer, "Proxy-Authorization", "Proxy-Authenticate")}.get(status)  # fmt: skip
            if asked is None or not asked[0] or not asked[1] or body is not None:
                servers.done(peer)
                return response
            authenticator, who, name, challenge = asked
            offered = challenges(response.headers.get_all(challenge) or [])
            # A header sent unasked (remembered from an earlier request: an old Digest nonce) gets an answer; one
            # that already answered this request's challenge and was refused does not.
            value = authenticator.answer(who, offered, method, url, origin[0], answered.get(name))
            if value is None:
                return response  # no login the peer accepts, or it refused ours: the 401 or 407 stands
            response.close()
            sent[name] = answered[name] = value
        return response

    def _exchange(
        self, connection: Connection, method: str, target: str, headers: dict[str, str],
        body: Iterable[bytes] | None, timeout: tuple[float, float], proxies: Authenticator, proxy_peer: str,
        url: str,
    ) -> Response:  # fmt: skip
        reused = connection.usable()
        aborts = self._aborts
        try:
            return self._once(connection, reused, method, target, headers, body, timeout, proxies, proxy_peer, url)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused or method not in _IDEMPOTENT or self._aborts != aborts:
                raise
        # The server closed the kept-alive connection as we used it (its idle timeout): a GET or HEAD is sent
        # again on a new one (RFC 9112 §9.3.1), rather than failing the file for the retry delay.
        return self._once(connection, False, method, target, headers, body, timeout, proxies, proxy_peer, url)

    def _once(
        self, connection: Connection, reused: bool, method: str, target: str, headers: dict[str, str],
        body: Iterable[bytes] | None, timeout: tuple[float, float], proxies: Authenticator, proxy_peer: str,
        url: str,
    ) -> Response:  # fmt: skip
        try:
            if not reused:
                connection.close()
                self._active = connection
                login = _proxy_login(proxies, proxy_peer, url) if connection.tunnel and proxies else None
                connection.open(timeout[0], login, self._receive_buffer())
            self._active = connection
            return Response(connection.exchange(method, target, headers, body, timeout[1]))
        except BaseException:
            connection.close()
            raise

    def _connection(
        self, origin: Origin, tls: ssl.SSLContext | None, proxy: Origin | None, options: Mapping[str, Any]
    ) -> Connection:
        """The job's connection for this origin, TLS settings and proxy (opened by the caller when needed)."""
        settings = id(tls) if tls is not None else None  # one context per combination of TLS settings
        if proxy is None:
            key: tuple[object, ...] = ("direct", *origin, settings)
        elif tls is None:
            key = ("proxy", *proxy)  # one connection to the proxy serves every plain-HTTP origin
        else:
            key = ("tunnel", *proxy, *origin, settings)
        connection = self._connections.get(key)
        if connection is None:
            if len(self._connections) >= _MAX_CONNECTIONS:
                self._connections.pop(next(iter(self._connections))).close()
            connection = Connection(origin, tls, proxy, tunnel=proxy is not None and tls is not None)
            self._connections[key] = connection
        elif proxy is not None and tls is None:
            connection.origin = origin  # the Host field of the next request
        return connection

    def _authenticator(self, kind: str, logins: Iterable[Login], header: str) -> Authenticator:
        key = (kind, tuple(logins))
        found = self._logins.get(key)
        if found is None:
            found = self._logins[key] = Authenticator(key[1], header)
        return found


def _proxy_login(proxies: Authenticator, peer: str, url: str) -> Callable[[Mapping[str, str] | None], str | None]:
    """The Proxy-Authorization of each CONNECT: first what is known unasked, then the answers to 407s."""
    carried: str | None = None

    def login(answer: Mapping[str, str] | None) -> str | None:
        nonlocal carried
        if answer is None:
            carried = proxies.unasked(peer, "CONNECT", url)
        else:
            offered = challenges(answer.get_all("Proxy-Authenticate") or [])  # type: ignore[attr-defined]
            carried = proxies.answer(peer, offered, "CONNECT", url, urlsplit(url).hostname or "", carried)
        return carried

    return login


def _origin_of(proxy: str) -> Origin:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname or "", parts.port or 80


def _target(url: str, absolute: bool) -> str:
    """The request target: the path and query (origin-form), or the whole URL for a proxy (absolute-form)."""
    parts = urlsplit(url)
    # Characters HTTP does not allow in a request line (spaces, non-ASCII) are percent-encoded, as browsers do.
    path = quote(f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/", safe=_URL_SAFE)
    if not absolute:
        return path
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}{path}"
