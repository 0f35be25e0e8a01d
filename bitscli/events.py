"""The event log in the queue: each job's creation, state changes (errors, retries) and notification runs."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from bitscli.model import Job, JobState

log = logging.getLogger("bitscli.events")  # written by the daemon, for every process's events (log_line)

CREATED, STATE, NOTIFY, HOOK = "created", "state", "notify", "hook"


@dataclass(frozen=True)
class Event:
    seq: int
    time: float
    job_id: str
    name: str
    kind: str
    from_state: str | None
    to_state: str | None
    code: int | None
    message: str | None
    detail: dict[str, Any]


def record_change(conn: sqlite3.Connection, previous: JobState | None, job: Job) -> None:
    """In the transaction that writes ``job``: its creation (no ``previous``), or the change of its state."""
    if previous is job.state:
        return
    code = message = None
    detail: dict[str, Any] = {}
    if job.state in (JobState.ERROR, JobState.TRANSIENT_ERROR) and job.error is not None:
        code, message = job.error.code, job.error.message
        if job.error.file_index is not None:
            detail["file_index"] = job.error.file_index
    now = time.time()
    if job.state is JobState.TRANSIENT_ERROR and job.retry_at is not None:
        detail["retry_in"] = max(0.0, round(job.retry_at - now, 1))  # the retry's delay
    kind = CREATED if previous is None else STATE
    before = previous.name if previous is not None else None  # QUEUED is 0: never test it for truth
    _insert(conn, now, job, kind, before, job.state.name, code, message, detail)


def record_notify(
    conn: sqlite3.Connection, job: Job, state: JobState, exit_status: int | None, hook: str | None = None
) -> None:  # fmt: skip
    """A notification command line (or a [hooks] command) ran for ``state``; None: it could not run, or was
    killed at its timeout."""
    detail: dict[str, Any] = {"exit_status": exit_status}
    if hook is not None:
        detail["hook"] = hook
    _insert(conn, time.time(), job, HOOK if hook else NOTIFY, None, state.name, None, None, detail)


def mark(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT value FROM daemon_marks WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def set_mark(conn: sqlite3.Connection, name: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO daemon_marks (name, value) VALUES (?, ?)", (name, value))


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def _insert(
    conn: sqlite3.Connection, now: float, job: Job, kind: str, before: str | None, after: str | None,
    code: int | None, message: str | None, detail: dict[str, Any],
) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO events (time, job_id, name, kind, from_state, to_state, code, message, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now, job.id, job.display_name, kind, before, after, code, message, json.dumps(detail) if detail else None),
    )  # fmt: skip


def log_line(event: Event) -> None:
    """The daemon's log line for an event, whichever process committed it (daemon/loop.py reads them in order)."""
    detail = "".join(f" {key}={value}" for key, value in event.detail.items())
    log.info("job %s '%s': %s %s%s%s%s", event.job_id, event.name, event.kind,
             f"{event.from_state} -> " if event.from_state else "", event.to_state or "",
             f" ({event.message})" if event.message else "", detail)  # fmt: skip


def read(
    conn: sqlite3.Connection, job_id: str | None = None, after_seq: int = 0, since: float | None = None,
    limit: int = 10_000,
) -> list[Event]:  # fmt: skip
    """Events in order, after ``after_seq`` (and at or after ``since``), of one job or all."""
    rows = conn.execute(
        "SELECT seq, time, job_id, name, kind, from_state, to_state, code, message, detail FROM events "
        "WHERE seq > ? AND (? IS NULL OR job_id = ?) AND time >= ? ORDER BY seq LIMIT ?",
        (after_seq, job_id, job_id, since if since is not None else float("-inf"), limit),
    ).fetchall()
    return [
        Event(seq, at, job, name or "", kind, before, after, code, message, json.loads(detail) if detail else {})
        for seq, at, job, name, kind, before, after, code, message, detail in rows
    ]


def prune(conn: sqlite3.Connection, cutoff: float) -> None:
    """Events older than the history retention go (config: queue.history_days)."""
    conn.execute("DELETE FROM events WHERE time < ?", (cutoff,))
