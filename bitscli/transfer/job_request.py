"""What a job adds to its requests: custom headers, credentials and proxy settings (bits.md §3, §7)."""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import urlsplit

from bitscli.model import AuthScheme, AuthTarget, ErrorContext, Job, ProxyUsage
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
    """Arguments for requests: auth, proxies and TLS verification (sessions do not read the environment)."""
    options: dict[str, Any] = {"verify": _ca_bundle()}
    for credential in job.credentials:
        if credential.target is AuthTarget.SERVER:
            options["auth"] = _server_auth(credential.scheme, credential.username, credential.password)
    proxies = _proxies(job)
    options["proxies"] = proxies if proxies is not None else environment_proxies(url)
    return options


@functools.lru_cache(maxsize=256)
def _environment_proxies_for(scheme: str, netloc: str) -> dict[str, str]:
    import requests.utils

    return dict(requests.utils.get_environ_proxies(f"{scheme}://{netloc}/"))


def environment_proxies(url: str) -> dict[str, str]:
    """PRECONFIG on Linux: http_proxy, https_proxy and no_proxy, as requests would read them."""
    parts = urlsplit(url)
    return _environment_proxies_for(parts.scheme, parts.netloc)


def _ca_bundle() -> str | bool:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _server_auth(scheme: AuthScheme, user: str | None, password: str | None) -> Any:
    import requests.auth

    if scheme is AuthScheme.BASIC:
        return requests.auth.HTTPBasicAuth(user or "", password or "")
    if scheme is AuthScheme.DIGEST:
        return requests.auth.HTTPDigestAuth(user or "", password or "")
    if scheme is AuthScheme.NTLM:
        try:
            from requests_ntlm import HttpNtlmAuth
        except ImportError:
            raise _missing_extra("NTLM", "ntlm") from None
        return HttpNtlmAuth(user or "", password or "")
    try:
        from requests_gssapi import HTTPSPNEGOAuth
    except ImportError:
        raise _missing_extra("NEGOTIATE", "kerberos") from None
    return HTTPSPNEGOAuth()


def _missing_extra(scheme: str, extra: str) -> TransferError:
    return TransferError(
        f"{scheme} authentication needs an optional package: pip install 'bitscli[{extra}]'",
        code=0x80200028, context=ErrorContext.GENERAL_QUEUE_MANAGER, transient=False,
    )  # fmt: skip


def _proxies(job: Job) -> dict[str, str] | None:
    """None keeps requests' own choice (environment variables), which is PRECONFIG on Linux."""
    if job.proxy_usage is ProxyUsage.NO_PROXY:
        return {"http": "", "https": "", "no_proxy": "*"}
    if job.proxy_usage is not ProxyUsage.OVERRIDE or not job.proxy_list:
        return None  # AUTODETECT (WPAD) is not implemented: it behaves as PRECONFIG
    first = job.proxy_list.replace(";", ",").split(",")[0].strip()
    proxy = first if "://" in first else f"http://{first}"
    for credential in job.credentials:
        if credential.target is AuthTarget.PROXY and credential.scheme is AuthScheme.BASIC and credential.username:
            from urllib.parse import quote

            scheme, rest = proxy.split("://", 1)
            proxy = f"{scheme}://{quote(credential.username)}:{quote(credential.password or '')}@{rest}"
    result = {"http": proxy, "https": proxy}
    if job.proxy_bypass_list:
        hosts = [h for h in job.proxy_bypass_list.replace(",", " ").split() if h != "<local>"]
        result["no_proxy"] = ",".join(
            [*hosts, "localhost", "127.0.0.1"] if "<local>" in job.proxy_bypass_list else hosts
        )
    return result
