"""Real peers for the wire tests on 127.0.0.1: a server that asks for a login, and a forward proxy."""

from __future__ import annotations

import base64
import hashlib
import http.client
import select
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from requests.utils import parse_dict_header


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class LoginServer:
    """Serves one file to whoever logs in with one of ``schemes``: Basic (RFC 7617), Digest (RFC 7616, MD5), or
    NTLM (pyspnego's server, its users in the file NTLM_USER_FILE names)."""

    NONCE = "c2f7a1e0bitscli"

    def __init__(self, schemes: tuple[str, ...], user: str, password: str, data: bytes) -> None:
        self.schemes, self.user, self.password, self.data = schemes, user, password, data
        self.seen: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            ntlm: object = None  # this connection's NTLM handshake (NTLM authenticates a connection)

            def do_GET(self) -> None:
                owner.seen.append(dict(self.headers.items()))
                header = self.headers.get("Authorization", "")
                if header.startswith("NTLM ") and "NTLM" in owner.schemes:
                    return self._ntlm(header)
                if owner.accepts(header, self.path):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(owner.data)))
                    self.end_headers()
                    self.wfile.write(owner.data)
                    return
                self.send_response(401)
                for scheme in owner.schemes:
                    challenge = {
                        "Basic": 'Basic realm="r"',
                        "NTLM": "NTLM",
                        "Digest": f'Digest realm="r", qop="auth", nonce="{owner.NONCE}", algorithm=MD5',
                    }
                    self.send_header("WWW-Authenticate", challenge[scheme])  # fmt: skip
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _ntlm(self, header: str) -> None:
                import spnego

                if self.ntlm is None:
                    self.ntlm = spnego.server(protocol="ntlm")  # users from NTLM_USER_FILE
                token = self.ntlm.step(base64.b64decode(header.split(" ", 1)[1]))  # type: ignore[attr-defined]
                if not self.ntlm.complete:  # type: ignore[attr-defined]
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", "NTLM " + base64.b64encode(token or b"").decode())
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(owner.data)))
                self.end_headers()
                self.wfile.write(owner.data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/f") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def accepts(self, header: str, path: str) -> bool:
        scheme, _, rest = header.partition(" ")
        if scheme == "Basic" and "Basic" in self.schemes:
            return base64.b64decode(rest).decode() == f"{self.user}:{self.password}"
        if scheme == "Digest" and "Digest" in self.schemes:
            p = parse_dict_header(rest)
            ha1 = _md5(f"{self.user}:r:{self.password}")
            ha2 = _md5(f"GET:{p.get('uri')}")
            expected = _md5(f"{ha1}:{self.NONCE}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}")
            return p.get("username") == self.user and p.get("uri") == path and p.get("response") == expected
        return False

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class ProxySeen:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)


class ForwardProxy:
    """A forward proxy: absolute-form requests relayed with http.client, CONNECT tunnels piped byte for byte.

    With ``login`` (user, password) it answers 407 to requests without that Basic Proxy-Authorization.
    """

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.seen: list[ProxySeen] = []
        self.login = login
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _allowed(self) -> bool:
                owner.seen.append(ProxySeen(self.command, self.path, dict(self.headers.items())))
                if owner.login is None:
                    return True
                expected = "Basic " + base64.b64encode(":".join(owner.login).encode()).decode()
                if self.headers.get("Proxy-Authorization") == expected:
                    return True
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def do_GET(self) -> None:
                if not self._allowed():
                    return
                target = urlsplit(self.path)
                upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-authorization"}
                upstream.request("GET", target.path or "/", headers=headers)
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

            def do_CONNECT(self) -> None:
                if not self._allowed():
                    return
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                _pipe(self.connection, upstream)
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with b:
        while True:
            readable, _, _ = select.select([a, b], [], [], 10)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
