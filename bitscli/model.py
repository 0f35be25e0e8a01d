"""The job model with BITS names and numbers: states, types, priorities, flags, and the Job and its files."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

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
    high_water: int = 0  # the most bytes of this file ever durable: only bytes past it are progress (§2.6)
    restarts: int = 0  # starts from byte 0 since the last new byte (a server that ignores Range, say)
    expected_hash: str | None = None  # "sha256:HEX" (addfile --sha256): the file counts only once it matches
    verified_hash: str | None = None  # the hash the finished file was checked with ("sha256:HEX")
    hash_mismatches: int = 0  # a mismatch fetches the file once more from zero; a second one is an ERROR
    if_changed: bool = False  # fetch only if the server's copy differs from the local file bitscli wrote
    unchanged: bool = False  # the server answered 304: the local file is current; complete leaves it alone


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
    max_bandwidth: int = 0  # bytes a second this job may use, whatever its priority; 0: no cap of its own
    start_jitter: int | None = None  # seconds of random delay at resume (None: the config's default)
    not_before: float | None = None  # the job waits in QUEUED until this wall-clock time (its start jitter)
    if_changed: bool = False  # every file: fetch only if the server's copy differs from the one bitscli wrote
    ca_bundle: str | None = None  # a PEM CA file or directory trusted instead of the system's (setcabundle)
    client_certificate: str | None = None  # a PEM client certificate (setclientcertificate)
    client_key: str | None = None  # its key, when it is not in the certificate's file
    error: JobError | None = None
    error_count: int = 0
    retry_at: float | None = None  # TRANSIENT_ERROR: when the job goes back to QUEUED (wall clock)
    transient_since: float | None = None  # first transient error without progress since (no-progress timer)
    active_seconds: float = 0.0  # time in CONNECTING/TRANSFERRING since the last resume (max download time)
    notified_state: int | None = None  # the state whose notification command line has run (notify.py)
    notify_retry_at: float | None = None  # a failed notification command line runs again at this time
    corrupt: str | None = None  # why its row could not be read (schema.py): it only shows, and cancel removes it

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
    # 1: a fragment's connection broke; 2: then the session's next fragment got a 5xx without a BITS error code.
    # Some servers answer a session they lost that way, not with BG_E_SESSION_NOT_FOUND.
    after_break: int = 0

    @property
    def needs_cancel(self) -> bool:
        """A cancelled job still holding a session: tell the server so it frees it (Cancel-Session)."""
        return self.session_id is not None and not self.closed
