"""Logins a server or proxy asks for: the scheme picked by its challenge among the job's credentials (bits.md §7)."""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bitscli.model import AuthScheme

_SCHEME_CHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # RFC 9110 §5.6.2
# A challenge starts with a scheme: a token followed by a space, a comma or the end, never by "=" (a parameter).
_SCHEME_START = re.compile(rf"(?:^|,)\s*({_SCHEME_CHARS})(?=\s|,|$)(?!\s*=)")
_NAMES = {"basic": AuthScheme.BASIC, "digest": AuthScheme.DIGEST, "ntlm": AuthScheme.NTLM,
          "negotiate": AuthScheme.NEGOTIATE}  # fmt: skip
_WIRE_NAMES = {AuthScheme.NTLM: "NTLM", AuthScheme.NEGOTIATE: "Negotiate"}
_STRONGEST_FIRST = (AuthScheme.NEGOTIATE, AuthScheme.NTLM, AuthScheme.DIGEST, AuthScheme.BASIC)


@dataclass(frozen=True)
class Login:
    """One credential of the job: a scheme, and a user name and password (both None: the owner's own)."""

    scheme: AuthScheme
    username: str | None
    password: str | None = field(default=None, repr=False)  # a secret: never printed


class LoginUnavailable(http.client.HTTPException):
    """The scheme the peer asked for needs an optional package that is not installed."""

    def __init__(self, scheme: str, extra: str) -> None:
        super().__init__(f"{scheme} authentication needs an optional package: pip install 'bitscli[{extra}]'")


def challenges(values: Iterable[str]) -> dict[AuthScheme, str]:
    """The schemes a WWW-Authenticate or Proxy-Authenticate answer offers, with each one's parameters."""
    offered: dict[AuthScheme, str] = {}
    for value in values:
        starts = list(_SCHEME_START.finditer(value))
        for i, start in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(value)
            scheme = _NAMES.get(start.group(1).lower())
            if scheme is not None:
                offered.setdefault(scheme, value[start.end(1) : end].strip().strip(","))
    return offered


class Authenticator:
    """One job's logins to one kind of peer (the servers, or the proxies), as the peers ask for them.

    The scheme is the strongest one the challenge offers that the job has a credential for (BITS picks by the
    challenge too); a job with a Basic credential alone sends it at once, saving a round trip per file. Once a
    peer has asked, its scheme is remembered: Basic and Digest go out with the next requests unasked.
    """

    def __init__(self, logins: Iterable[Login], header: str) -> None:
        self.logins = {login.scheme: login for login in logins}
        self.header = header  # Authorization or Proxy-Authorization
        self._digest: dict[str, Any] = {}  # peer -> a requests HTTPDigestAuth holding that peer's challenge
        self._known: dict[str, AuthScheme] = {}  # peer -> the scheme it asked for
        self._handshakes: dict[str, Any] = {}  # peer -> an NTLM or Negotiate context between its legs

    def __bool__(self) -> bool:
        return bool(self.logins)

    def unasked(self, peer: str, method: str, url: str) -> str | None:
        """The header value to send before the peer asks: its remembered scheme, or a lone Basic login."""
        scheme = self._known.get(peer) or (AuthScheme.BASIC if list(self.logins) == [AuthScheme.BASIC] else None)
        if scheme is AuthScheme.BASIC:
            return _basic(self.logins[AuthScheme.BASIC])
        if scheme is AuthScheme.DIGEST and peer in self._digest:
            return str(self._digest[peer].build_digest_header(method, url))
        return None

    def answer(
        self, peer: str, offered: Mapping[AuthScheme, str], method: str, url: str, host: str, carried: str | None
    ) -> str | None:
        """The header value that answers a 401 or 407; None when the job has no login the peer accepts, or the
        request it answers (``carried``: its header) already held that login and was refused (bits.md §6)."""
        if self._handshakes.get(peer) is not None and offered.keys() & {AuthScheme.NTLM, AuthScheme.NEGOTIATE}:
            context, scheme = self._handshakes[peer]
            token = offered.get(scheme, "")
            if not token:
                self._handshakes.pop(peer)
                return None  # the handshake was refused: the 401 stands
            out = context.step(base64.b64decode(token))
            return f"{_WIRE_NAMES[scheme]} {base64.b64encode(out).decode()}" if out else None
        usable = [s for s in _STRONGEST_FIRST if s in offered and s in self.logins]
        if not usable:
            return None
        scheme = usable[0]
        login = self.logins[scheme]
        if scheme is AuthScheme.BASIC:
            if (carried or "").startswith("Basic "):
                return None  # sent with this request and refused: report the 401 (credentials once)
            self._known[peer] = scheme
            return _basic(login)
        if scheme is AuthScheme.DIGEST:
            import requests.auth
            import requests.utils

            digest = requests.auth.HTTPDigestAuth(login.username or "", login.password or "")
            digest.init_per_thread_state()
            digest._thread_local.chal = requests.utils.parse_dict_header(offered[scheme])
            if (carried or "").startswith("Digest ") and "stale=true" not in offered[scheme].lower():
                return None  # this request's digest was refused outright, not for an old nonce
            self._known[peer], self._digest[peer] = scheme, digest
            return str(digest.build_digest_header(method, url))
        context = _spnego_client(login, scheme, host)
        self._handshakes[peer] = (context, scheme)
        return f"{_WIRE_NAMES[scheme]} {base64.b64encode(context.step()).decode()}"

    def done(self, peer: str) -> None:
        """The peer accepted the request: a finished NTLM or Negotiate handshake is dropped."""
        self._handshakes.pop(peer, None)


def _basic(login: Login) -> str:
    pair = f"{login.username or ''}:{login.password or ''}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"


def _spnego_client(login: Login, scheme: AuthScheme, host: str) -> Any:
    """An NTLM or Negotiate (Kerberos) context from pyspnego, the library requests-ntlm is built on."""
    try:
        import spnego
    except ImportError:
        extra = "ntlm" if scheme is AuthScheme.NTLM else "kerberos"
        raise LoginUnavailable(scheme.name, extra) from None
    protocol = "ntlm" if scheme is AuthScheme.NTLM else "negotiate"
    return spnego.client(login.username, login.password, hostname=host, service="HTTP", protocol=protocol)
