"""One job's transfer thread: its files in order, progress saved after every fsync, errors classified."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bitscli import lifecycle
from bitscli.clock import Clock
from bitscli.model import ErrorContext, Job, JobFile, JobState
from bitscli.store import Queue, Transaction, open_queue
from bitscli.transfer import files
from bitscli.transfer.classify import E_FAIL, TransferError

log = logging.getLogger("bitscli.daemon")

QUICK_RETRIES = 3  # a response cut off after progress is resumed at once this many times (as wget, aria2)
QUICK_BACKOFF = 0.5  # seconds, doubled on each quick retry


class Worker(threading.Thread):
    """Transfers one job until it is done, fails, or the daemon asks it to stop."""

    def __init__(self, queue_path: Path, job_id: str, clock: Clock) -> None:
        super().__init__(name=f"job-{job_id}", daemon=True)
        self.queue_path = queue_path
        self.job_id = job_id
        self.clock = clock
        self.stopping = threading.Event()
        self._abort: Callable[[], None] | None = None

    def stop(self) -> None:
        """Ask the transfer to stop; a blocked read is broken so this takes effect within a second."""
        self.stopping.set()
        abort = self._abort
        if abort is not None:
            abort()

    def run(self) -> None:
        from bitscli.transfer.client import Client  # deferred: the CLI never loads the transfer stack

        queue = open_queue(self.queue_path, durable=False)
        session = Client()
        try:
            self._run(queue, session)
        except Exception as exc:  # a bug must not kill the daemon: the job reports it and is retried
            log.exception("job %s: unexpected failure", self.job_id)
            message = f"internal error: {type(exc).__name__}"
            self._update(queue, lambda job, now: lifecycle.failed(
                job, None, E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER, message, True, now,
            ))  # fmt: skip
        finally:
            session.close()
            queue.close()

    def _run(self, queue: Queue, session: object) -> None:
        quick = 0
        with queue.read() as tx:
            job, index, f = _next_file(tx, self.job_id)
        while not self.stopping.is_set():
            if job is None or job.state not in lifecycle.ACTIVE:
                return
            if index is None or f is None:
                self._update(queue, lifecycle.finish)
                return
            if job.state is JobState.QUEUED:
                self._update(queue, lifecycle.connecting)
            recorder = _Recorder(self, queue, index)
            try:
                version = _fetch(session, job, index, f, recorder)
            except _StopTransfer:
                return
            except TransferError as err:
                if err.transient and recorder.advanced and quick < QUICK_RETRIES:
                    quick += 1
                    log.info("job %s: %s; resuming at once (%d/%d)", job.id, err.message, quick, QUICK_RETRIES)
                    if self.stopping.wait(QUICK_BACKOFF * 2 ** (quick - 1)):
                        return
                    with queue.read() as tx:
                        job, index, f = _next_file(tx, self.job_id)
                    continue
                log.warning("job %s file %d: %s", job.id, index, err.message)
                self._update(queue, lambda j, now, e=err, i=index: lifecycle.failed(
                    j, i, e.code, e.context, e.message, e.transient, now, e.retry_after,
                ))  # fmt: skip
                return
            quick = 0
            job, index, f = self._file_done(queue, index, version, recorder)

    def _update(self, queue: Queue, change: Callable[[Job, float], Job]) -> None:
        with queue.write() as tx:
            job = tx.job_header(self.job_id)
            if job is None or job.state.is_final:
                return
            new = change(job, self.clock.now())
            if new is not job:
                tx.update_header(new)

    def _file_done(
        self, queue: Queue, index: int, version: object, recorder: _Recorder
    ) -> tuple[Job | None, int | None, JobFile | None]:
        """Record the file as complete and pick the next one, in one transaction."""
        from bitscli.transfer.http import Version

        assert isinstance(version, Version)
        now = self.clock.now()
        with queue.write() as tx:
            job = tx.job_header(self.job_id)
            if job is None or job.state.is_final:
                return None, None, None
            f = tx.file(self.job_id, index)
            job, f = lifecycle.progress(
                job, f, version.size, version.size, version.etag, version.last_modified, recorder.url or f.remote_name,
                now, recorder.active_since_last(),
            )  # fmt: skip
            job, f = lifecycle.file_done(job, f, version.size, now)
            tx.update_file(self.job_id, index, f)
            following = tx.next_incomplete_file(self.job_id)
            if following is None:
                job = lifecycle.finish(job, now)
            tx.update_header(job)
            log.info("job %s: file %d done (%d bytes)", self.job_id, index, version.size)
            return job, following, tx.file(self.job_id, following) if following is not None else None


class _StopTransfer(Exception):
    pass


def _next_file(tx: Transaction, job_id: str) -> tuple[Job | None, int | None, JobFile | None]:
    """The job's header, and the first file not yet complete (None when all are)."""
    job = tx.job_header(job_id)
    index = tx.next_incomplete_file(job_id) if job is not None else None
    return job, index, tx.file(job_id, index) if index is not None else None


class _Recorder:
    """The engine's Progress: saves each checkpoint in the queue and watches for a stop."""

    def __init__(self, worker: Worker, queue: Queue, index: int) -> None:
        self.worker = worker
        self.queue = queue
        self.index = index
        self.advanced = False
        self.url: str | None = None  # the URL the bytes came from, after redirects
        self._last = worker.clock.monotonic()

    def active_since_last(self) -> float:
        """Seconds of transfer since the last checkpoint (for the maximum download time)."""
        now = self.worker.clock.monotonic()
        active, self._last = now - self._last, now
        return active

    def transferring(self, abort: Callable[[], None], url: str) -> None:
        self.url = url
        self.worker._abort = abort
        if self.worker.stopping.is_set():
            abort()

    def checkpoint(self, offset: int, version: object, url: str) -> None:
        from bitscli.transfer.http import Version

        assert isinstance(version, Version)
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
                new = _keep_state(new, job.state)
                self.worker.stopping.set()
            tx.update_file(self.worker.job_id, self.index, new_file)
            tx.update_header(new)

    def stop_requested(self) -> bool:
        return self.worker.stopping.is_set()


def _keep_state(job: Job, state: JobState) -> Job:
    import dataclasses

    return dataclasses.replace(job, state=state)


def _fetch(session: object, job: Job, index: int, f: JobFile, recorder: _Recorder):  # type: ignore[no-untyped-def]
    """Run the engine for one file of the job."""
    from bitscli.transfer import http, local, options

    download = http.Download(
        url=f.remote_name,
        part=files.part_path(f.local_name, job.id, index),
        offset=f.bytes_transferred,
        known=http.Version(f.bytes_total, f.etag, f.last_modified),
        headers=options.headers(job),
        security_flags=job.security_flags,
        dynamic=job.dynamic,
        request_options=options.request_options(job, f.remote_name),
    )
    try:
        if f.remote_name.startswith("/") or f.remote_name.lower().startswith("file:"):
            return local.copy(download, recorder)
        if f.ranges:
            from bitscli.transfer import ranges

            return ranges.download(session, download, f.ranges, recorder)  # type: ignore[arg-type]
        return http.download(session, download, recorder)  # type: ignore[arg-type]
    except http.Stopped:
        raise _StopTransfer from None
