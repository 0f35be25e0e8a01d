"""Parse and check how a job talks to servers: custom headers, proxy settings and credentials."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from bitscli.errors import HResult, InvalidValue, NotSupported
from bitscli.inputs.fields import CONTROL_RE, NULL_WORDS, TOKEN_RE, parse_enum
from bitscli.model import AuthScheme, AuthTarget, ProxyUsage

# Limits from bits.md §1c, §2.4 and §7.
MAX_PROXY_LIST = 32 * 1024
MAX_CUSTOM_HEADERS = 16_384
MAX_USERNAME = 300
MAX_PASSWORD = 65_535
# Headers bitscli must own for ranged, resumable transfers to stay correct.
_RESERVED_HEADERS = {"range", "if-range", "content-length", "transfer-encoding", "connection"}
_SENSITIVE_HEADER_RE = re.compile(r"auth|cookie|token|secret|key|pass|session", re.IGNORECASE)


def parse_custom_headers(headers: Iterable[str]) -> tuple[str, ...]:
    parsed: list[str] = []
    for header in headers:
        if header.strip() in NULL_WORDS:
            continue
        name, sep, value = header.partition(":")
        name = name.strip()
        if not sep or not TOKEN_RE.match(name):
            raise InvalidValue(f"custom header {_header_label(header)!r} is not 'Name: value'")
        if CONTROL_RE.search(value.replace("\t", " ")):
            raise InvalidValue(f"custom header {name!r} contains control characters (CR/LF are not allowed)")
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidValue(f"bitscli sets the {name} header itself", hint="leave it out of the custom headers")
        parsed.append(f"{name}: {value.strip()}")
    total = len("\r\n".join(parsed))
    if total > MAX_CUSTOM_HEADERS:
        raise InvalidValue(
            f"custom headers total {total} characters; the limit is {MAX_CUSTOM_HEADERS}",
            code=HResult.BG_E_STRING_TOO_LONG,
        )
    return tuple(parsed)


def _header_label(header: str) -> str:
    return header.partition(":")[0][:40]


def is_secret_header(name: str) -> bool:
    """A header whose value is a secret: shown as ***, and never sent on to another origin by a redirect."""
    return bool(_SENSITIVE_HEADER_RE.search(name))


def redact_header(header: str) -> str:
    """Show a header's name always, its value only when the name does not suggest a secret."""
    name, _, value = header.partition(":")
    return f"{name}: ***" if is_secret_header(name) else f"{name}:{value}"


def parse_proxy_settings(
    usage_text: str, proxy_list: str | None, bypass: str | None
) -> tuple[ProxyUsage, str | None, str | None]:
    usage = parse_enum(ProxyUsage, usage_text, "proxy usage", code=HResult.BG_E_INVALID_PROXY_INFO)
    if usage is ProxyUsage.AUTODETECT:
        raise NotSupported(
            "proxy usage AUTODETECT (WPAD and PAC scripts) is not supported by bitscli",
            hint="use PRECONFIG (http_proxy, https_proxy and no_proxy) or OVERRIDE with the proxies to try in order",
            code=HResult.BG_E_INVALID_PROXY_INFO,
        )
    plist = None if proxy_list is None or proxy_list.strip() in NULL_WORDS else proxy_list.strip()
    blist = None if bypass is None or bypass.strip() in NULL_WORDS else bypass.strip()
    if usage is not ProxyUsage.OVERRIDE:
        if plist or blist:
            raise InvalidValue(
                f"proxy lists apply only to OVERRIDE, not {usage.name}", code=HResult.BG_E_INVALID_PROXY_INFO
            )
        return usage, None, None
    if bypass is None or not plist:
        raise InvalidValue(
            "OVERRIDE needs a proxy list and a bypass list",
            hint='for example: setproxysettings JOB OVERRIDE proxy:8080 "<local>"  (use NULL for no bypass)',
            code=HResult.BG_E_INVALID_PROXY_INFO,
        )
    if len(plist) > MAX_PROXY_LIST:
        raise InvalidValue("the proxy list is longer than 32 KB", code=HResult.BG_E_PROXY_LIST_TOO_LARGE)
    if blist and len(blist) > MAX_PROXY_LIST:
        raise InvalidValue("the proxy bypass list is longer than 32 KB", code=HResult.BG_E_PROXY_BYPASS_LIST_TOO_LARGE)
    for entry in re.split(r"[,;\s]+", plist):
        _check_proxy_entry(entry)
    return usage, plist, blist


def _check_proxy_entry(entry: str) -> None:
    parts = urlsplit(entry if "://" in entry else f"http://{entry}")
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise InvalidValue(
            f"bad proxy {entry!r}",
            hint="write proxies as host:port, comma-separated",
            code=HResult.BG_E_INVALID_PROXY_INFO,
        )


def parse_auth_target(value: str) -> AuthTarget:
    return parse_enum(AuthTarget, value, "credential target", code=HResult.BG_E_INVALID_AUTH_TARGET)


def parse_auth_scheme(value: str) -> AuthScheme:
    return parse_enum(AuthScheme, value, "authentication scheme", code=HResult.BG_E_INVALID_AUTH_SCHEME)


def check_credentials(scheme: AuthScheme, username: str | None, password: str | None) -> None:
    if username is not None and len(username) > MAX_USERNAME:
        raise InvalidValue(
            f"the user name is longer than {MAX_USERNAME} characters", code=HResult.BG_E_USERNAME_TOO_LARGE
        )
    if password is not None and len(password) > MAX_PASSWORD:
        raise InvalidValue(
            f"the password is longer than {MAX_PASSWORD} characters", code=HResult.BG_E_PASSWORD_TOO_LARGE
        )
    # bits.md §7: NULL user and password mean implicit credentials, which only NTLM/Negotiate have.
    if username is None and scheme in (AuthScheme.BASIC, AuthScheme.DIGEST):
        raise InvalidValue(f"{scheme.name} needs a user name", code=HResult.BG_E_INVALID_CREDENTIALS)
