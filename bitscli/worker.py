"""One job's transfer thread: its files in order, progress saved after every fsync, errors classified."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bitscli import lifecycle, wakeup
from bitscli.clock import Clock
from bitscli.errors import BitsError
from bitscli.model import ErrorContext, Job, JobFile, JobState
from bitscli.recording import Durability, Recorder
from bitscli.store import Queue, open_queue
from bitscli.transfer import files
from bitscli.transfer.classify import E_FAIL, TransferError

if TYPE_CHECKING:
    from bitscli.transfer.client import Client

log = logging.getLogger("bitscli.daemon")

QUICK_RETRIES = 3  # a response cut off after progress is resumed at once this many times (as wget, aria2)
QUICK_BACKOFF = 0.5  # seconds, doubled on each quick retry
READ_AHEAD = 16  # files read from the queue at a time; their part files are created ahead (files.Precreator)
# Other processes' changes (the CLI's setcustomheaders, say) are looked for at most this often (real time, a
# throttle, not a BITS timer): PRAGMA data_version cost 30 us a file while the helper threads held the GIL,
# 4% of a job of small files. This worker's own writes are always seen.
FOREIGN_CHECK_SECONDS = 0.01


class Worker(threading.Thread):
    """Transfers one job until it is done, fails, or the daemon asks it to stop."""

    def __init__(self, queue_path: Path, job_id: str, clock: Clock) -> None:
        super().__init__(name=f"job-{job_id}", daemon=True)
        self.queue_path = queue_path
        self.job_id = job_id
        self.clock = clock
        self.stopping = threading.Event()
        self.abort_transfer: Callable[[], None] | None = None
        self.precreator = files.Precreator()
        self._job: Job | None = None  # the header and next files as last read, and the queue's stamp then
        self._upcoming: list[tuple[int, JobFile]] = []
        self._stamp: tuple[int, int] | None = None
        self._stamp_checked = 0.0  # time.monotonic() of the last look at the stamp

    def stop(self) -> None:
        """Ask the transfer to stop; a blocked read is broken so this takes effect within a second."""
        self.stopping.set()
        abort = self.abort_transfer
        if abort is not None:
            abort()

    def run(self) -> None:
        from bitscli.transfer.client import Client  # deferred: the CLI never loads the transfer stack

        queue = open_queue(self.queue_path, durable=False)
        client = Client()
        durability = Durability(self.queue_path, self.job_id, self.clock)
        try:
            self._run(queue, client, durability)
        except Exception as exc:  # a bug must not kill the daemon: the job reports it and is retried
            log.exception("job %s: unexpected failure", self.job_id)
            message = f"internal error: {type(exc).__name__}"
            self.update(queue, lambda job, now: lifecycle.failed(
                job, None, E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER, message, True, now,
            ))  # fmt: skip
        finally:
            durability.close()
            self.precreator.close()
            client.close()
            self._discard_if_ended(queue)
            queue.close()
            # The daemon ticks for its workers' commits only now and then (daemon.UNANNOUNCED_SECONDS): a job
            # that ended announces it, so the next one starts, and a notification runs, at once.
            wakeup.nudge()

    def _run(self, queue: Queue, client: Client, durability: Durability) -> None:
        quick = 0
        job, index, f = self._next(queue)
        if job is not None and job.type.is_upload:
            from bitscli import upload_job

            upload_job.run(self, queue, client)
            return
        while True:
            if self.stopping.is_set() or job is None or job.state not in lifecycle.ACTIVE:
                self._settle(queue, durability)
                return
            if index is None or f is None:
                if not self._settle(queue, durability):
                    return
                job, index, f = self._next(queue)
                if index is None:
                    self.update(queue, lifecycle.finish)
                    return
                continue  # a file whose completion could not be recorded: fetch it again
            if job.state is JobState.QUEUED:
                self.update(queue, lifecycle.connecting)
            recorder = Recorder(self, queue, index)
            part = files.part_path(f.local_name, job.id, index)
            try:
                version = _fetch(client, job, part, f, recorder)
            except _StopTransfer:
                self._settle(queue, durability)
                return
            except TransferError as err:
                if not self._settle(queue, durability):
                    return
                if err.transient and recorder.advanced and quick < QUICK_RETRIES:
                    quick += 1
                    log.info("job %s: %s; resuming at once (%d/%d)", job.id, err.message, quick, QUICK_RETRIES)
                    if self.stopping.wait(QUICK_BACKOFF * 2 ** (quick - 1)):
                        return
                    job, index, f = self._next(queue)
                    continue
                self.fail(queue, index, err)
                return
            quick = 0
            url = recorder.url or f.remote_name
            durability.submit(index, part, version.size, version.etag, version.last_modified, url,
                              recorder.active_since_last())  # fmt: skip
            log.debug("job %s: file %d fetched (%d bytes)", job.id, index, version.size)
            job, index, f = self._next(queue, after=index)

    def _next(self, queue: Queue, after: int | None = None) -> tuple[Job | None, int | None, JobFile | None]:
        """The job's header, and its first file not yet complete (after index ``after``, when given).

        The header and the next few files are read again only when the queue may have changed (re-reading them
        for each file was a tenth of a 1,000-file job's time). The stamp is taken before the snapshot, so a
        commit between the two only causes one more read, never stale rows. The next files' part files are
        created ahead.
        """
        upcoming = [(i, f) for i, f in self._upcoming if after is None or i > after]
        now = time.monotonic()
        if self._stamp is None or queue.writes != self._stamp[1] or now - self._stamp_checked >= FOREIGN_CHECK_SECONDS:
            stamp, self._stamp_checked = queue.stamp(), now
        else:
            stamp = self._stamp  # looked at less than FOREIGN_CHECK_SECONDS ago, and nothing written here since
        if stamp != self._stamp or not upcoming:
            with queue.read() as tx:
                self._job = tx.job_header(self.job_id)
                upcoming = tx.incomplete_files(self.job_id, after, READ_AHEAD) if self._job is not None else []
            self._stamp = stamp
            self._precreate(self._job, upcoming[1:])
        self._upcoming = upcoming
        return (self._job, *upcoming[0]) if upcoming else (self._job, None, None)

    def _precreate(self, job: Job | None, ahead: list[tuple[int, JobFile]]) -> None:
        new = [(i, f) for i, f in ahead if i > self.precreator.until]
        if job is not None and new and not job.type.is_upload:
            self.precreator.create([files.part_path(f.local_name, job.id, i) for i, f in new], until=new[-1][0])

    def _discard_if_ended(self, queue: Queue) -> None:
        """cancel and complete delete part files from the CLI while this worker may still be creating one (the
        next files', ahead): after the worker's last file operation, whatever is left of an ended job goes.
        The files complete published were renamed away, so only unfinished files' part files remain."""
        try:
            with queue.read() as tx:
                header = tx.job_header(self.job_id)
                job = tx.job(self.job_id) if header is not None and header.state.is_final else None
        except BitsError as exc:
            log.warning("job %s: could not check for part files left by a cancel: %s", self.job_id, exc)
            return
        if job is not None:
            files.discard_all(job)

    def _settle(self, queue: Queue, durability: Durability) -> bool:
        """Wait for the finished files to be recorded; False (and the job in error) if that failed."""
        try:
            durability.drain()
        except TransferError as err:
            self.fail(queue, None, err)
            return False
        return True

    def fail(self, queue: Queue, index: int | None, err: TransferError) -> None:
        if self.stopping.is_set():
            # A stop (suspend, cancel, pre-emption, daemon stop) breaks the connection on purpose: the
            # error that follows is ours, and must not turn a SUSPENDED job into TRANSIENT_ERROR.
            log.info("job %s file %s: stopped (%s)", self.job_id, index, err.message)
            return
        log.warning("job %s file %s: %s", self.job_id, index, err.message)
        self.update(queue, lambda j, now: lifecycle.failed(
            j, index, err.code, err.context, err.message, err.transient, now, err.retry_after,
        ))  # fmt: skip

    def update(self, queue: Queue, change: Callable[[Job, float], Job]) -> None:
        with queue.write() as tx:
            job = tx.job_header(self.job_id)
            if job is None or job.state.is_final:
                return
            new = change(job, self.clock.now())
            if new is not job:
                tx.update_header(new)


class _StopTransfer(Exception):
    pass


def _fetch(client: object, job: Job, part: str, f: JobFile, recorder: Recorder):  # type: ignore[no-untyped-def]
    """Run the engine for one file of the job."""
    from bitscli.transfer import http, local, options

    download = http.Download(
        url=f.remote_name,
        part=part,
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

            return ranges.download(client, download, f.ranges, recorder)  # type: ignore[arg-type]
        return http.download(client, download, recorder)  # type: ignore[arg-type]
    except http.Stopped:
        raise _StopTransfer from None
