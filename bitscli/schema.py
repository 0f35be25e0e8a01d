"""The queue's SQL schema, its migrations, and the mapping between rows and the model's dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bitscli.errors import HResult
from bitscli.model import (
    LENGTH_TO_EOF,
    UNKNOWN,
    ByteRange,
    Credential,
    ErrorContext,
    Job,
    JobError,
    JobFile,
    JobPriority,
    JobState,
    JobType,
    ProxyUsage,
    UploadState,
)

APPLICATION_ID = 0x42495453  # "BITS": tells our queue apart from any other SQLite file

# Each entry upgrades the schema by one version; statements run in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            description TEXT NOT NULL,
            type INTEGER NOT NULL,
            state INTEGER NOT NULL,
            priority INTEGER NOT NULL,
            owner TEXT NOT NULL,
            creation_time REAL NOT NULL,
            modification_time REAL NOT NULL,
            completion_time REAL,
            started INTEGER NOT NULL,
            notify_flags INTEGER NOT NULL,
            notify_program TEXT,
            notify_parameters TEXT,
            min_retry_delay INTEGER NOT NULL,
            no_progress_timeout INTEGER NOT NULL,
            max_download_time INTEGER NOT NULL,
            proxy_usage INTEGER NOT NULL,
            proxy_list TEXT,
            proxy_bypass_list TEXT,
            custom_headers TEXT,
            custom_headers_write_only INTEGER NOT NULL,
            security_flags INTEGER NOT NULL,
            http_method TEXT NOT NULL,
            acl_flags INTEGER NOT NULL,
            dynamic INTEGER NOT NULL,
            reply_file_name TEXT,
            error_count INTEGER NOT NULL,
            error_code INTEGER,
            error_context INTEGER,
            error_file INTEGER,
            error_message TEXT
        )""",
        "CREATE INDEX jobs_by_name ON jobs (display_name)",
        "CREATE INDEX jobs_by_state ON jobs (state, modification_time)",
        """CREATE TABLE files (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            remote_name TEXT NOT NULL,
            local_name TEXT NOT NULL,
            bytes_total INTEGER NOT NULL,
            bytes_transferred INTEGER NOT NULL,
            completed INTEGER NOT NULL,
            ranges TEXT NOT NULL,
            validation_state INTEGER NOT NULL,
            PRIMARY KEY (job_id, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE credentials (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            target INTEGER NOT NULL,
            scheme INTEGER NOT NULL,
            username TEXT,
            password TEXT,
            PRIMARY KEY (job_id, target, scheme)
        ) WITHOUT ROWID""",
    ),
    (  # 2: what the daemon persists to resume transfers and keep its timers across restarts
        "ALTER TABLE jobs ADD COLUMN retry_at REAL",
        "ALTER TABLE jobs ADD COLUMN transient_since REAL",
        "ALTER TABLE jobs ADD COLUMN active_seconds REAL NOT NULL DEFAULT 0",
        "ALTER TABLE files ADD COLUMN etag TEXT",
        "ALTER TABLE files ADD COLUMN last_modified TEXT",
    ),
    (  # 3: an upload job's BITS session and reply (UploadState in model.py)
        """CREATE TABLE uploads (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            session_id TEXT,
            session_url TEXT,
            host_fallback REAL,
            host_failing_since REAL,
            local_stamp TEXT,
            reply_url TEXT,
            reply_total INTEGER NOT NULL,
            reply_transferred INTEGER NOT NULL,
            reply_etag TEXT,
            reply_last_modified TEXT,
            reply_done INTEGER NOT NULL,
            closed INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (  # 4: notification command lines (bitscli/daemon/notify.py)
        "ALTER TABLE jobs ADD COLUMN notified_state INTEGER",
        "ALTER TABLE jobs ADD COLUMN notify_retry_at REAL",
    ),
    (  # 5: progress is new bytes past a file's high-water mark; restarts from byte 0 are counted
        "ALTER TABLE files ADD COLUMN high_water INTEGER NOT NULL DEFAULT 0",
        "UPDATE files SET high_water = bytes_transferred",
        "ALTER TABLE files ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0",
    ),
    (  # 6: a job's own TLS: the CA to trust, and a client certificate (the Linux stand-in for certificate stores)
        "ALTER TABLE jobs ADD COLUMN ca_bundle TEXT",
        "ALTER TABLE jobs ADD COLUMN client_certificate TEXT",
        "ALTER TABLE jobs ADD COLUMN client_key TEXT",
    ),
    (  # 7: a job's own bandwidth cap (setmaxbandwidth)
        "ALTER TABLE jobs ADD COLUMN max_bandwidth INTEGER NOT NULL DEFAULT 0",
    ),
    (  # 8: a random start delay, so a fleet given one job does not reach the server in the same second
        "ALTER TABLE jobs ADD COLUMN start_jitter INTEGER",
        "ALTER TABLE jobs ADD COLUMN not_before REAL",
    ),
    (  # 9: an upload session whose connection broke, then got a 5xx without a BITS code (likely lost)
        "ALTER TABLE uploads ADD COLUMN after_break INTEGER NOT NULL DEFAULT 0",
    ),
    (  # 10: a file's expected hash (addfile --sha256), the hash it was verified with, and mismatches so far
        "ALTER TABLE files ADD COLUMN expected_hash TEXT",
        "ALTER TABLE files ADD COLUMN verified_hash TEXT",
        "ALTER TABLE files ADD COLUMN hash_mismatches INTEGER NOT NULL DEFAULT 0",
    ),
    (  # 11: download only if changed: per file and per job, a 304's verdict, and what bitscli last wrote where
        "ALTER TABLE jobs ADD COLUMN if_changed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE files ADD COLUMN if_changed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE files ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE written (
            local_name TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (  # 12: the event log (events.py): no foreign key, events outlive their job until the history retention;
        # daemon_marks holds how far the [hooks] have read it
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            job_id TEXT NOT NULL,
            name TEXT,
            kind TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT,
            code INTEGER,
            message TEXT,
            detail TEXT
        )""",
        "CREATE INDEX events_by_job ON events (job_id, seq)",
        "CREATE TABLE daemon_marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)  # a queue at a lower version runs the rest of MIGRATIONS when opened

JOB_FIELDS = (
    "id", "display_name", "description", "type", "state", "priority", "owner", "creation_time",
    "modification_time", "completion_time", "started", "notify_flags", "notify_program", "notify_parameters",
    "min_retry_delay", "no_progress_timeout", "max_download_time", "proxy_usage", "proxy_list",
    "proxy_bypass_list", "custom_headers", "custom_headers_write_only", "security_flags", "http_method",
    "acl_flags", "dynamic", "reply_file_name", "error_count", "retry_at", "transient_since", "active_seconds",
    "notified_state", "notify_retry_at", "ca_bundle", "client_certificate", "client_key", "max_bandwidth",
    "start_jitter", "not_before", "if_changed",
)  # fmt: skip
ERROR_COLUMNS = ("error_code", "error_context", "error_file", "error_message")
JOB_COLUMNS = JOB_FIELDS + ERROR_COLUMNS
FILE_COLUMNS = (
    "remote_name", "local_name", "bytes_total", "bytes_transferred", "completed", "ranges", "validation_state",
    "etag", "last_modified", "high_water", "restarts", "expected_hash", "verified_hash", "hash_mismatches",
    "if_changed", "unchanged",
)  # fmt: skip
_TYPES = {int(t): t for t in JobType}
_STATES = {int(s): s for s in JobState}
_PRIORITIES = {int(p): p for p in JobPriority}
_PROXY_USAGES = {int(u): u for u in ProxyUsage}
_CONTEXTS = {int(c): c for c in ErrorContext}
_TEXT, _OPTIONAL_TEXT, _INT, _OPTIONAL_INT = (str,), (str, type(None)), (int,), (int, type(None))
_NUMBER, _OPTIONAL_NUMBER = (int, float), (int, float, type(None))
# What each column must hold: SQLite stores whatever it is given, so a row is checked before it is believed.
_KINDS = {
    "id": _TEXT, "display_name": _TEXT, "description": _TEXT, "type": _INT, "state": _INT, "priority": _INT,
    "owner": _TEXT, "creation_time": _NUMBER, "modification_time": _NUMBER, "completion_time": _OPTIONAL_NUMBER,
    "started": _INT, "notify_flags": _INT, "notify_program": _OPTIONAL_TEXT, "notify_parameters": _OPTIONAL_TEXT,
    "min_retry_delay": _INT, "no_progress_timeout": _INT, "max_download_time": _INT, "proxy_usage": _INT,
    "proxy_list": _OPTIONAL_TEXT, "proxy_bypass_list": _OPTIONAL_TEXT, "custom_headers": _OPTIONAL_TEXT,
    "custom_headers_write_only": _INT, "security_flags": _INT, "http_method": _TEXT, "acl_flags": _INT,
    "dynamic": _INT, "reply_file_name": _OPTIONAL_TEXT, "error_count": _INT, "retry_at": _OPTIONAL_NUMBER,
    "transient_since": _OPTIONAL_NUMBER, "active_seconds": _NUMBER, "notified_state": _OPTIONAL_INT,
    "notify_retry_at": _OPTIONAL_NUMBER, "ca_bundle": _OPTIONAL_TEXT, "client_certificate": _OPTIONAL_TEXT,
    "client_key": _OPTIONAL_TEXT, "max_bandwidth": _INT, "start_jitter": _OPTIONAL_INT, "if_changed": _INT,
    "not_before": _OPTIONAL_NUMBER,
}  # fmt: skip
_FILE_KINDS = (_TEXT, _TEXT, _INT, _INT, _INT, _OPTIONAL_TEXT, _INT, _OPTIONAL_TEXT, _OPTIONAL_TEXT, _INT, _INT,
               _OPTIONAL_TEXT, _OPTIONAL_TEXT, _INT, _INT, _INT)  # fmt: skip
# A job the daemon has had work for holds files: resume refuses a job without any.
_NEEDS_FILES = {int(s) for s in (JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING, JobState.TRANSFERRED)}


class DamagedText(str):
    """Text whose bytes are not UTF-8 (a damaged page): shown with U+FFFD, and not the type any column needs,
    so its row decodes as corrupt (_KINDS) instead of failing the whole read."""


def decode_text(raw: bytes) -> str:
    """The connections' text_factory: SQLite's default raises UnicodeDecodeError for every later row too."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return DamagedText(raw.decode(errors="replace"))


class CorruptRow(ValueError):
    """A row SQLite returned but bitscli cannot believe: which field, and what it held."""

    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"{field} = {value!r}"[:200])


def encode_job(job: Job) -> tuple[object, ...]:
    values: list[object] = []
    for name in JOB_FIELDS:
        value = getattr(job, name)
        if name == "custom_headers":
            value = "\r\n".join(value) if value else None
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    error = job.error
    if error is None:
        values.extend((None, None, None, None))
    else:
        values.extend((error.code, int(error.context), error.file_index, error.message))
    return tuple(values)


def decode_job(
    row: Sequence[Any], files: tuple[JobFile, ...], credentials: tuple[Credential, ...], with_files: bool = True
) -> Job:
    """The job of a row; a row it cannot believe gives a corrupt job (corrupt_job) instead of an exception."""
    fields = dict(zip(JOB_FIELDS, row, strict=False))
    for name, kinds in _KINDS.items():
        if type(fields[name]) not in kinds:
            raise CorruptRow(name, fields[name])
    # dict look-ups instead of Enum(value) calls (`list` decodes 10,000 jobs), and never a negative index.
    for name, known in (("type", _TYPES), ("state", _STATES), ("priority", _PRIORITIES),
                        ("proxy_usage", _PROXY_USAGES)):  # fmt: skip
        if fields[name] not in known:
            raise CorruptRow(name, fields[name])
        fields[name] = known[fields[name]]
    for name in ("started", "custom_headers_write_only", "dynamic", "if_changed"):
        fields[name] = bool(fields[name])
    headers = fields["custom_headers"]
    fields["custom_headers"] = tuple(headers.split("\r\n")) if headers else ()
    code, context, file_index, message = row[len(JOB_FIELDS) :]
    if code is not None and (type(code) is not int or context not in _CONTEXTS):
        raise CorruptRow("error_code", code)
    error = None if code is None else JobError(code, _CONTEXTS[context], file_index, message or "")
    if with_files and not files and row[JOB_FIELDS.index("state")] in _NEEDS_FILES:
        raise CorruptRow("files", "none")
    return Job(**fields, files=files, credentials=credentials, error=error)


def corrupt_job(row: Sequence[Any], why: str) -> Job:
    """What a row that cannot be read shows: its GUID and name where they are readable, in ERROR (or CANCELLED,
    once cancelled), with "internal state corrupt" and the field; the daemon leaves it alone."""
    fields = dict(zip(JOB_FIELDS, row, strict=False))

    def text(name: str) -> str:
        return fields[name] if isinstance(fields.get(name), str) else "?"

    def number(name: str) -> float:
        value = fields.get(name)
        return float(value) if isinstance(value, int | float) else 0.0

    message = f"internal state corrupt: {why}"
    cancelled = fields.get("state") == int(JobState.CANCELLED)
    return Job(
        id=text("id"), display_name=text("display_name"), type=JobType.DOWNLOAD, owner=text("owner"),
        creation_time=number("creation_time"), modification_time=number("modification_time"),
        state=JobState.CANCELLED if cancelled else JobState.ERROR, corrupt=why,
        error=JobError(HResult.E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER, None, message),
    )  # fmt: skip


def encode_file(f: JobFile) -> tuple[object, ...]:
    ranges = ",".join(str(r) for r in f.ranges)
    return (f.remote_name, f.local_name, f.bytes_total, f.bytes_transferred, int(f.completed), ranges,
            int(f.validation_state), f.etag, f.last_modified, f.high_water, f.restarts, f.expected_hash,
            f.verified_hash, f.hash_mismatches, int(f.if_changed), int(f.unchanged))  # fmt: skip


def decode_file(values: Sequence[Any]) -> JobFile:
    for name, value, kinds in zip(FILE_COLUMNS, values, _FILE_KINDS, strict=True):
        if type(value) not in kinds:
            raise CorruptRow(f"file {name}", value)
    remote, local, total, done, completed, ranges, valid, etag, last_modified, high_water, restarts = values[:11]
    expected_hash, verified_hash, mismatches, if_changed, unchanged = values[11:]
    if total < UNKNOWN or done < 0 or high_water < 0 or restarts < 0 or mismatches < 0:
        raise CorruptRow("file bytes", (total, done))
    parsed = []
    for item in ranges.split(",") if ranges else ():
        offset, _, length = item.partition(":")
        if not offset.isdigit() or not (length.isdigit() or length == "eof"):
            raise CorruptRow("file ranges", ranges)
        parsed.append(ByteRange(int(offset), LENGTH_TO_EOF if length == "eof" else int(length)))
    return JobFile(
        remote, local, total, done, bool(completed), tuple(parsed), bool(valid), etag, last_modified,
        high_water, restarts, expected_hash, verified_hash, mismatches, bool(if_changed), bool(unchanged),
    )  # fmt: skip


UPLOAD_COLUMNS = (
    "session_id", "session_url", "host_fallback", "host_failing_since", "local_stamp", "reply_url", "reply_total",
    "reply_transferred", "reply_etag", "reply_last_modified", "reply_done", "closed", "after_break",
)  # fmt: skip


def encode_upload(state: UploadState) -> tuple[object, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in (getattr(state, c) for c in UPLOAD_COLUMNS))


def decode_upload(row: tuple[object, ...] | None) -> UploadState:
    if row is None:
        return UploadState()
    values = dict(zip(UPLOAD_COLUMNS, row, strict=True))
    values["reply_done"] = bool(values["reply_done"])
    values["closed"] = bool(values["closed"])
    return UploadState(**values)  # type: ignore[arg-type]
