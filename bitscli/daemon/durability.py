"""Finished part files made durable on a helper thread behind the downloads, then recorded as done in batches."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bitscli import libc
from bitscli.daemon.control import JobControl
from bitscli.daemon.journal import Journal, Progress
from bitscli.store import open_queue
from bitscli.transfer.classify import TransferError, part_file_error

BATCH_SECONDS = 0.02  # how long the helper waits for more finished files before it syncs and records a batch


class Durability:
    """Fsyncs finished part files and records them as done, on a helper thread behind the downloads.

    The fsync of a small file costs about as much as fetching it; overlapping the two nearly halves the
    time of a job of many small files. A file counts as done only once its bytes are on disk, so a
    crash with files still pending only means fetching those again.
    """

    def __init__(self, queue_path: Path, control: JobControl) -> None:
        self.queue_path = queue_path
        self.control = control
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sync-{control.job_id}")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._waiting: list[Finished] = []  # submitted, not yet taken by the helper thread
        self._scheduled = False  # a run is queued that will take everything waiting
        self._hurry = threading.Event()  # set while the worker waits in drain(): no more files are coming
        self._journal: Journal | None = None  # its own connection, used only on the helper thread

    def submit(self, part: str, done: Progress) -> None:
        """A file whose bytes are all written: fsync it and record it as done, soon, with others."""
        with self._lock:
            self._waiting.append(Finished(part, done))
            scheduled, self._scheduled = self._scheduled, True
        if not scheduled:  # one run per batch, not per file: each run wakes the helper thread for the GIL
            self._pending.append(self._executor.submit(self._make_durable))

    def drain(self) -> None:
        """Wait until every finished file is recorded; raises the first failure (a local-disk error)."""
        pending, self._pending = self._pending, []
        self._hurry.set()  # the last batch need not wait for company: every job's end would pay the pause
        try:
            errors = [f.exception() for f in pending]
        finally:
            self._hurry.clear()
        failure = next((e for e in errors if e is not None), None)
        if failure is not None:
            raise failure

    def close(self) -> None:
        self._executor.submit(self._close_queue).result()
        self._executor.shutdown(wait=True)

    def _close_queue(self) -> None:
        if self._journal is not None:
            self._journal.queue.close()

    def _make_durable(self) -> None:
        """Everything submitted since the last run: synced, then recorded in one transaction.

        While one batch is synced and recorded, the next files arrive; batching them makes the per-file
        cost of the transaction small for jobs of many small files.
        """
        # Let a few more files finish, so one sync and one transaction serve them all (a real-time pause on
        # the helper thread, not a timer: it never touches the injected clock).
        self._hurry.wait(BATCH_SECONDS)
        with self._lock:
            batch, self._waiting, self._scheduled = self._waiting, [], False
        synced, failure = sync_files(batch)
        if self._journal is None:
            self._journal = Journal(self.control, open_queue(self.queue_path, durable=False))
        self._journal.record_done(item.done for item in synced)
        if failure is not None:
            raise failure


def _syncfs(path: str) -> bool:
    """syncfs(2) on the filesystem holding ``path``; False where it is missing or fails (then fsync each)."""
    call = libc.syncfs()
    if call is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return call(fd) == 0  # since Linux 5.8, syncfs reports write-back errors, as fsync does
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Finished:
    """A part file written to its end, and what to record once it is on disk."""

    part: str
    done: Progress


def sync_files(batch: list[Finished]) -> tuple[list[Finished], TransferError | None]:
    """fsync each part file; returns the ones now durable, and the first failure (a local-disk error).

    Several files in one directory are made durable with one syncfs (Linux) instead of an fsync each: one
    flush of the filesystem costs about what one fsync does.
    """
    if len(batch) > 1 and len({os.path.dirname(item.part) for item in batch}) == 1 and _syncfs(batch[0].part):
        return batch, None
    synced: list[Finished] = []
    failure: TransferError | None = None
    for item in batch:
        try:
            fd = os.open(item.part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            failure = failure or part_file_error(exc, item.part)
            continue
        synced.append(item)
    return synced, failure
