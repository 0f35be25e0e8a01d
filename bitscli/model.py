"""The job model with BITS names and numbers, and the pure state transitions of BITS (bits.md §2.2)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from bitscli.errors import HResult, InvalidState, InvalidValue, LimitExceeded

UNKNOWN = -1  # BITS reports an unknown size as -1 (BG_SIZE_UNKNOWN); printed as UNKNOWN
LENGTH_TO_EOF = -1  # BG_LENGTH_TO_EOF: a range that runs to the end of the remote file


class JobState(enum.IntEnum):
    """BG_JOB_STATE, with its numbers."""

    QUEUED = 0
    CONNECTING = 1
    TRANSFERRING = 2
    SUSPENDED = 3
    ERROR = 4
    TRANSIENT_ERROR = 5
    TRANSFERRED = 6
    ACKNOWLEDGED = 7
    CANCELLED = 8

    @property
    def is_final(self) -> bool:
        return self in (JobState.ACKNOWLEDGED, JobState.CANCELLED)


class JobType(enum.IntEnum):
    """BG_JOB_TYPE; BitsAdmin spells UPLOAD_REPLY as UPLOAD-REPLY."""

    DOWNLOAD = 0
    UPLOAD = 1
    UPLOAD_REPLY = 2

    @property
    def label(self) -> str:
        return self.name.replace("_", "-")

    @property
    def is_upload(self) -> bool:
        return self is not JobType.DOWNLOAD


class JobPriority(enum.IntEnum):
    """BG_JOB_PRIORITY: FOREGROUND competes like an application; the rest use idle bandwidth."""

    FOREGROUND = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class ErrorContext(enum.IntEnum):
    """BG_ERROR_CONTEXT: where an error happened."""

    NONE = 0
    UNKNOWN = 1
    GENERAL_QUEUE_MANAGER = 2
    QUEUE_MANAGER_NOTIFICATION = 3
    LOCAL_FILE = 4
    REMOTE_FILE = 5
    GENERAL_TRANSPORT = 6
    REMOTE_APPLICATION = 7


class NotifyFlags(enum.IntFlag):
    """BG_NOTIFY_* flags (bits.md §6); the default is JOB_TRANSFERRED | JOB_ERROR."""

    JOB_TRANSFERRED = 0x1
    JOB_ERROR = 0x2
    DISABLE = 0x4
    JOB_MODIFICATION = 0x8
    FILE_TRANSFERRED = 0x10
    FILE_RANGES_TRANSFERRED = 0x20


class ProxyUsage(enum.IntEnum):
    """BG_JOB_PROXY_USAGE, with its numbers."""

    PRECONFIG = 0
    NO_PROXY = 1
    OVERRIDE = 2
    AUTODETECT = 3


class AuthTarget(enum.IntEnum):
    SERVER = 1
    PROXY = 2


class AuthScheme(enum.IntEnum):
    BASIC = 1
    DIGEST = 2
    NTLM = 3
    NEGOTIATE = 4
    PASSPORT = 5  # deprecated by Microsoft; parsed so the refusal can be specific


class SecurityFlags(enum.IntFlag):
    """BG_SSL_* and BG_HTTP_REDIRECT_POLICY_* bits of the job's security flags (bits.md §3)."""

    ENABLE_CRL_CHECK = 0x1
    IGNORE_CERT_CN_INVALID = 0x2
    IGNORE_CERT_DATE_INVALID = 0x4
    IGNORE_UNKNOWN_CA = 0x8
    IGNORE_CERT_WRONG_USAGE = 0x10
    REDIRECT_POLICY_ALLOW_REPORT = 0x100
    REDIRECT_POLICY_DISALLOW = 0x200
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP = 0x800


ACL_LETTERS = {"O": 1, "G": 2, "D": 4, "S": 8}  # BG_COPY_FILE_OWNER/GROUP/DACL/SACL
ACTIVE_STATES = (JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING)  # the daemon has work (bits.md §2.2)
DEFAULT_NOTIFY_FLAGS = NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR  # this and the rest: bits.md §2.4
DEFAULT_MIN_RETRY_DELAY = 600
MIN_RETRY_DELAY_FLOOR = 5  # "Values under 5 s are raised to 5"
DEFAULT_NO_PROGRESS_TIMEOUT = 1_209_600
DEFAULT_MAX_DOWNLOAD_TIME = 7_776_000


@dataclass(frozen=True)
class ByteRange:
    """One ``offset:length`` range of a file added with ``addfilewithranges``."""

    offset: int
    length: int  # LENGTH_TO_EOF for "to the end"

    def __str__(self) -> str:
        return f"{self.offset}:{'eof' if self.length == LENGTH_TO_EOF else self.length}"


@dataclass(frozen=True)
class JobFile:
    remote_name: str
    local_name: str
    bytes_total: int = UNKNOWN
    bytes_transferred: int = 0
    completed: bool = False
    ranges: tuple[ByteRange, ...] = ()
    validation_state: bool = False
    etag: str | None = None  # validators of the remote version the part file holds (If-Range)
    last_modified: str | None = None


@dataclass(frozen=True)
class JobError:
    code: int
    context: ErrorContext
    file_index: int | None
    message: str


@dataclass(frozen=True)
class Credential:
    target: AuthTarget
    scheme: AuthScheme
    username: str | None
    password: str | None = field(default=None, repr=False)  # a secret: never printed


@dataclass(frozen=True)
class Job:
    id: str
    display_name: str
    type: JobType
    owner: str
    creation_time: float
    modification_time: float
    state: JobState = JobState.SUSPENDED
    priority: JobPriority = JobPriority.NORMAL
    description: str = ""
    completion_time: float | None = None
    started: bool = False  # resumed at least once; dynamic content can only be set before that
    files: tuple[JobFile, ...] = ()
    notify_flags: int = int(DEFAULT_NOTIFY_FLAGS)
    notify_program: str | None = None
    notify_parameters: str | None = None
    min_retry_delay: int = DEFAULT_MIN_RETRY_DELAY
    no_progress_timeout: int = DEFAULT_NO_PROGRESS_TIMEOUT
    max_download_time: int = DEFAULT_MAX_DOWNLOAD_TIME
    proxy_usage: ProxyUsage = ProxyUsage.PRECONFIG
    proxy_list: str | None = None
    proxy_bypass_list: str | None = None
    custom_headers: tuple[str, ...] = field(default=(), repr=False)  # may carry tokens
    custom_headers_write_only: bool = False
    credentials: tuple[Credential, ...] = ()
    security_flags: int = 0
    http_method: str = "GET"
    acl_flags: int = 0
    dynamic: bool = False
    reply_file_name: str | None = None
    error: JobError | None = None
    error_count: int = 0
    retry_at: float | None = None  # TRANSIENT_ERROR: when the job goes back to QUEUED (wall clock)
    transient_since: float | None = None  # first transient error without progress since (no-progress timer)
    active_seconds: float = 0.0  # time in CONNECTING/TRANSFERRING since the last resume (max download time)
    notified_state: int | None = None  # the state whose notification command line has run (notify.py)
    notify_retry_at: float | None = None  # a failed notification command line runs again at this time

    @property
    def files_total(self) -> int:
        return len(self.files)

    @property
    def files_transferred(self) -> int:
        return sum(1 for f in self.files if f.completed)

    @property
    def bytes_total(self) -> int:
        """The sum of the file sizes, or UNKNOWN while any size is unknown (as BITS reports it)."""
        if any(f.bytes_total == UNKNOWN for f in self.files):
            return UNKNOWN
        return sum(f.bytes_total for f in self.files)

    @property
    def bytes_transferred(self) -> int:
        return sum(f.bytes_transferred for f in self.files)


@dataclass(frozen=True)
class UploadState:
    """What an upload job keeps between runs: its BITS session, where packets go, and its reply (bits.md §4)."""

    session_id: str | None = None  # echoed byte for byte: not always a GUID
    session_url: str | None = None  # where the session's packets go: the job URL, or its BITS-Host-Id variant
    host_fallback: float | None = None  # BITS-Host-Id-Fallback-Timeout in seconds; None waits for ever
    host_failing_since: float | None = None  # when the host-id server first could not be reached
    local_stamp: str | None = None  # size, mtime and inode of the local file when the upload began
    reply_url: str | None = None  # BITS-Reply-URL from the last fragment's Ack
    reply_total: int = UNKNOWN
    reply_transferred: int = 0
    reply_etag: str | None = None
    reply_last_modified: str | None = None
    reply_done: bool = False
    closed: bool = False  # Close-Session (or Cancel-Session) was answered: nothing left on the server

    @property
    def needs_cancel(self) -> bool:
        """A cancelled job still holding a session: tell the server so it frees it (Cancel-Session)."""
        return self.session_id is not None and not self.closed


def _require_not_final(job: Job, action: str) -> None:  # the transitions below are pure: each takes `now`
    # "Final states never change ... any transition or setter on them gives BG_E_INVALID_STATE."
    if job.state.is_final:
        raise InvalidState(
            f"cannot {action} job {job.id} ('{job.display_name}'): it is {job.state.name}",
            hint="finished jobs never change; create a new job instead",
        )


def modify(job: Job, now: float, action: str, **changes: object) -> Job:
    """Apply property changes to a job that is not final, stamping its modification time."""
    _require_not_final(job, action)
    return dataclasses.replace(job, modification_time=now, **changes)  # type: ignore[arg-type]


def resume(job: Job, now: float) -> Job:
    _require_not_final(job, "resume")
    if not job.files:
        raise InvalidState(
            f"job {job.id} ('{job.display_name}') has no files to transfer",
            hint=f"add files first: bitscli addfile {job.id} URL PATH",
            code=HResult.BG_E_EMPTY,
        )
    if job.state in (JobState.SUSPENDED, JobState.ERROR, JobState.TRANSIENT_ERROR):
        # Resume clears the error and restarts the retry and download-time clocks (bits.md §2.4); the
        # next TRANSFERRED or ERROR runs the notification command line again.
        return dataclasses.replace(
            job, state=JobState.QUEUED, error=None, started=True, modification_time=now, retry_at=None,
            transient_since=None, active_seconds=0.0, notified_state=None, notify_retry_at=None,
        )  # fmt: skip
    return job  # an action state, or TRANSFERRED: nothing to do


def suspend(job: Job, now: float) -> Job:
    _require_not_final(job, "suspend")
    if job.state is JobState.SUSPENDED:
        return job
    return dataclasses.replace(job, state=JobState.SUSPENDED, modification_time=now)


def cancel(job: Job, now: float) -> Job:
    _require_not_final(job, "cancel")
    return dataclasses.replace(job, state=JobState.CANCELLED, modification_time=now, completion_time=now)


def complete(job: Job, now: float) -> Job:
    """ACKNOWLEDGED; the caller publishes finished files and reports a partial result."""
    _require_not_final(job, "complete")
    if job.type.is_upload and job.state is not JobState.TRANSFERRED:
        raise InvalidState(
            f"upload job {job.id} can be completed only once it is TRANSFERRED (it is {job.state.name})",
            hint="wait for the upload to finish, or cancel the job",
        )
    return dataclasses.replace(job, state=JobState.ACKNOWLEDGED, modification_time=now, completion_time=now)


def add_files(job: Job, new_files: Iterable[JobFile], now: float, max_files: int) -> Job:
    _require_not_final(job, "add files to")
    new = tuple(new_files)
    files = job.files + new
    if job.type.is_upload and len(files) > 1:
        raise LimitExceeded(
            f"upload job {job.id} already has its one file",
            hint="an upload job carries exactly one file; create another job for the next one",
            code=HResult.BG_E_TOO_MANY_FILES,
        )
    if len(files) > max_files:
        raise LimitExceeded(
            f"job {job.id} would have {len(files)} files; the limit is {max_files} (MaxFilesPerJob)",
            hint="split the files over several jobs, or raise max_files_per_job in the config file",
            code=HResult.BG_E_TOO_MANY_FILES_IN_JOB,
        )
    if job.dynamic and any(f.ranges for f in new):
        raise InvalidValue(f"job {job.id} has dynamic content, which cannot be combined with ranges")
    seen = {f.local_name for f in job.files}
    for f in new:
        if f.local_name in seen:
            raise InvalidValue(
                f"job {job.id} already writes to {f.local_name}",
                hint="each file of a job needs its own local name",
            )
        seen.add(f.local_name)
    # A TRANSFERRED job that takes a new file has work again (bits.md §2.2: it "can take more files").
    if job.state is JobState.TRANSFERRED:
        job = dataclasses.replace(job, state=JobState.QUEUED, notified_state=None, notify_retry_at=None)
    return dataclasses.replace(job, files=files, modification_time=now)


def replace_remote_prefix(job: Job, old: str, new: str, now: float) -> tuple[Job, int]:
    _require_not_final(job, "change the files of")
    files = tuple(
        dataclasses.replace(f, remote_name=new + f.remote_name[len(old) :]) if f.remote_name.startswith(old) else f
        for f in job.files
    )
    changed = sum(1 for a, b in zip(job.files, files, strict=True) if a is not b)
    return dataclasses.replace(job, files=files, modification_time=now), changed


def set_dynamic(job: Job, dynamic: bool, now: float) -> Job:
    # bits.md §3: dynamic content is for download jobs only, not with ranges, only before the first Resume.
    if dynamic:
        if job.type is not JobType.DOWNLOAD:
            raise InvalidValue("dynamic content applies to download jobs only")
        if any(f.ranges for f in job.files):
            raise InvalidValue("dynamic content cannot be combined with files that have ranges")
        if job.started:
            raise InvalidState(
                f"job {job.id} has already been resumed; dynamic content must be set before that",
                hint="create a new job and set dynamic content before resuming it",
            )
    return modify(job, now, "change", dynamic=dynamic)


def set_reply_file_name(job: Job, path: str, now: float) -> Job:
    if job.type is not JobType.UPLOAD_REPLY:
        raise InvalidValue(
            f"job {job.id} is a {job.type.label} job; a reply file belongs to upload-reply jobs", code=HResult.E_NOTIMPL
        )
    return modify(job, now, "change", reply_file_name=path)


def set_validation_state(job: Job, index: int, valid: bool, now: float) -> Job:
    """The application's verdict on a downloaded file (bits.md §2.7); FALSE puts the job in ERROR."""
    _require_not_final(job, "validate")
    target = file_at(job, index)
    if not target.completed:
        raise InvalidState(
            f"file {index} of job {job.id} has not finished downloading; it cannot be validated yet",
            hint="validate files once the job is TRANSFERRED",
        )
    if valid:
        return _replace_file(job, index, dataclasses.replace(target, validation_state=True), now)
    # Origin content judged invalid: the job goes to ERROR and the file is fetched again on resume.
    redo = dataclasses.replace(target, bytes_transferred=0, completed=False, validation_state=False)
    job = _replace_file(job, index, redo, now)
    error = JobError(HResult.BG_E_VALIDATION_FAILED, ErrorContext.REMOTE_FILE, index, "content failed validation")
    return dataclasses.replace(job, state=JobState.ERROR, error=error, error_count=job.error_count + 1)


def file_at(job: Job, index: int) -> JobFile:
    if not 0 <= index < len(job.files):
        raise InvalidValue(
            f"job {job.id} has no file {index}",
            hint=f"file indexes start at 0; this job has {len(job.files)} file(s)",
        )
    return job.files[index]


def _replace_file(job: Job, index: int, new: JobFile, now: float) -> Job:
    files = (*job.files[:index], new, *job.files[index + 1 :])
    return dataclasses.replace(job, files=files, modification_time=now)
