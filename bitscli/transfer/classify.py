"""Classify transfer failures as BITS does: transient or fatal, an HRESULT, an error context, a message."""

from __future__ import annotations

import errno
import time
from email.utils import parsedate_to_datetime

from bitscli.model import ErrorContext

HTTP_STATUS_BASE = 0x80190000  # BG_E_HTTP_ERROR_xxx = 0x80190000 + status (bits.md §2.6)

# WinINet codes as HRESULTs, the ones BITS reports for transport failures.
INTERNET_TIMEOUT = 0x80072EE2
INTERNET_NAME_NOT_RESOLVED = 0x80072EE7
INTERNET_CANNOT_CONNECT = 0x80072EFD
INTERNET_CONNECTION_RESET = 0x80072EFF
INTERNET_INVALID_SERVER_RESPONSE = 0x80072F78
INTERNET_SECURE_FAILURE = 0x80072F8F
BG_E_INSUFFICIENT_RANGE_SUPPORT = 0x80200013
BG_E_TOO_MANY_REDIRECTS = 0x80190000 + 310  # no BITS code exists; reported as a redirect status
E_DISK_FULL = 0x80070070  # HRESULT_FROM_WIN32(ERROR_DISK_FULL)
E_ACCESSDENIED = 0x80070005
E_PATH_NOT_FOUND = 0x80070003
E_FAIL = 0x80004005


class TransferError(Exception):
    """A failed transfer attempt, classified; the daemon turns it into TRANSIENT_ERROR or ERROR."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        context: ErrorContext,
        transient: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.context = context
        self.transient = transient
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


def status_is_transient(status: int) -> bool:
    """The BITS table (bits.md §2.6), plus 429: a rate limit says "later", never "never"."""
    if 300 <= status < 400:
        return status not in (300, 301, 302, 303, 304, 305, 307)
    if 400 <= status < 500:
        return status in (408, 409, 429)
    if 500 <= status < 600:
        return status not in (501, 505)
    return True


def http_error(status: int, reason: str, url: str, retry_after: str | None = None) -> TransferError:
    return TransferError(
        f"HTTP {status} {reason} from {url}".rstrip(),
        code=HTTP_STATUS_BASE + status,
        context=ErrorContext.REMOTE_FILE,
        transient=status_is_transient(status),
        retry_after=parse_retry_after(retry_after, time.time()) if retry_after else None,
    )


def parse_retry_after(value: str, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def transport_error(exc: BaseException, url: str) -> TransferError:
    """A network failure from requests/urllib3/socket: always transient, except TLS verification."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered:
        return TransferError(
            f"TLS failure talking to {url}: {exc}",
            code=INTERNET_SECURE_FAILURE,
            context=ErrorContext.GENERAL_TRANSPORT,
            transient=False,
        )
    if "timed out" in lowered or "timeout" in lowered:
        code, what = INTERNET_TIMEOUT, "timed out"
    elif "name or service not known" in lowered or "nodename nor servname" in lowered or "resolve" in lowered:
        code, what = INTERNET_NAME_NOT_RESOLVED, "host name not resolved"
    elif "refused" in lowered:
        code, what = INTERNET_CANNOT_CONNECT, "connection refused"
    else:
        code, what = INTERNET_CONNECTION_RESET, "connection lost"
    return TransferError(f"{what}: {url}", code=code, context=ErrorContext.GENERAL_TRANSPORT, transient=True)


def local_error(exc: OSError, path: str) -> TransferError:
    """A local-disk failure: a full disk is transient (space can be freed), a bad path or permission fatal."""
    detail = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return TransferError(f"{detail}: {path}", code=E_DISK_FULL, context=ErrorContext.LOCAL_FILE, transient=True)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TransferError(f"{detail}: {path}", code=E_ACCESSDENIED, context=ErrorContext.LOCAL_FILE, transient=False)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return TransferError(
            f"{detail}: {path}", code=E_PATH_NOT_FOUND, context=ErrorContext.LOCAL_FILE, transient=False
        )
    return TransferError(f"{detail}: {path}", code=E_FAIL, context=ErrorContext.LOCAL_FILE, transient=True)


def protocol_error(message: str, *, code: int = INTERNET_INVALID_SERVER_RESPONSE) -> TransferError:
    """The server broke HTTP's rules (wrong Content-Range, ...): retried later, never spliced."""
    return TransferError(message, code=code, context=ErrorContext.REMOTE_FILE, transient=True)
