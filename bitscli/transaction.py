"""The queue's reads and writes inside one transaction: jobs, files, credentials, upload sessions (the SQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from bitscli import events
from bitscli.errors import HResult, InvalidState
from bitscli.model import AuthScheme, AuthTarget, Credential, Job, JobFile, JobState, UploadState
from bitscli.schema import (
    FILE_COLUMNS,
    JOB_COLUMNS,
    UPLOAD_COLUMNS,
    CorruptRow,
    corrupt_job,
    decode_file,
    decode_job,
    decode_upload,
    encode_file,
    encode_job,
    encode_upload,
)

_FINAL_STATES = (int(JobState.ACKNOWLEDGED), int(JobState.CANCELLED))


_STATE_NUMBERS = {int(s) for s in JobState}


class Written(NamedTuple):
    """A file bitscli published: the server's validators of it, and its size, mtime and inode right after."""

    etag: str | None
    last_modified: str | None
    size: int
    mtime_ns: int
    inode: int


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
        """Store the job's own columns only (its files are untouched); a change of state is logged with it."""
        row = self._conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
        assignments = ", ".join(f"{c} = ?" for c in JOB_COLUMNS)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*encode_job(job), job.id))
        if row is not None and row[0] != int(job.state):
            events.record_change(self._conn, JobState(row[0]) if row[0] in _STATE_NUMBERS else None, job)

    def update_file(self, job_id: str, index: int, f: JobFile) -> None:
        self._write_files(job_id, [(index, f)])

    def update_files(self, job_id: str, files: Iterable[tuple[int, JobFile]]) -> None:
        self._write_files(job_id, files)

    def insert(self, job: Job) -> None:
        marks = ", ".join("?" * len(JOB_COLUMNS))
        self._conn.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})", encode_job(job))
        events.record_change(self._conn, None, job)
        self._write_files(job.id, enumerate(job.files))
        self._write_credentials(job.id, job.credentials)

    def update(self, job: Job, previous: Job) -> None:
        """Store ``job``, writing only the file rows that differ from ``previous``.

        A corrupt job (schema.corrupt_job) can only be cancelled: then its unreadable rows go with it.
        """
        if previous.corrupt is not None:
            if job.state is not JobState.CANCELLED:
                raise InvalidState(
                    f"job {previous.id} is corrupt ({previous.corrupt}) and cannot change",
                    hint=f"cancel it: bitscli cancel {previous.id}", code=HResult.E_FAIL,
                )  # fmt: skip
            self._conn.execute("DELETE FROM files WHERE job_id = ?", (job.id,))
            self._conn.execute("DELETE FROM credentials WHERE job_id = ?", (job.id,))
        assignments = ", ".join(f"{c} = ?" for c in JOB_COLUMNS)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*encode_job(job), job.id))
        if job.state is not previous.state:
            events.record_change(self._conn, previous.state, job)
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

    def written(self, local_name: str) -> Written | None:
        """What bitscli last published under ``local_name`` (validators and the file's identity then)."""
        row = self._conn.execute(
            "SELECT etag, last_modified, size, mtime_ns, inode FROM written WHERE local_name = ?", (local_name,)
        ).fetchone()
        return Written(*row) if row is not None else None

    def save_written(self, local_name: str, written: Written) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO written (local_name, etag, last_modified, size, mtime_ns, inode) "
            "VALUES (?, ?, ?, ?, ?, ?)", (local_name, *written),
        )  # fmt: skip

    def sessions_to_cancel(self) -> list[str]:
        """Cancelled upload jobs whose server session is still open (Cancel-Session not yet sent)."""
        rows = self._conn.execute(
            "SELECT uploads.job_id FROM uploads JOIN jobs ON jobs.id = uploads.job_id "
            "WHERE uploads.session_id IS NOT NULL AND uploads.closed = 0 AND jobs.state = ?",
            (int(JobState.CANCELLED),),
        )
        return [row[0] for row in rows]

    def record_notify(self, job: Job, state: JobState, exit_status: int | None, hook: str | None = None) -> None:
        events.record_notify(self._conn, job, state, exit_status, hook)

    def mark(self, name: str) -> int | None:
        return events.mark(self._conn, name)

    def set_mark(self, name: str, value: int) -> None:
        events.set_mark(self._conn, name, value)

    def last_event(self) -> int:
        return events.last_seq(self._conn)

    def events(
        self, job_id: str | None = None, after_seq: int = 0, since: float | None = None, limit: int = 10_000
    ) -> list[events.Event]:  # fmt: skip
        return events.read(self._conn, job_id, after_seq, since, limit)

    def delete_final_before(self, cutoff: float) -> int:
        events.prune(self._conn, cutoff)
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
        files: dict[str, list[list[Any]]] = {}
        file_rows = self._conn.execute(
            f"SELECT job_id, {', '.join(FILE_COLUMNS)} FROM files WHERE job_id IN ({selected}) ORDER BY job_id, idx",
            params,
        ) if with_files else ()  # fmt: skip
        for job_id, *values in file_rows:
            files.setdefault(job_id, []).append(values)
        credentials: dict[str, list[tuple[Any, ...]]] = {}
        for job_id, *values in self._conn.execute(
            f"SELECT job_id, target, scheme, username, password FROM credentials WHERE job_id IN ({selected})",
            params,
        ):
            credentials.setdefault(job_id, []).append(tuple(values))
        jobs = []
        for row in rows:  # one row that cannot be read is one corrupt job, never a broken queue
            try:
                job_files = tuple(decode_file(values) for values in files.get(row[0], ()))
                job_credentials = tuple(_credential(*values) for values in credentials.get(row[0], ()))
                jobs.append(decode_job(row, job_files, job_credentials, with_files))
            except CorruptRow as exc:
                jobs.append(corrupt_job(row, str(exc)))
        return jobs


def _credential(target: object, scheme: object, user: object, password: object) -> Credential:
    try:
        return Credential(AuthTarget(target), AuthScheme(scheme), user, password)  # type: ignore[arg-type]
    except ValueError:
        raise CorruptRow("credential", (target, scheme)) from None
