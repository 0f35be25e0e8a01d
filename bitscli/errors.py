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
    TRANSFER_FAILED = 10  # `transfer` or `wait` ended with the job in ERROR (or cancelled)
    DAEMON = 11  # the daemon is not running (`daemon status`) or could not be started or stopped
    TIMEOUT = 12  # `wait --timeout` ran out
    INTERRUPTED = 130  # Ctrl-C


class HResult(enum.IntEnum):
    """BITS and Win32 HRESULTs that bitscli reports (reference bits.md §2.6)."""

    S_OK = 0
    BG_S_PARTIAL_COMPLETE = 0x00200017
    BG_E_NOT_FOUND = 0x80200001
    BG_E_INVALID_STATE = 0x80200002
    BG_E_EMPTY = 0x80200003
    BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020000F
    BG_E_PROXY_LIST_TOO_LARGE = 0x80200018
    BG_E_PROXY_BYPASS_LIST_TOO_LARGE = 0x80200019
    BG_E_TOO_MANY_FILES = 0x8020001C
    BG_E_LOCAL_FILE_CHANGED = 0x8020001D
    BG_E_TOO_LARGE = 0x80200020
    BG_E_STRING_TOO_LONG = 0x80200021
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
    E_NOTIMPL = 0x80004001
    E_ACCESSDENIED = 0x80070005
    E_INVALIDARG = 0x80070057


def format_hresult(code: int) -> str:
    """``0x80200002 (BG_E_INVALID_STATE)`` when the code is known, else the bare hex."""
    try:
        return f"0x{code:08x} ({HResult(code).name})"
    except ValueError:
        return f"0x{code:08x}"


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
