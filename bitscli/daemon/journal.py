"""The one place the daemon writes a job's outcome: state changes, durable progress, finished files and failures."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from bitscli.daemon import transitions
from bitscli.daemon.control import JobControl
from bitscli.errors import HResult
from bitscli.model import ACTIVE_STATES, Job, JobFile, UploadState
from bitscli.store import Queue
from bitscli.transaction import Transaction
from bitscli.transfer.classify import TransferError

log = logging.getLogger("bitscli.daemon")


@dataclass(frozen=True)
class Progress:
    """Durable bytes of one file: where they end, what they belong to, and the time spent getting them."""

    index: int
    offset: int
    size: int | None  # None keeps the size the queue has
    etag: str | None
    last_modified: str | None
    url: str | None  # None keeps the remote name (an upload's URL never changes)
    active: float  # seconds of transfer since the last record (the maximum download time)
    done: bool = False  # the file is complete: its bytes are on disk, fsynced
    verified_hash: str | None = None  # with done: the hash the file matched (addfile --sha256)
    unchanged: bool = False  # with done: the server answered 304, the local file stays as it is


class Moved(NamedTuple):
    """What a record says of the bytes: some were written, and some were new (past the file's high-water mark)."""

    written: bool
    new: bool


class Journal:
    """Writes one job's changes to the queue, each in one transaction, through the pure rules of transitions.py.

    A job that was cancelled or completed under the worker, or suspended meanwhile, is told to stop: its
    bytes are kept, its state is not overwritten.
    """

    def __init__(self, control: JobControl, queue: Queue) -> None:
        self.control = control
        self.queue = queue

    def update(self, change: Callable[[Job, float], Job]) -> None:
        """Apply a transition to the job's header, unless the job has ended."""
        with self.queue.write() as tx:
            job = tx.job_header(self.control.job_id)
            if job is None or job.state.is_final:
                return
            new = change(job, self.control.clock.now())
            if new is not job:
                tx.update_header(new)

    def fail(self, index: int | None, err: TransferError) -> None:
        """TRANSIENT_ERROR or ERROR for a failed attempt, unless the failure is the stop we asked for."""
        if self.control.stopping.is_set():
            # A stop (suspend, cancel, pre-emption, daemon stop) breaks the connection on purpose: the
            # error that follows is ours, and must not turn a SUSPENDED job into TRANSIENT_ERROR.
            log.info("job %s file %s: stopped (%s)", self.control.job_id, index, err.message)
            return
        with self.queue.write() as tx:
            job = tx.job_header(self.control.job_id)
            if job is None or job.state.is_final:
                return
            err = self._restarted_too_often(tx, index, err)
            log.warning("job %s file %s: %s", self.control.job_id, index, err.message)
            spread = random.random()
            new = transitions.failed(
                job, index, err.code, err.context, err.message, err.transient, self.control.clock.now(),
                err.retry_after, spread,
            )  # fmt: skip
            tx.update_header(new)

    def _restarted_too_often(self, tx: Transaction, index: int | None, err: TransferError) -> TransferError:
        """A file that keeps starting over from byte 0 without a new byte is given up, as BITS does."""
        if index is None or not err.transient:
            return err
        f = tx.files_at(self.control.job_id, [index]).get(index)
        if f is None or f.restarts < transitions.MAX_RESTARTS:
            return err
        header = tx.job_header(self.control.job_id)
        if header is not None and header.type.is_upload:  # a new upload session starts from byte 0 (MC-BUP)
            return TransferError(
                f"{err.message}; the server lost the upload session {f.restarts} times, each new session starting "
                f"over from byte 0, and never acknowledged a byte past {f.high_water}",
                code=HResult.BG_E_SESSION_NOT_FOUND, context=err.context, transient=False,
            )  # fmt: skip
        return TransferError(
            f"{err.message}; the file started over {f.restarts} times without getting past byte {f.high_water} "
            "(the server ignores Range requests, or cuts every transfer short)",
            code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT, context=err.context, transient=False,
        )  # fmt: skip

    def record(self, progress: Progress, upload: UploadState | None = None) -> Moved:
        """Save one file's durable bytes (and an upload's session with them); says whether bytes moved."""
        with self.queue.write() as tx:
            if upload is not None:  # even for a cancelled job: Cancel-Session needs the session
                tx.save_upload_state(self.control.job_id, upload)
            job = self._live(tx)
            if job is None:
                return Moved(False, False)
            f = tx.file(self.control.job_id, progress.index)
            moved = Moved(progress.offset > f.bytes_transferred, progress.offset > f.high_water)
            new, new_file = self._apply(job, f, progress)
            if job.state not in ACTIVE_STATES:  # suspended meanwhile: keep the bytes, not the state
                new = dataclasses.replace(new, state=job.state)
                self.control.stopping.set()
            tx.update_file(self.control.job_id, progress.index, new_file)
            tx.update_header(new)
        return moved

    def record_upload(self, state: UploadState) -> None:
        """Save an upload's session and reply alone (no bytes of the file moved)."""
        with self.queue.write() as tx:
            tx.save_upload_state(self.control.job_id, state)
            job = self._live(tx)
            if job is not None and job.state not in ACTIVE_STATES:
                self.control.stopping.set()

    def record_done(self, finished: Iterable[Progress]) -> None:
        """Mark finished, fsynced files as done, all in one transaction (a batch from Durability)."""
        with self.queue.write() as tx:
            job = tx.job_header(self.control.job_id)
            if job is None or job.state.is_final:
                return
            items = list(finished)
            found = tx.files_at(self.control.job_id, [item.index for item in items])  # one query for the batch
            done = []
            for item in items:
                if item.index not in found:
                    continue  # no such file any more: nothing to record
                job, f = self._apply(job, found[item.index], item)
                done.append((item.index, f))
            tx.update_files(self.control.job_id, done)
            tx.update_header(job)

    def _live(self, tx: Transaction) -> Job | None:
        """The job's header, or None (and a stop) when it was cancelled or completed under us."""
        job = tx.job_header(self.control.job_id)
        if job is None or job.state.is_final:
            self.control.stopping.set()
            return None
        return job

    def _apply(self, job: Job, f: JobFile, progress: Progress) -> tuple[Job, JobFile]:
        now = self.control.clock.now()
        size = progress.size if progress.size is not None else f.bytes_total
        url = progress.url if progress.url is not None else f.remote_name
        new, new_file = transitions.progress(
            job, f, progress.offset, size, progress.etag, progress.last_modified, url, now, progress.active
        )
        if progress.done:
            new, new_file = transitions.file_done(new, new_file, new_file.bytes_total, now)
            if progress.verified_hash:
                new_file = dataclasses.replace(new_file, verified_hash=progress.verified_hash)
            if progress.unchanged:
                new_file = dataclasses.replace(new_file, unchanged=True)
        return new, new_file

    def hash_mismatch(self, index: int) -> int:
        """Count a hash mismatch of the file, whose bytes were discarded; returns how many there have been."""
        with self.queue.write() as tx:
            f = tx.file(self.control.job_id, index)
            count = f.hash_mismatches + 1
            tx.update_file(self.control.job_id, index, dataclasses.replace(f, hash_mismatches=count))
        return count
