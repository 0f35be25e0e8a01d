"""Salvaging the jobs a damaged queue file still holds into a new queue (queue recover)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitscli.errors import QueueError
from bitscli.partfiles import fsync_directory
from bitscli.queuecheck import DAMAGE, bounded, connect
from bitscli.schema import APPLICATION_ID, SCHEMA_VERSION
from bitscli.store import open_queue
from bitscli.transaction import Transaction

_MISSES = 1000  # seqs probed past the last readable job row before giving up
_MAX_CHILDREN = 1_000_000  # more file rows than any job holds (max_files_per_job is far lower)


@dataclass(frozen=True)
class Lost:
    seq: int | None
    job_id: str | None
    name: str | None
    why: str


@dataclass
class Recovery:
    """What `queue recover` did: where the damaged file went, how rows were read, which jobs were kept."""

    path: Path
    moved_to: Path | None = None
    method: str = ""
    kept: list[tuple[str, str]] = field(default_factory=list)  # (GUID, display name)
    lost: list[Lost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def recover(path: Path, sqlite_cli: str | None, force: bool = False) -> Recovery:
    """Build a new queue from what ``path`` still holds, then move the damaged file aside and put the new one in
    its place. ``sqlite_cli``: the sqlite3 shell, whose .recover reads pages the library gives up on.
    ``force``: rebuild even a file whose header says it is another program's, or a newer bitscli's."""
    report = Recovery(path)
    if not path.exists():
        raise QueueError(f"there is no queue at {path}: nothing to recover", hint="bitscli creates one when needed")
    if not force:
        _refuse_foreign(path)
    with tempfile.TemporaryDirectory(prefix=".recover-", dir=path.parent) as scratch:
        template = Path(scratch) / "template.db"
        open_queue(template).close()
        source = _copy_damaged(path, Path(scratch))
        salvaged = _run_cli_recover(source, Path(scratch), sqlite_cli, report)
        if salvaged is None and source.stat().st_size:
            _mend_first_page(source, template, report)
        rebuilt = path.with_name(f".{path.name}.recovered")
        _remove_queue_files(rebuilt)
        open_queue(rebuilt).close()
        target = connect(rebuilt, read_only=False)
        try:
            target.execute("PRAGMA foreign_keys = ON")
            if source.stat().st_size:
                _copy_jobs(salvaged or source, target, report)
            else:
                report.notes.append("the file was empty: it held no jobs to salvage")
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            target.close()
        report.moved_to = _move_aside(path)
        os.replace(rebuilt, path)
        _remove_queue_files(rebuilt)
        fsync_directory(str(path.parent))
    return report


def _refuse_foreign(path: Path) -> None:
    """A file that is readably someone else's database, or a newer bitscli's queue, is not ours to rebuild."""
    try:
        conn = connect(path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
    except DAMAGE:
        return  # unreadable: exactly what recovery is for
    if app_id not in (0, APPLICATION_ID):
        raise QueueError(
            f"{path} is an SQLite database, but not a bitscli queue; it was left untouched",
            hint="if it is the queue and its header was damaged, add --force to rebuild it all the same",
        )
    if version > SCHEMA_VERSION:
        raise QueueError(
            f"the queue {path} was written by a newer bitscli (schema {version}); it was left untouched",
            hint="recover it with that bitscli; if no newer bitscli ever used it, its header was damaged: add --force",
        )


def _copy_damaged(path: Path, scratch: Path) -> Path:
    """A copy of the file and its WAL to read from, so that nothing the reading does touches the original."""
    copy = scratch / "damaged.db"
    shutil.copyfile(path, copy)
    wal = Path(f"{path}-wal")
    if wal.exists():
        shutil.copyfile(wal, f"{copy}-wal")
    return copy


def _schema_readable(path: Path) -> bool:
    try:
        conn = connect(path, read_only=False)
        try:
            with bounded(conn):
                return bool(conn.execute("PRAGMA table_info(jobs)").fetchall())
        finally:
            conn.close()
    except DAMAGE:
        return False


def _mend_first_page(copy: Path, template: Path, report: Recovery) -> None:
    """Page 1 holds the file header and the schema. Where damage there hides every table, put a new queue's
    page 1 in its place: our tables are created in a fixed order, so their root pages are the same numbers."""
    _pad_truncated(copy)
    if _schema_readable(copy):
        return
    fresh = template.read_bytes()
    page_size = int.from_bytes(fresh[16:18], "big")
    leaf_table_page = 0x0D  # the whole schema fits on page 1 (SQLite file format, "B-tree pages")
    if fresh[100] != leaf_table_page or len(fresh) < page_size:
        return
    with open(copy, "r+b") as damaged:
        original = damaged.read(page_size)
        pages = os.fstat(damaged.fileno()).st_size // page_size
        # The header alone first (the schema's cells may be intact); the page count is this file's, and the
        # freelist is dropped: its pages then hold nothing a query reaches.
        header = fresh[:28] + pages.to_bytes(4, "big") + bytes(8) + fresh[40:100]
        for first_page, what in ((header + original[100:], "header"), (header + fresh[100:page_size], "schema")):
            damaged.seek(0)
            damaged.write(first_page)
            damaged.flush()
            if _schema_readable(copy):
                report.notes.append(f"the file's {what} was damaged: read with a new queue's in its place")
                return
        damaged.seek(0)
        damaged.write(original)
    report.notes.append("the file's header and schema are damaged beyond repair")


def _pad_truncated(copy: Path) -> None:
    """A file cut short (a failed copy, a full disk): SQLite refuses a schema whose root pages lie past the end,
    so the copy grows back to the size its header gives, in zeros: pages that read as damaged, and are skipped."""
    with open(copy, "r+b") as damaged:
        header = damaged.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size  # the file format's encoding of 64 KiB
        wanted = int.from_bytes(header[28:32], "big") * page_size
        size = os.fstat(damaged.fileno()).st_size
        if size < wanted <= 1 << 40:
            damaged.truncate(wanted)


def _run_cli_recover(source: Path, scratch: Path, sqlite_cli: str | None, report: Recovery) -> Path | None:
    """A database rebuilt by the sqlite3 shell's .recover, or None (then rows are read one by one)."""
    fallback = "row by row, skipping what cannot be read"
    if sqlite_cli is None or not source.stat().st_size:
        report.method = f"{fallback} (no sqlite3 shell found)" if sqlite_cli is None else fallback
        return None
    try:
        dump = subprocess.run([sqlite_cli, str(source), ".recover"], capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.method = f"{fallback} ({sqlite_cli} .recover failed: {exc})"
        return None
    if dump.returncode != 0:
        why = dump.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {dump.returncode}"]
        report.method = f"{fallback} ({sqlite_cli} .recover failed: {why[0]})"
        return None
    rebuilt = scratch / "recovered.db"
    conn = sqlite3.connect(rebuilt, isolation_level=None)
    try:
        conn.executescript(dump.stdout.decode(errors="replace"))
    except sqlite3.Error as exc:
        report.method = f"{fallback} (the SQL of {sqlite_cli} .recover did not load: {exc})"
        return None
    finally:
        conn.close()
    report.method = f"{sqlite_cli} .recover, then row by row"
    return rebuilt


def _copy_jobs(source_path: Path, target: sqlite3.Connection, report: Recovery) -> None:
    source = connect(source_path, read_only=False)  # a scratch copy: opening it may replay its WAL
    try:
        columns = {table: _columns(source, target, table) for table in ("jobs", "files", "credentials", "uploads")}
        if not columns["jobs"]:
            report.notes.append("the jobs table cannot be read (its schema is damaged)")
            return
        names = _indexed_names(source)
        copied: set[int] = set()
        for seq in _job_seqs(source, report):
            copied.add(seq)
            _copy_job(source, target, seq, columns, names.get(seq, (None, None)), report)
        for seq, (job_id, name) in sorted(names.items()):
            if seq not in copied:
                report.lost.append(Lost(seq, job_id, name, "its row cannot be read"))
    finally:
        source.close()


def _columns(source: sqlite3.Connection, target: sqlite3.Connection, table: str) -> list[str]:
    """The columns both files have: an older queue's row gets the new columns' defaults."""
    try:
        have = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
    except DAMAGE:
        return []
    want = {row[1] for row in target.execute(f"PRAGMA table_info({table})")}
    return [c for c in have if c in want]


def _indexed_names(source: sqlite3.Connection) -> dict[int, tuple[str | None, str | None]]:
    """GUIDs and names from the indexes alone (other pages than the rows'), to name jobs whose rows are lost.
    Only values of the right types: a damaged index page can hold anything."""
    found: dict[int, tuple[str | None, str | None]] = {}
    with contextlib.suppress(*DAMAGE), bounded(source):
        for seq, job_id in source.execute("SELECT seq, id FROM jobs INDEXED BY sqlite_autoindex_jobs_1"):
            if type(seq) is int and type(job_id) is str:
                found[seq] = (job_id, None)
    with contextlib.suppress(*DAMAGE), bounded(source):
        for seq, name in source.execute("SELECT seq, display_name FROM jobs INDEXED BY jobs_by_name"):
            if type(seq) is int and type(name) is str:
                found[seq] = (found.get(seq, (None, None))[0], name)
    return found


def _job_seqs(source: sqlite3.Connection, report: Recovery) -> Iterator[int]:
    """Every readable job row's seq, one look-up at a time. A look-up that meets a damaged page fails; the next
    one starts a seq further on (`seq >= n` seeks straight to n's page, where `seq > n - 1` would visit n - 1's)."""
    candidate = 1
    misses = 0
    while misses <= _MISSES:
        try:
            with bounded(source):
                row = source.execute(
                    "SELECT seq FROM jobs WHERE seq >= ? ORDER BY seq LIMIT 1", (candidate,)
                ).fetchone()
        except DAMAGE:
            row = (None,)
        if row is None:
            return
        if isinstance(row[0], int) and row[0] >= candidate:  # a damaged tree can answer out of order
            yield row[0]
            candidate = row[0] + 1
            misses = 0
        else:
            candidate += 1
            misses += 1
    report.notes.append(f"stopped looking for job rows {_MISSES} seqs past the last readable one")


def _copy_job(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    seq: int,
    columns: dict[str, list[str]],
    indexed: tuple[str | None, str | None],
    report: Recovery,
) -> None:
    job_id, name = indexed
    try:
        with bounded(source):
            row = source.execute(f"SELECT {', '.join(columns['jobs'])} FROM jobs WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise sqlite3.DatabaseError("the table and its index disagree")
        values = dict(zip(columns["jobs"], row, strict=True))
        job_id = values.get("id") if isinstance(values.get("id"), str) else job_id
        name = values.get("display_name") if isinstance(values.get("display_name"), str) else name
        children = {
            table: _children(source, table, columns[table], values.get("id"))
            for table in ("files", "credentials", "uploads")
        }
    except DAMAGE as exc:
        report.lost.append(Lost(seq, job_id, name, f"its rows cannot be read ({exc})"))
        return
    if "idx" in columns["files"]:
        position = columns["files"].index("idx")
        indexes = sorted(r[position] for r in children["files"] if isinstance(r[position], int))
        if indexes != list(range(len(children["files"]))):  # a gap, a repeat (a cycle of pages), or garbage
            report.lost.append(Lost(seq, job_id, name, "some of its file rows cannot be read"))
            return
    target.execute("BEGIN IMMEDIATE")
    try:
        _insert(target, "jobs", columns["jobs"], [row])
        for table, rows in children.items():
            _insert(target, table, columns[table], rows)
        job = Transaction(target).job(values["id"])
    except sqlite3.Error as exc:
        target.execute("ROLLBACK")
        report.lost.append(Lost(seq, job_id, name, f"its rows do not fit the queue ({exc})"))
        return
    why = job.corrupt if job is not None else "its row vanished"
    if why is not None:
        target.execute("ROLLBACK")
        report.lost.append(Lost(seq, job_id, name, why))
        return
    target.execute("COMMIT")
    report.kept.append((values["id"], values.get("display_name") or ""))


def _children(source: sqlite3.Connection, table: str, columns: list[str], job_id: object) -> list[tuple[Any, ...]]:
    """A job's rows in ``table``; a damaged page can lead the scan round a cycle of pages, so a row seen twice
    (or more rows than any job holds) ends it as damage."""
    rows: list[tuple[Any, ...]] = []
    if not columns:
        return rows
    seen: set[tuple[Any, ...]] = set()
    with bounded(source):
        for row in source.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE job_id = ?", (job_id,)):
            if row in seen or len(rows) >= _MAX_CHILDREN:
                raise sqlite3.DatabaseError(f"its {table} rows lead round a cycle of damaged pages")
            seen.add(row)
            rows.append(row)
    return rows


def _insert(target: sqlite3.Connection, table: str, columns: list[str], rows: list[tuple[object, ...]]) -> None:
    if rows:
        marks = ", ".join("?" * len(columns))
        target.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _move_aside(path: Path) -> Path:
    """queue.db -> queue.db.broken-<UTC time>, its WAL and shared memory along with it (SQLite pairs them by name)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    os.replace(path, aside)
    return aside


def _remove_queue_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
