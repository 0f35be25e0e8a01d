"""The BitsError family: what went wrong, what to do, the BITS error code and the exit code."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes; README documents each one and ``cli.main`` is the only place mapping them."""

    OK = 0
    FAILURE = 1  # an unexpected internal error (a bug); the traceback shows only with --debug
    USAGE = 2  # bad arguments or values (the same code click uses for usage errors)
    NOT_FOUND = 3  # no job with that GUID or name
    AMBIGUOUS = 4  # a display name that matches several jobs
    INVALID_STATE = 5  # the job's state does not allow the operation (BG_E_INVALID_STATE, BG_E_EMPTY)
    LIMIT = 6  # a BITS quota: jobs per user, files per job, ranges per file
    QUEUE = 7  # the queue database is unreadable, corrupt, newer than this bitscli, or busy
    CONFIG = 8  # the configuration file is malformed
    NOT_SUPPORTED = 9  # a BitsAdmin switch that bitscli deliberately does not implement
    TRANSFER_FAILED = 10  # `transfer` or `wait` ended with the job in ERROR (or cancelled); `complete` kept nothing
    DAEMON = 11  # the daemon is not running (`daemon status`) or could not be started or stopped
    TIMEOUT = 12  # `wait --timeout` ran out
    INTERRUPTED = 130  # Ctrl-C


class HResult(enum.IntEnum):
    """Every BITS, Win32 and WinINet HRESULT bitscli reports or reads (bits.md §2.6); MESSAGES says what each means.

    Win32 and WinINet errors are HRESULT_FROM_WIN32(code) = 0x80070000 + code, and carry the Win32 name.
    HTTP statuses are not members: ``http_status(status)`` makes BITS's ``0x80190000 + status``.
    """

    S_OK = 0
    BG_S_PARTIAL_COMPLETE = 0x00200017
    BG_E_NOT_FOUND = 0x80200001
    BG_E_INVALID_STATE = 0x80200002
    BG_E_EMPTY = 0x80200003
    BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020000F
    BG_E_INSUFFICIENT_HTTP_SUPPORT = 0x80200012
    BG_E_INSUFFICIENT_RANGE_SUPPORT = 0x80200013
    BG_E_PROXY_LIST_TOO_LARGE = 0x80200018
    BG_E_PROXY_BYPASS_LIST_TOO_LARGE = 0x80200019
    BG_E_TOO_MANY_FILES = 0x8020001C
    BG_E_LOCAL_FILE_CHANGED = 0x8020001D
    BG_E_SESSION_NOT_FOUND = 0x8020001F
    BG_E_TOO_LARGE = 0x80200020
    BG_E_STRING_TOO_LONG = 0x80200021
    BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH = 0x80200022
    BG_E_USERNAME_TOO_LARGE = 0x80200025
    BG_E_PASSWORD_TOO_LARGE = 0x80200026
    BG_E_INVALID_AUTH_TARGET = 0x80200027
    BG_E_INVALID_AUTH_SCHEME = 0x80200028
    BG_E_INVALID_RANGE = 0x8020002B
    BG_E_OVERLAPPING_RANGES = 0x8020002C
    BG_E_BLOCKED_BY_POLICY = 0x8020003E
    BG_E_INVALID_PROXY_INFO = 0x8020003F
    BG_E_INVALID_CREDENTIALS = 0x80200040
    BG_E_TOO_MANY_JOBS_PER_USER = 0x80200049
    BG_E_TOO_MANY_FILES_IN_JOB = 0x80200051
    BG_E_TOO_MANY_RANGES_IN_FILE = 0x80200052
    BG_E_VALIDATION_FAILED = 0x80200053
    BG_E_MAXDOWNLOAD_TIMEOUT = 0x80200054
    # No BITS code exists for a redirect loop; it is reported as an HTTP status BITS never sends (310).
    BG_E_TOO_MANY_REDIRECTS = 0x80190136
    CRYPT_E_HASH_VALUE = 0x80091007
    E_NOTIMPL = 0x80004001
    E_FAIL = 0x80004005
    ERROR_FILE_NOT_FOUND = 0x80070002
    ERROR_PATH_NOT_FOUND = 0x80070003
    E_ACCESSDENIED = 0x80070005
    ERROR_TOO_MANY_SESS = 0x80070045
    E_INVALIDARG = 0x80070057
    ERROR_DISK_FULL = 0x80070070
    ERROR_FILE_TOO_LARGE = 0x800700DF
    ERROR_INTERNET_TIMEOUT = 0x80072EE2
    ERROR_INTERNET_NAME_NOT_RESOLVED = 0x80072EE7
    ERROR_INTERNET_CANNOT_CONNECT = 0x80072EFD
    ERROR_INTERNET_CONNECTION_RESET = 0x80072EFF
    ERROR_INTERNET_INVALID_SERVER_RESPONSE = 0x80072F78
    ERROR_INTERNET_SECURE_FAILURE = 0x80072F8F


MESSAGES: dict[HResult, str] = {
    HResult.S_OK: "the operation succeeded",
    HResult.BG_S_PARTIAL_COMPLETE: "some files of the job were not transferred and were dropped",
    HResult.BG_E_NOT_FOUND: "the job was not found",
    HResult.BG_E_INVALID_STATE: "the job's state does not allow this",
    HResult.BG_E_EMPTY: "the job has no files",
    HResult.BG_E_ERROR_INFORMATION_UNAVAILABLE: "no error information is available",
    HResult.BG_E_INSUFFICIENT_HTTP_SUPPORT: "the server does not support what the transfer needs of HTTP",
    HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT: "the server does not support the range requests the transfer needs",
    HResult.BG_E_PROXY_LIST_TOO_LARGE: "the proxy list is too long",
    HResult.BG_E_PROXY_BYPASS_LIST_TOO_LARGE: "the proxy bypass list is too long",
    HResult.BG_E_TOO_MANY_FILES: "an upload job can have only one file",
    HResult.BG_E_LOCAL_FILE_CHANGED: "the local file changed during the transfer",
    HResult.CRYPT_E_HASH_VALUE: "the file's hash is not the one expected",
    HResult.BG_E_SESSION_NOT_FOUND: "the server does not know the upload session",
    HResult.BG_E_TOO_LARGE: "the file or reply is larger than the server or bitscli allows",
    HResult.BG_E_STRING_TOO_LONG: "the text is too long",
    HResult.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: "the server does not speak the BITS upload protocol",
    HResult.BG_E_USERNAME_TOO_LARGE: "the user name is too long",
    HResult.BG_E_PASSWORD_TOO_LARGE: "the password is too long",
    HResult.BG_E_INVALID_AUTH_TARGET: "the authentication target is not valid",
    HResult.BG_E_INVALID_AUTH_SCHEME: "the authentication scheme is not valid or not available",
    HResult.BG_E_INVALID_RANGE: "a byte range is not valid",
    HResult.BG_E_OVERLAPPING_RANGES: "byte ranges overlap",
    HResult.BG_E_BLOCKED_BY_POLICY: "a policy forbids this",
    HResult.BG_E_INVALID_PROXY_INFO: "the proxy settings are not valid",
    HResult.BG_E_INVALID_CREDENTIALS: "the credentials are not valid",
    HResult.BG_E_TOO_MANY_JOBS_PER_USER: "the user has too many jobs (MaxJobsPerUser)",
    HResult.BG_E_TOO_MANY_FILES_IN_JOB: "the job has too many files (MaxFilesPerJob)",
    HResult.BG_E_TOO_MANY_RANGES_IN_FILE: "the file has too many ranges (MaxRangesPerFile)",
    HResult.BG_E_VALIDATION_FAILED: "the file failed validation",
    HResult.BG_E_MAXDOWNLOAD_TIMEOUT: "the job spent its maximum download time",
    HResult.BG_E_TOO_MANY_REDIRECTS: "too many redirects",
    HResult.E_NOTIMPL: "not implemented",
    HResult.E_FAIL: "unspecified failure",
    HResult.ERROR_FILE_NOT_FOUND: "the file was not found",
    HResult.ERROR_PATH_NOT_FOUND: "the path was not found",
    HResult.E_ACCESSDENIED: "access is denied",
    HResult.ERROR_TOO_MANY_SESS: "the server has too many upload sessions",
    HResult.E_INVALIDARG: "an argument is not valid",
    HResult.ERROR_DISK_FULL: "the disk is full",
    HResult.ERROR_FILE_TOO_LARGE: "the file is larger than the file system or a size limit (ulimit -f) allows",
    HResult.ERROR_INTERNET_TIMEOUT: "the operation timed out",
    HResult.ERROR_INTERNET_NAME_NOT_RESOLVED: "the server name could not be resolved",
    HResult.ERROR_INTERNET_CANNOT_CONNECT: "the connection to the server could not be made",
    HResult.ERROR_INTERNET_CONNECTION_RESET: "the connection to the server was reset",
    HResult.ERROR_INTERNET_INVALID_SERVER_RESPONSE: "the server's response was not valid",
    HResult.ERROR_INTERNET_SECURE_FAILURE: "the server's TLS certificate or handshake failed",
}

HTTP_STATUS_BASE = 0x80190000  # BG_E_HTTP_ERROR_xxx (bits.md §2.6)


def http_status(status: int) -> int:
    """BITS's HRESULT for an HTTP status: ``0x80190000 + status`` (BG_E_HTTP_ERROR_404 is 0x80190194)."""
    return HTTP_STATUS_BASE + status


def describe(code: int) -> tuple[str, str] | None:
    """(name, message) of a known HRESULT, an HTTP status's included; None for a code bitscli does not know."""
    try:
        known = HResult(code)
    except ValueError:
        status = code - HTTP_STATUS_BASE
        if 100 <= status <= 599:
            return f"BG_E_HTTP_ERROR_{status}", f"the server answered HTTP {status}"
        return None
    return known.name, MESSAGES[known]


def format_hresult(code: int) -> str:
    """``0x80200002 (BG_E_INVALID_STATE)`` when the code is known, else the bare hex."""
    described = describe(code)
    return f"0x{code:08x} ({described[0]})" if described else f"0x{code:08x}"


class BitsError(Exception):
    """An expected failure: a message, an optional hint, an optional BITS code and an exit code."""

    exit_code: ExitCode = ExitCode.FAILURE
    default_code: int | None = None

    def __init__(self, message: str, *, hint: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code if code is not None else self.default_code


class InvalidValue(BitsError):
    """A value the user gave is malformed or out of range."""

    exit_code = ExitCode.USAGE
    default_code = HResult.E_INVALIDARG


class JobNotFound(BitsError):
    exit_code = ExitCode.NOT_FOUND
    default_code = HResult.BG_E_NOT_FOUND


class AmbiguousJob(BitsError):
    exit_code = ExitCode.AMBIGUOUS
    default_code = HResult.E_INVALIDARG


class InvalidState(BitsError):
    """The operation is not allowed in the job's current state."""

    exit_code = ExitCode.INVALID_STATE
    default_code = HResult.BG_E_INVALID_STATE


class LimitExceeded(BitsError):
    exit_code = ExitCode.LIMIT


class QueueError(BitsError):
    """The queue database cannot be used safely; it is never overwritten."""

    exit_code = ExitCode.QUEUE


class ConfigError(BitsError):
    exit_code = ExitCode.CONFIG


class NotSupported(BitsError):
    exit_code = ExitCode.NOT_SUPPORTED
    default_code = HResult.E_NOTIMPL


class DaemonError(BitsError):
    """The daemon is not running, or could not be started or stopped."""

    exit_code = ExitCode.DAEMON


class TransferFailed(BitsError):
    """`transfer` or `wait` saw the job end in ERROR or CANCELLED."""

    exit_code = ExitCode.TRANSFER_FAILED


class WaitTimeout(BitsError):
    """`wait --timeout` ran out before the job finished."""

    exit_code = ExitCode.TIMEOUT


class Interrupted(BitsError):
    """Ctrl-C; what was interrupted has been cleaned up (a `transfer` job is cancelled)."""

    exit_code = ExitCode.INTERRUPTED
