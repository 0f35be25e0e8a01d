"""What a worker writes to the queue: checkpoints during a transfer, finished files once fsynced."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bitscli import libc, lifecycle
from bitscli.store import Queue, open_queue
from bitscli.transfer.classify import TransferError, local_error

if TYPE_CHECKING:
    from bitscli.transfer.http import Version
    from bitscli.worker import Worker


class Recorder:
    """The engine's Progress for one file: saves each checkpoint and watches for a stop."""

    def __init__(self, worker: Worker, queue: Queue, index: int) -> None:
        self.worker = worker
        self.queue = queue
        self.index = index
        self.advanced = False
        self.url: str | None = None  # the URL the bytes came from, after redirects
        self._last = worker.clock.monotonic()

    def active_since_last(self) -> float:
        """Seconds of transfer since the last call (for the maximum download time)."""
        now = self.worker.clock.monotonic()
        active, self._last = now - self._last, now
        return active

    def transferring(self, abort: Callable[[], None], url: str) -> None:
        self.url = url
        self.worker.abort_transfer = abort
        if self.worker.stopping.is_set():
            abort()

    def checkpoint(self, offset: int, version: Version, url: str) -> None:
        active = self.active_since_last()
        self.url = url
        with self.queue.write() as tx:
            job = tx.job_header(self.worker.job_id)
            if job is None or job.state.is_final:
                self.worker.stopping.set()  # cancelled or completed under us: stop writing
                return
            f = tx.file(self.worker.job_id, self.index)
            if offset > f.bytes_transferred:
                self.advanced = True
            new, new_file = lifecycle.progress(
                job, f, offset, version.size, version.etag, version.last_modified, url, self.worker.clock.now(), active
            )
            if job.state not in lifecycle.ACTIVE:  # suspended meanwhile: keep the bytes, not the state
                new = dataclasses.replace(new, state=job.state)
                self.worker.stopping.set()
            tx.update_file(self.worker.job_id, self.index, new_file)
            tx.update_header(new)

    def stop_requested(self) -> bool:
        return self.worker.stopping.is_set()


BATCH_SECONDS = 0.02  # how long the helper waits for more finished files before it syncs and records a batch


class Durability:
    """Fsyncs finished part files and records them as done, on a helper thread behind the downloads.

    The fsync of a small file costs about as much as fetching it; overlapping the two nearly halves the
    time of a job of many small files. A file counts as done only once its bytes are on disk, so a
    crash with files still pending only means fetching those again.
    """

    def __init__(self, queue_path: Path, job_id: str, clock: object) -> None:
        self.queue_path = queue_path
        self.job_id = job_id
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sync-{job_id}")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._waiting: list[_Finished] = []  # submitted, not yet taken by the helper thread
        self._scheduled = False  # a run is queued that will take everything waiting
        self._hurry = threading.Event()  # set while the worker waits in drain(): no more files are coming
        self._queue: Queue | None = None  # used only on the helper thread

    def submit(self, index: int, part: str, size: int, etag: str | None, last_modified: str | None, url: str,
               active: float) -> None:  # fmt: skip
        with self._lock:
            self._waiting.append(_Finished(index, part, size, etag, last_modified, url, active))
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
        if self._queue is not None:
            self._queue.close()

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
        if self._queue is None:
            self._queue = open_queue(self.queue_path, durable=False)
        now = self.clock.now()  # type: ignore[attr-defined]
        with self._queue.write() as tx:
            job = tx.job_header(self.job_id)
            if job is None or job.state.is_final:
                return
            found = tx.files_at(self.job_id, [item.index for item in synced])  # one query for the batch
            done = []
            for item in synced:
                if item.index not in found:
                    continue  # no such file any more: nothing to record
                job, f = lifecycle.progress(
                    job, found[item.index], item.size, item.size, item.etag, item.last_modified, item.url, now,
                    item.active,
                )  # fmt: skip
                job, f = lifecycle.file_done(job, f, item.size, now)
                done.append((item.index, f))
            tx.update_files(self.job_id, done)
            tx.update_header(job)
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
class _Finished:
    index: int
    part: str
    size: int
    etag: str | None
    last_modified: str | None
    url: str
    active: float


def sync_files(batch: list[_Finished]) -> tuple[list[_Finished], TransferError | None]:
    """fsync each part file; returns the ones now durable, and the first failure (a local-disk error).

    Several files in one directory are made durable with one syncfs (Linux) instead of an fsync each: one
    flush of the filesystem costs about what one fsync does.
    """
    if len(batch) > 1 and len({os.path.dirname(item.part) for item in batch}) == 1 and _syncfs(batch[0].part):
        return batch, None
    synced: list[_Finished] = []
    failure: TransferError | None = None
    for item in batch:
        try:
            fd = os.open(item.part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            failure = failure or local_error(exc, item.part)
            continue
        synced.append(item)
    return synced, failure
