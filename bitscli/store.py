"""The job queue on disk: SQLite in WAL mode, schema migrations, transactions; the only module with SQL."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bitscli import paths
from bitscli.errors import QueueError
from bitscli.model import (
    LENGTH_TO_EOF,
    AuthScheme,
    AuthTarget,
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
)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x42495453  # "BITS": tells our queue apart from any other SQLite file
_FINAL_STATES = (int(JobState.ACKNOWLEDGED), int(JobState.CANCELLED))

# Each entry upgrades the schema by one version; statements run in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
)

_JOB_FIELDS = (
    "id", "display_name", "description", "type", "state", "priority", "owner", "creation_time",
    "modification_time", "completion_time", "started", "notify_flags", "notify_program", "notify_parameters",
    "min_retry_delay", "no_progress_timeout", "max_download_time", "proxy_usage", "proxy_list",
    "proxy_bypass_list", "custom_headers", "custom_headers_write_only", "security_flags", "http_method",
    "acl_flags", "dynamic", "reply_file_name", "error_count",
)  # fmt: skip
_ERROR_COLUMNS = ("error_code", "error_context", "error_file", "error_message")
_JOB_COLUMNS = _JOB_FIELDS + _ERROR_COLUMNS
_FILE_COLUMNS = (
    "remote_name", "local_name", "bytes_total", "bytes_transferred", "completed", "ranges", "validation_state"
)  # fmt: skip
_TYPES = tuple(JobType)
_STATES = tuple(JobState)
_PRIORITIES = tuple(JobPriority)
_PROXY_USAGES = tuple(ProxyUsage)


def open_queue(path: Path | None = None, *, busy_timeout: float = 30.0) -> Queue:
    """Open (creating if needed) the queue, refusing any file that is not a healthy bitscli queue."""
    path = path or paths.queue_path()
    paths.ensure_private_dir(path.parent)
    try:
        # Create the file 0600 ourselves; SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise QueueError(f"cannot create the queue {path}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _queue_error(exc, path) from None
    queue = Queue(conn, path, busy_timeout)
    try:
        queue._prepare()
    except BaseException:
        conn.close()
        raise
    return queue


def _queue_error(exc: sqlite3.Error, path: Path) -> QueueError:
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "malformed" in str(exc):
        return QueueError(
            f"the queue {path} is corrupt or not a bitscli queue ({exc}); it was left untouched",
            hint=f"move it aside (mv {path} {path}.broken) and bitscli starts a new, empty queue",
        )
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return QueueError(
            f"the queue {path} stayed locked by another process; nothing was changed",
            hint="retry; if it persists, look for a hung bitscli process",
        )
    if name == "SQLITE_FULL":
        return QueueError(f"the disk holding {path} is full; nothing was changed", hint="free some space and retry")
    if name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN") or name.startswith("SQLITE_PERM"):
        return QueueError(f"cannot write the queue {path} ({exc})", hint="check the permissions of the queue directory")
    return QueueError(f"queue error on {path}: {exc}")


class Queue:
    """One connection to the queue; every read-modify-write goes through ``write()``."""

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
        self._conn = conn
        self.path = path
        self._busy_ms = int(busy_timeout * 1000)

    def close(self) -> None:
        self._conn.close()

    def _prepare(self) -> None:
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            version, app_id = self._pragmas()
            self._check_identity(version, app_id)
            if version < SCHEMA_VERSION:
                self._migrate()
            # FULL: an acknowledged command survives power loss, not only a crash (design.md).
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise _queue_error(exc, self.path) from None

    def _check_identity(self, version: int, app_id: int) -> None:
        """Refuse files that are not our queue, or are newer than this code, before writing anything."""
        # Our queue always carries our application id next to its schema version.
        if app_id != APPLICATION_ID and (app_id != 0 or version != 0):
            raise QueueError(
                f"{self.path} is an SQLite database, but not a bitscli queue; it was left untouched",
                hint="point BITSCLI_HOME at another directory, or move the file aside",
            )
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"the queue {self.path} was written by a newer bitscli (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); it was left untouched",
                hint="upgrade bitscli (pip install -U bitscli)",
            )

    def _pragmas(self) -> tuple[int, int]:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        return version, app_id

    def _has_tables(self) -> bool:
        return self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0

    def _migrate(self) -> None:
        from filelock import FileLock  # deferred: only a new or old queue needs it

        lock_path = self.path.with_name(self.path.name + ".migrate.lock")
        with FileLock(lock_path, mode=0o600):
            # Every bitscli that migrates holds this lock, so these reads stay true until we commit.
            version, app_id = self._pragmas()
            self._check_identity(version, app_id)
            if version >= SCHEMA_VERSION:
                return  # another process migrated while we waited
            if version == 0 and self._has_tables():
                raise QueueError(
                    f"{self.path} is an SQLite database, but not a bitscli queue; it was left untouched",
                    hint="point BITSCLI_HOME at another directory, or move the file aside",
                )
            # WAL lets the daemon read while a CLI writes; the mode persists in the file.
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statements in _MIGRATIONS[version:]:
                    for statement in statements:
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A read-modify-write transaction: BEGIN IMMEDIATE, committed only if the block succeeds."""
        with self._transaction("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A consistent snapshot for several reads."""
        with self._transaction("BEGIN") as tx:
            yield tx

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        try:
            self._conn.execute(begin)
        except sqlite3.Error as exc:
            raise _queue_error(exc, self.path) from None
        try:
            yield Transaction(self._conn)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _queue_error(exc, self.path) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


class Transaction:
    """Reads and writes inside one transaction; speaks Job dataclasses, never rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def job(self, job_id: str) -> Job | None:
        jobs = self._load("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    def jobs_named(self, name: str) -> list[Job]:
        return self._load("WHERE display_name = ?", (name,))

    def jobs(self, *, include_final: bool = False) -> list[Job]:
        if include_final:
            return self._load("", ())
        return self._load(f"WHERE state NOT IN {_FINAL_STATES}", ())

    def count_live_jobs(self) -> int:
        return self._conn.execute(f"SELECT count(*) FROM jobs WHERE state NOT IN {_FINAL_STATES}").fetchone()[0]

    def insert(self, job: Job) -> None:
        marks = ", ".join("?" * len(_JOB_COLUMNS))
        self._conn.execute(f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({marks})", _encode_job(job))
        self._write_files(job.id, enumerate(job.files))
        self._write_credentials(job.id, job.credentials)

    def update(self, job: Job, previous: Job) -> None:
        """Store ``job``, writing only the file rows that differ from ``previous``."""
        assignments = ", ".join(f"{c} = ?" for c in _JOB_COLUMNS)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*_encode_job(job), job.id))
        if job.files != previous.files:
            old = previous.files
            self._write_files(job.id, ((i, f) for i, f in enumerate(job.files) if i >= len(old) or f != old[i]))
            self._conn.execute("DELETE FROM files WHERE job_id = ? AND idx >= ?", (job.id, len(job.files)))
        if job.credentials != previous.credentials:
            self._conn.execute("DELETE FROM credentials WHERE job_id = ?", (job.id,))
            self._write_credentials(job.id, job.credentials)

    def delete_final_before(self, cutoff: float) -> int:
        cursor = self._conn.execute(
            f"DELETE FROM jobs WHERE state IN {_FINAL_STATES} AND modification_time < ?", (cutoff,)
        )
        return cursor.rowcount

    def _write_files(self, job_id: str, files: Iterable[tuple[int, JobFile]]) -> None:
        self._conn.executemany(
            f"INSERT OR REPLACE INTO files (job_id, idx, {', '.join(_FILE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (len(_FILE_COLUMNS) + 2))})",
            ((job_id, i, *_encode_file(f)) for i, f in files),
        )

    def _write_credentials(self, job_id: str, credentials: Sequence[Credential]) -> None:
        self._conn.executemany(
            "INSERT INTO credentials (job_id, target, scheme, username, password) VALUES (?, ?, ?, ?, ?)",
            ((job_id, int(c.target), int(c.scheme), c.username, c.password) for c in credentials),
        )

    def _load(self, where: str, params: tuple[object, ...]) -> list[Job]:
        """Jobs matching ``where``, oldest first, with their files and credentials."""
        rows = self._conn.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs {where} ORDER BY seq", params).fetchall()
        if not rows:
            return []
        # One query per child table, restricted to the selected jobs, keeps `list` of 10,000 jobs fast.
        selected = f"SELECT id FROM jobs {where}"
        files: dict[str, list[JobFile]] = {}
        for job_id, *values in self._conn.execute(
            f"SELECT job_id, {', '.join(_FILE_COLUMNS)} FROM files WHERE job_id IN ({selected}) ORDER BY job_id, idx",
            params,
        ):
            files.setdefault(job_id, []).append(_decode_file(values))
        credentials: dict[str, list[Credential]] = {}
        for job_id, target, scheme, user, password in self._conn.execute(
            f"SELECT job_id, target, scheme, username, password FROM credentials WHERE job_id IN ({selected})",
            params,
        ):
            credentials.setdefault(job_id, []).append(
                Credential(AuthTarget(target), AuthScheme(scheme), user, password)
            )
        return [_decode_job(row, tuple(files.get(row[0], ())), tuple(credentials.get(row[0], ()))) for row in rows]


def _encode_job(job: Job) -> tuple[object, ...]:
    values: list[object] = []
    for name in _JOB_FIELDS:
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


def _decode_job(row: Sequence[Any], files: tuple[JobFile, ...], credentials: tuple[Credential, ...]) -> Job:
    # dict(zip()) and tuple look-ups instead of Enum(value) calls: `list` decodes 10,000 jobs.
    fields = dict(zip(_JOB_FIELDS, row, strict=False))
    fields["type"] = _TYPES[fields["type"]]
    fields["state"] = _STATES[fields["state"]]
    fields["priority"] = _PRIORITIES[fields["priority"]]
    fields["proxy_usage"] = _PROXY_USAGES[fields["proxy_usage"]]
    for name in ("started", "custom_headers_write_only", "dynamic"):
        fields[name] = bool(fields[name])
    headers = fields["custom_headers"]
    fields["custom_headers"] = tuple(headers.split("\r\n")) if headers else ()
    code, context, file_index, message = row[len(_JOB_FIELDS) :]
    error = None if code is None else JobError(code, ErrorContext(context), file_index, message or "")
    return Job(**fields, files=files, credentials=credentials, error=error)


def _encode_file(f: JobFile) -> tuple[object, ...]:
    ranges = ",".join(str(r) for r in f.ranges)
    return (f.remote_name, f.local_name, f.bytes_total, f.bytes_transferred, int(f.completed), ranges,
            int(f.validation_state))  # fmt: skip


def _decode_file(values: Sequence[Any]) -> JobFile:
    remote, local, total, done, completed, ranges, valid = values
    parsed = []
    for item in ranges.split(",") if ranges else ():
        offset, _, length = item.partition(":")
        parsed.append(ByteRange(int(offset), LENGTH_TO_EOF if length == "eof" else int(length)))
    return JobFile(remote, local, total, done, bool(completed), tuple(parsed), bool(valid))
