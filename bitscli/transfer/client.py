"""One job's HTTP connections: urllib3's pool on the common path, requests for auth schemes and proxies."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import requests.auth
import urllib3
import urllib3.connection
import urllib3.util

_DRAIN_LIMIT = 64 * 1024  # read what is left of a body this small rather than drop the connection


@dataclass
class Response:
    """The parts of a response the engine uses, whichever library produced it."""

    status_code: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive in both libraries
    raw: Any  # a urllib3 HTTPResponse: read1() and the connection for abort
    _done: bool = False

    def close(self) -> None:
        """Return the connection to the pool when the body was read to its end, else drop it."""
        if self._done:
            return
        self._done = True
        remaining = self.raw.length_remaining
        if remaining is not None and remaining <= _DRAIN_LIMIT:
            self.raw.drain_conn()  # finish the (empty or short) body so the connection can be reused
        else:
            self.raw.close()  # an unread body or an aborted transfer: the connection cannot be reused
            self.raw.release_conn()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The connection each thread sent its latest request on, so that another thread can break it (see abort).
_LAST_CONNECTION: dict[int, urllib3.connection.HTTPConnection] = {}


class _Tracked:
    """Records the connection a request goes out on; urllib3 pools take the class as ConnectionCls."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _LAST_CONNECTION[threading.get_ident()] = self  # type: ignore[assignment]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Tracked, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class Client:
    """Keep-alive connections for the files of one job (requests costs about a millisecond more per request).

    Made and used by one thread (the job's worker); abort() is the one call meant for other threads.
    """

    def __init__(self) -> None:
        self.pool = urllib3.PoolManager(num_pools=16, maxsize=2, retries=False)
        self.pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._session: requests.Session | None = None
        self._thread = threading.get_ident()

    def close(self) -> None:
        self.pool.clear()
        _LAST_CONNECTION.pop(self._thread, None)
        if self._session is not None:
            self._session.close()

    def abort(self) -> None:
        """Break the request in flight, from another thread: a blocked send or wait for the answer fails at once.

        An upload's last Ack may take the server application 5 minutes (bits.md §4); a suspend must not wait
        for it. Requests through a proxy or an NTLM/Negotiate login (the requests path) are not reached.
        """
        connection = _LAST_CONNECTION.get(self._thread)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

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
        verify = options.get("verify", True)
        tls: dict[str, Any] = {}
        if url.lower().startswith("https:"):
            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify if isinstance(verify, str) else _default_ca()}
            if verify is False:
                tls = {"cert_reqs": "CERT_NONE"}
        pool = self.pool.connection_from_url(url, pool_kwargs=tls or None)
        raw = pool.urlopen(
            method, _path_of(url), headers=headers, body=body, preload_content=False, decode_content=False,
            redirect=False, retries=False, timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            assert_same_host=False,
        )  # fmt: skip
        return Response(raw.status, raw.reason or "", raw.headers, raw)

    def _via_requests(
        self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], options: Mapping[str, Any],
        body: Iterable[bytes] | None = None,
    ) -> Response:  # fmt: skip
        if body is not None:
            body = b"".join(body)  # requests would frame an iterable as chunked: auth schemes and proxies are rare
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # the job's proxies come in `options`, resolved once per host
        r = self._session.request(
            method, url, headers=headers, data=body, stream=True, allow_redirects=False, timeout=timeout, **options
        )
        return Response(r.status_code, r.reason or "", r.headers, r.raw)


def _path_of(url: str) -> str:
    parsed = urllib3.util.parse_url(url)
    return parsed.request_uri


def _default_ca() -> str:
    import certifi  # requests' own CA bundle, so both paths trust the same roots

    return certifi.where()
