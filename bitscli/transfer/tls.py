"""TLS for the job's connections: the system's trust store by default, a CA bundle, a client certificate, checks off."""

from __future__ import annotations

import functools
import os
import ssl


def context_for(
    verify: bool | str, cert: tuple[str, str | None] | None = None, check_hostname: bool = True
) -> ssl.SSLContext:
    """An SSL context, made once per combination of settings (and of SSL_CERT_FILE and SSL_CERT_DIR).

    ``verify``: True checks certificates against the operating system's trust store, which OpenSSL finds
    itself and which SSL_CERT_FILE and SSL_CERT_DIR override (certifi's bundle only where the system has
    none); a path checks against that CA file or directory; False checks nothing (security flags 0x4, 0x8 and
    0x10 together, as near as OpenSSL comes to ignoring one kind of error). ``check_hostname`` False is flag
    0x2 (IGNORE_CERT_CN_INVALID). ``cert``: a PEM client certificate and its key (None: in the same file).
    """
    return _context(verify, cert, check_hostname, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=32)
def _context(
    verify: bool | str, cert: tuple[str, str | None] | None, check_hostname: bool, _file: str | None, _dir: str | None
) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        if os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
        context.check_hostname = check_hostname
    else:
        context = ssl.create_default_context()  # the system's store, and SSL_CERT_FILE / SSL_CERT_DIR
        if not context.cert_store_stats()["x509_ca"] and not _system_paths_exist():
            import certifi  # a system without CA certificates (a bare container): requests' bundle instead

            context.load_verify_locations(cafile=certifi.where())
        context.check_hostname = check_hostname
    if cert is not None:
        context.load_cert_chain(cert[0], cert[1])
    return context


def _system_paths_exist() -> bool:
    """Whether OpenSSL's default CA file or directory holds anything (a directory is loaded lazily)."""
    paths = ssl.get_default_verify_paths()
    candidates = [os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), paths.cafile, paths.capath]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return True
        if candidate and os.path.isdir(candidate) and any(os.scandir(candidate)):
            return True
    return False
