"""Classify transfer failures as BITS does: transient or fatal, an HRESULT, an error context, a message."""

from __future__ import annotations

import errno
import time
from email.utils import parsedate_to_datetime

import h11

from bitscli.errors import HResult, http_status
from bitscli.model import ErrorContext
from bitscli.transfer.auth import LoginUnavailable
from bitscli.transfer.connection import HeadersTooLarge, ProxyRefused, ProxyUnreachable


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
        code=http_status(status),
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
    if isinstance(exc, LoginUnavailable):
        return TransferError(
            f"{exc} (for {url})", code=HResult.BG_E_INVALID_AUTH_SCHEME, context=ErrorContext.REMOTE_FILE,
            transient=False,
        )  # fmt: skip
    if isinstance(exc, ProxyRefused):
        return TransferError(
            f"{exc} for {url}", code=http_status(exc.status), context=ErrorContext.GENERAL_TRANSPORT,
            transient=status_is_transient(exc.status),
        )  # fmt: skip
    if isinstance(exc, ProxyUnreachable):
        cause = transport_error(exc.cause, url)  # timed out, refused, not resolved: as for a server
        return TransferError(f"{exc} (for {url})", code=cause.code, context=ErrorContext.GENERAL_TRANSPORT,
                             transient=True)  # fmt: skip
    if isinstance(exc, HeadersTooLarge):
        return protocol_error(f"the response from {url} has too large a header section ({exc})")
    if isinstance(exc, h11.RemoteProtocolError):
        return protocol_error(f"the response from {url} breaks HTTP/1.1 ({exc})")
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered:
        return TransferError(
            f"TLS failure talking to {url}: {exc}",
            code=HResult.ERROR_INTERNET_SECURE_FAILURE,
            context=ErrorContext.GENERAL_TRANSPORT,
            transient=False,
        )
    if "timed out" in lowered or "timeout" in lowered:
        code, what = HResult.ERROR_INTERNET_TIMEOUT, "timed out"
    elif "name or service not known" in lowered or "nodename nor servname" in lowered or "resolve" in lowered:
        code, what = HResult.ERROR_INTERNET_NAME_NOT_RESOLVED, "host name not resolved"
    elif "refused" in lowered:
        code, what = HResult.ERROR_INTERNET_CANNOT_CONNECT, "connection refused"
    else:
        code, what = HResult.ERROR_INTERNET_CONNECTION_RESET, "connection lost"
    return TransferError(f"{what}: {url}", code=code, context=ErrorContext.GENERAL_TRANSPORT, transient=True)


def local_error(exc: OSError, path: str) -> TransferError:
    """A local-disk failure: a full disk is transient (space can be freed), a bad path or permission fatal."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        code, transient = HResult.ERROR_DISK_FULL, True  # space can be freed
    elif exc.errno == errno.EFBIG:
        code, transient = HResult.ERROR_FILE_TOO_LARGE, False  # a file system's or ulimit's size: no retry helps
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        code, transient = HResult.E_ACCESSDENIED, False
    elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
        code, transient = HResult.ERROR_PATH_NOT_FOUND, False
    else:
        code, transient = HResult.E_FAIL, True
    message = f"{exc.strerror or exc}: {path}"
    return TransferError(message, code=code, context=ErrorContext.LOCAL_FILE, transient=transient)


def part_file_error(exc: OSError, part: str) -> TransferError:
    """A part file that cannot be opened, or vanished under a transfer: a missing directory is transient (it may
    be made again: the file then starts over), anything else as local_error says."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return TransferError(
            f"the part file {part} or its directory is gone; the file starts over once the directory exists",
            code=HResult.ERROR_PATH_NOT_FOUND, context=ErrorContext.LOCAL_FILE, transient=True,
        )  # fmt: skip
    return local_error(exc, part)


def protocol_error(message: str, *, code: int = HResult.ERROR_INTERNET_INVALID_SERVER_RESPONSE) -> TransferError:
    """The server broke HTTP's rules (wrong Content-Range, ...): retried later, never spliced."""
    return TransferError(message, code=code, context=ErrorContext.REMOTE_FILE, transient=True)
