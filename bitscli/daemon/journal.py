"""The one place the daemon writes a job's outcome: state changes, durable progress, finished files and failures."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bitscli.daemon import transitions
from bitscli.daemon.control import JobControl
from bitscli.model import ACTIVE_STATES, Job, JobFile, UploadState
from bitscli.store import Queue, Transaction
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
        log.warning("job %s file %s: %s", self.control.job_id, index, err.message)
        self.update(lambda j, now: transitions.failed(
            j, index, err.code, err.context, err.message, err.transient, now, err.retry_after,
        ))  # fmt: skip

    def record(self, progress: Progress, upload: UploadState | None = None) -> bool:
        """Save one file's durable bytes (and an upload's session with them); True when they are new bytes."""
        with self.queue.write() as tx:
            if upload is not None:  # even for a cancelled job: Cancel-Session needs the session
                tx.save_upload_state(self.control.job_id, upload)
            job = self._live(tx)
            if job is None:
                return False
            f = tx.file(self.control.job_id, progress.index)
            advanced = progress.offset > f.bytes_transferred
            new, new_file = self._apply(job, f, progress)
            if job.state not in ACTIVE_STATES:  # suspended meanwhile: keep the bytes, not the state
                new = dataclasses.replace(new, state=job.state)
                self.control.stopping.set()
            tx.update_file(self.control.job_id, progress.index, new_file)
            tx.update_header(new)
        return advanced

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
        return new, new_file
