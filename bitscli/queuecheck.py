"""Checking a queue file (queue check), and the guarded reads that damaged files need (salvage.py)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bitscli.schema import APPLICATION_ID, SCHEMA_VERSION, decode_text
from bitscli.transaction import Transaction

_SHOWN = 10  # problems listed one by one; the rest are counted
# What reading a damaged file can raise: SQLite's errors, and Python's when text bytes are not UTF-8 (in a
# table's schema, say, which the connection's text_factory does not see).
DAMAGE = (sqlite3.Error, UnicodeDecodeError)


@dataclass
class Check:
    """What `queue check` found: no problems means healthy."""

    path: Path
    schema_version: int | None = None
    jobs: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)


def connect(path: Path, read_only: bool = True) -> sqlite3.Connection:
    uri = f"{path.absolute().as_uri()}{'?mode=ro' if read_only else ''}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.text_factory = decode_text
    return conn


def check(path: Path) -> Check:
    """Integrity and foreign-key checks, the schema version, and every row decoded; never raises on damage."""
    report = Check(path)
    if not path.exists():
        report.problems.append("no queue file (bitscli creates one with the first command that needs it)")
        return report
    if path.stat().st_size == 0:
        report.problems.append("the file is empty: it lost its content (a truncate, a failed copy)")
        return report
    conn = connect(path)
    try:
        _check_into(conn, report)
    finally:
        conn.close()
    return report


def _check_into(conn: sqlite3.Connection, report: Check) -> None:
    def step(what: str, run: Callable[[], None]) -> bool:
        try:
            with bounded(conn, 60.0):
                run()
        except DAMAGE as exc:
            report.problems.append(f"{what}: {exc}")
            return False
        return True

    def identity() -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise sqlite3.DatabaseError(f"not a bitscli queue (application id {app_id:#x})")
        report.schema_version = version  # an older one is migrated by the next command: not a problem
        if version > SCHEMA_VERSION:
            report.problems.append(f"schema {version} is newer than this bitscli's ({SCHEMA_VERSION})")

    def integrity() -> None:
        messages = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if messages != ["ok"]:
            report.problems.extend(f"integrity: {m}" for m in messages[:_SHOWN])
            if len(messages) > _SHOWN:
                report.problems.append(f"integrity: {len(messages) - _SHOWN} more problems")

    def foreign_keys() -> None:
        orphans: dict[str, int] = {}
        for table, *_ in conn.execute("PRAGMA foreign_key_check"):
            orphans[table] = orphans.get(table, 0) + 1
        report.problems.extend(f"{n} {table} rows belong to no job" for table, n in sorted(orphans.items()))

    def rows() -> None:
        jobs = Transaction(conn).jobs(include_final=True)
        report.jobs = len(jobs)
        report.files = sum(len(job.files) for job in jobs)
        corrupt = [job for job in jobs if job.corrupt]
        report.problems.extend(f"job {job.id} ({job.display_name}): {job.corrupt}" for job in corrupt[:_SHOWN])
        if len(corrupt) > _SHOWN:
            report.problems.append(f"{len(corrupt) - _SHOWN} more jobs cannot be read")
        gaps = conn.execute("SELECT job_id FROM files GROUP BY job_id HAVING count(*) != max(idx) + 1").fetchall()
        report.problems.extend(f"job {job_id}: some of its file rows are missing" for (job_id,) in gaps[:_SHOWN])

    if not step("cannot read the header", identity):
        return
    step("integrity check failed", integrity)
    step("foreign key check failed", foreign_keys)
    step("cannot read every job", rows)


@contextlib.contextmanager
def bounded(conn: sqlite3.Connection, seconds: float = 1.0) -> Iterator[None]:
    """Interrupt a statement after ``seconds``: damaged pages can make SQLite walk a cycle of pages for ever.
    Salvage's statements are index look-ups of one job (microseconds when the pages are sound)."""
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        yield
    finally:
        conn.set_progress_handler(None, 0)
