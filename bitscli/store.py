"""The job queue on disk: SQLite in WAL mode, migrations, transactions; with schema.py, the only SQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bitscli import paths
from bitscli.errors import QueueError
from bitscli.model import AuthScheme, AuthTarget, Credential, Job, JobFile, JobState, UploadState
from bitscli.partfiles import fsync_directory
from bitscli.schema import (
    APPLICATION_ID,
    FILE_COLUMNS,
    JOB_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    UPLOAD_COLUMNS,
    decode_file,
    decode_job,
    decode_upload,
    encode_file,
    encode_job,
    encode_upload,
)

_FINAL_STATES = (int(JobState.ACKNOWLEDGED), int(JobState.CANCELLED))


def open_queue(path: Path | None = None, *, busy_timeout: float = 30.0, durable: bool = True) -> Queue:
    """Open (creating if needed) the queue, refusing any file that is not a healthy bitscli queue."""
    path = path or paths.queue_path()
    paths.ensure_private_dir(path.parent)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _create(path, busy_timeout)
    except OSError as exc:
        raise QueueError(f"cannot read the queue {path}: {exc.strerror}") from None
    else:
        if size == 0:
            # bitscli never leaves an empty queue behind (_create), so an empty file is one that lost its
            # content (a truncate, a failed copy): starting a new queue in it would hide the loss.
            raise QueueError(
                f"the queue {path} is an empty file, not a bitscli queue; it was left untouched",
                hint=f"restore it from a backup, or move it aside (mv {path} {path}.broken) to start a new queue",
            )
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _queue_error(exc, path) from None
    queue = Queue(conn, path, busy_timeout, durable)
    try:
        queue._prepare()
    except BaseException:
        conn.close()
        raise
    return queue


def _create(path: Path, busy_timeout: float) -> None:
    """A new, initialised queue at ``path``, made under another name and linked into place in one step.

    A crash while the schema is written leaves only the temporary file, never an empty queue.db.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        # Created 0600 here; SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(temporary, timeout=busy_timeout, isolation_level=None)
        try:
            Queue(conn, temporary, busy_timeout)._prepare()
        finally:
            conn.close()  # the last connection: SQLite copies its WAL back into the file
        try:
            os.link(temporary, path)  # fails if another process made the queue meanwhile: then theirs stands
        except OSError as exc:  # that, or a filesystem without hard links
            if not isinstance(exc, FileExistsError) and not path.exists():
                os.replace(temporary, path)
        fsync_directory(str(path.parent))
    except sqlite3.Error as exc:
        raise _queue_error(exc, path) from None
    except OSError as exc:
        raise QueueError(f"cannot create the queue {path}: {exc.strerror}") from None
    finally:
        for suffix in ("", "-wal", "-shm", ".migrate.lock"):
            with contextlib.suppress(OSError):
                Path(f"{temporary}{suffix}").unlink()


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

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float, durable: bool = True) -> None:
        self._conn = conn
        self.path = path
        self._busy_ms = int(busy_timeout * 1000)
        self._durable = durable
        self._writes = 0  # write transactions run on this connection (see stamp)

    def close(self) -> None:
        self._conn.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cheap wake-up signal."""
        try:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise _queue_error(exc, self.path) from None

    @property
    def writes(self) -> int:
        """Write transactions run on this connection so far."""
        return self._writes

    def stamp(self) -> tuple[int, int]:
        """Differs from an earlier stamp whenever the queue may have changed since: another connection
        committed (data_version does not see this connection's own commits), or this one wrote."""
        return self.data_version(), self._writes

    def _prepare(self) -> None:
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            version, app_id = self._pragmas()
            self._check_identity(version, app_id)
            if version < SCHEMA_VERSION:
                self._migrate()
            # FULL: an acknowledged command survives power loss, not only a crash (design.md). The daemon's
            # progress writes use NORMAL (still crash-safe in WAL): losing one to a power cut only means
            # fetching again bytes that were already fsynced to the part file.
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
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
                for statements in MIGRATIONS[version:]:
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
        try:
            with self._transaction("BEGIN IMMEDIATE") as tx:
                yield tx
        finally:
            self._writes += 1

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

    def job_header(self, job_id: str) -> Job | None:
        """The job without its files (credentials included): for per-file work on big jobs."""
        jobs = self._load("WHERE id = ?", (job_id,), with_files=False)
        return jobs[0] if jobs else None

    def job_headers(self) -> list[Job]:
        """Every live job without its files: what the scheduler needs, cheap for jobs of many files."""
        return self._load(f"WHERE state NOT IN {_FINAL_STATES}", (), with_files=False)

    def file(self, job_id: str, index: int) -> JobFile:
        row = self._conn.execute(
            f"SELECT {', '.join(FILE_COLUMNS)} FROM files WHERE job_id = ? AND idx = ?", (job_id, index)
        ).fetchone()
        return decode_file(row)

    def files_at(self, job_id: str, indexes: Sequence[int]) -> dict[int, JobFile]:
        """The files at these indexes, in one query per 500 (SQLite's host-parameter limit was 999 until 3.32)."""
        found: dict[int, JobFile] = {}
        for start in range(0, len(indexes), 500):
            chunk = indexes[start : start + 500]
            rows = self._conn.execute(
                f"SELECT idx, {', '.join(FILE_COLUMNS)} FROM files WHERE job_id = ? AND idx IN "
                f"({', '.join('?' * len(chunk))})",
                (job_id, *chunk),
            )
            found.update((index, decode_file(values)) for index, *values in rows)
        return found

    def incomplete_files(self, job_id: str, after: int | None = None, limit: int = 1) -> list[tuple[int, JobFile]]:
        """The first ``limit`` files not yet complete (above index ``after``, when given), with their indexes."""
        rows = self._conn.execute(
            f"SELECT idx, {', '.join(FILE_COLUMNS)} FROM files WHERE job_id = ? AND completed = 0 AND idx > ? "
            "ORDER BY idx LIMIT ?",
            (job_id, -1 if after is None else after, limit),
        )
        return [(index, decode_file(values)) for index, *values in rows]

    def update_header(self, job: Job) -> None:
        """Store the job's own columns only (its files are untouched)."""
        assignments = ", ".join(f"{c} = ?" for c in JOB_COLUMNS)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*encode_job(job), job.id))

    def update_file(self, job_id: str, index: int, f: JobFile) -> None:
        self._write_files(job_id, [(index, f)])

    def update_files(self, job_id: str, files: Iterable[tuple[int, JobFile]]) -> None:
        self._write_files(job_id, files)

    def insert(self, job: Job) -> None:
        marks = ", ".join("?" * len(JOB_COLUMNS))
        self._conn.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})", encode_job(job))
        self._write_files(job.id, enumerate(job.files))
        self._write_credentials(job.id, job.credentials)

    def update(self, job: Job, previous: Job) -> None:
        """Store ``job``, writing only the file rows that differ from ``previous``."""
        assignments = ", ".join(f"{c} = ?" for c in JOB_COLUMNS)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*encode_job(job), job.id))
        if job.files != previous.files:
            old = previous.files
            self._write_files(job.id, ((i, f) for i, f in enumerate(job.files) if i >= len(old) or f != old[i]))
            self._conn.execute("DELETE FROM files WHERE job_id = ? AND idx >= ?", (job.id, len(job.files)))
        if job.credentials != previous.credentials:
            self._conn.execute("DELETE FROM credentials WHERE job_id = ?", (job.id,))
            self._write_credentials(job.id, job.credentials)

    def upload_state(self, job_id: str) -> UploadState:
        """The job's session and reply; an empty state for an upload that has not started."""
        row = self._conn.execute(
            f"SELECT {', '.join(UPLOAD_COLUMNS)} FROM uploads WHERE job_id = ?", (job_id,)
        ).fetchone()
        return decode_upload(row)

    def save_upload_state(self, job_id: str, state: UploadState) -> None:
        columns = UPLOAD_COLUMNS
        marks = ", ".join("?" * (len(columns) + 1))
        self._conn.execute(
            f"INSERT OR REPLACE INTO uploads (job_id, {', '.join(columns)}) VALUES ({marks})",
            (job_id, *encode_upload(state)),
        )

    def sessions_to_cancel(self) -> list[str]:
        """Cancelled upload jobs whose server session is still open (Cancel-Session not yet sent)."""
        rows = self._conn.execute(
            "SELECT uploads.job_id FROM uploads JOIN jobs ON jobs.id = uploads.job_id "
            "WHERE uploads.session_id IS NOT NULL AND uploads.closed = 0 AND jobs.state = ?",
            (int(JobState.CANCELLED),),
        )
        return [row[0] for row in rows]

    def delete_final_before(self, cutoff: float) -> int:
        cursor = self._conn.execute(
            f"DELETE FROM jobs WHERE state IN {_FINAL_STATES} AND modification_time < ?", (cutoff,)
        )
        return cursor.rowcount

    def _write_files(self, job_id: str, files: Iterable[tuple[int, JobFile]]) -> None:
        self._conn.executemany(
            f"INSERT OR REPLACE INTO files (job_id, idx, {', '.join(FILE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (len(FILE_COLUMNS) + 2))})",
            ((job_id, i, *encode_file(f)) for i, f in files),
        )

    def _write_credentials(self, job_id: str, credentials: Sequence[Credential]) -> None:
        self._conn.executemany(
            "INSERT INTO credentials (job_id, target, scheme, username, password) VALUES (?, ?, ?, ?, ?)",
            ((job_id, int(c.target), int(c.scheme), c.username, c.password) for c in credentials),
        )

    def _load(self, where: str, params: tuple[object, ...], with_files: bool = True) -> list[Job]:
        """Jobs matching ``where``, oldest first, with their files and credentials."""
        rows = self._conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs {where} ORDER BY seq", params).fetchall()
        if not rows:
            return []
        # One query per child table, restricted to the selected jobs, keeps `list` of 10,000 jobs fast.
        selected = f"SELECT id FROM jobs {where}"
        files: dict[str, list[JobFile]] = {}
        file_rows = self._conn.execute(
            f"SELECT job_id, {', '.join(FILE_COLUMNS)} FROM files WHERE job_id IN ({selected}) ORDER BY job_id, idx",
            params,
        ) if with_files else ()  # fmt: skip
        for job_id, *values in file_rows:
            files.setdefault(job_id, []).append(decode_file(values))
        credentials: dict[str, list[Credential]] = {}
        for job_id, target, scheme, user, password in self._conn.execute(
            f"SELECT job_id, target, scheme, username, password FROM credentials WHERE job_id IN ({selected})",
            params,
        ):
            credentials.setdefault(job_id, []).append(
                Credential(AuthTarget(target), AuthScheme(scheme), user, password)
            )
        return [decode_job(row, tuple(files.get(row[0], ())), tuple(credentials.get(row[0], ()))) for row in rows]
