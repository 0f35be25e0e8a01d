"""What a job adds to its requests: custom headers, TLS checks, logins and proxies (bits.md §3, §7)."""

from __future__ import annotations

import fnmatch
import functools
import os
from typing import Any
from urllib.parse import urlsplit

from bitscli.errors import HResult
from bitscli.model import AuthTarget, Credential, ErrorContext, Job, ProxyUsage, SecurityFlags
from bitscli.transfer.auth import Login
from bitscli.transfer.classify import TransferError

USER_AGENT = "bitscli"


def headers(job: Job) -> dict[str, str]:
    """Custom headers go out on every request, each range request included (bits.md §3)."""
    result = {"User-Agent": USER_AGENT}
    for header in job.custom_headers:
        name, _, value = header.partition(":")
        result[name.strip()] = value.strip()
    return result


def request_options(job: Job, url: str) -> dict[str, Any]:
    """How the client reaches ``url`` for this job: TLS checks, logins, and the proxies to try in order."""
    flags = job.security_flags
    ignore_certificate = flags & (SecurityFlags.IGNORE_CERT_DATE_INVALID | SecurityFlags.IGNORE_UNKNOWN_CA
                                  | SecurityFlags.IGNORE_CERT_WRONG_USAGE)  # fmt: skip
    cert = (job.client_certificate, job.client_key) if job.client_certificate else None
    return {
        "verify": False if ignore_certificate else job.ca_bundle or _ca_bundle(),
        "cert": cert,
        "check_hostname": not flags & SecurityFlags.IGNORE_CERT_CN_INVALID,
        "logins": tuple(_login(c) for c in job.credentials if c.target is AuthTarget.SERVER),
        "proxy_logins": tuple(_login(c) for c in job.credentials if c.target is AuthTarget.PROXY),
        "proxies": proxies_for(job, url),
    }


def _login(credential: Credential) -> Login:
    return Login(credential.scheme, credential.username, credential.password)


def _ca_bundle() -> str | bool:
    """True: the system's trust store (and SSL_CERT_FILE, SSL_CERT_DIR); the variables requests and curl read too."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def proxies_for(job: Job, url: str) -> tuple[str, ...]:
    """The proxies to try for ``url``, in order; none: straight to the server (bits.md §3, setproxysettings)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if job.proxy_usage is ProxyUsage.NO_PROXY:
        return ()
    if job.proxy_usage is ProxyUsage.AUTODETECT:
        raise TransferError(
            "proxy usage AUTODETECT (WPAD) is not supported by bitscli",
            code=HResult.BG_E_INVALID_PROXY_INFO, context=ErrorContext.GENERAL_TRANSPORT, transient=False,
        )  # fmt: skip
    if job.proxy_usage is ProxyUsage.OVERRIDE and job.proxy_list:
        if _bypassed(host, job.proxy_bypass_list or ""):
            return ()
        return tuple(p.strip() for p in job.proxy_list.replace(";", ",").split(",") if p.strip())
    return _environment_proxies(parts.scheme.lower(), parts.netloc)


@functools.lru_cache(maxsize=256)
def _environment_proxies(scheme: str, netloc: str) -> tuple[str, ...]:
    """PRECONFIG on Linux: http_proxy, https_proxy and no_proxy, read as requests reads them."""
    import requests.utils

    proxy = requests.utils.get_environ_proxies(f"{scheme}://{netloc}/").get(scheme)
    return (proxy,) if proxy else ()


def _bypassed(host: str, bypass: str) -> bool:
    """The bypass list: space-separated host patterns (``*`` wildcards); ``<local>``, hosts without a dot."""
    for pattern in bypass.replace(",", " ").replace(";", " ").split():
        if pattern.lower() == "<local>":
            if "." not in host or host in ("127.0.0.1", "::1"):
                return True
        elif fnmatch.fnmatchcase(host, pattern.lower()):
            return True
    return False
