"""One job's transfer thread: its connections, the download or upload loop, quick retries, and a crash reported."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bitscli import libc
from bitscli.clock import Clock
from bitscli.daemon import transitions, wakeup
from bitscli.daemon.bandwidth import Bandwidth, Pacer
from bitscli.daemon.control import JobControl
from bitscli.daemon.journal import Journal
from bitscli.daemon.yielding import Yielder
from bitscli.errors import BitsError, HResult, QueueError
from bitscli.model import ErrorContext, JobPriority
from bitscli.partfiles import discard_all
from bitscli.schema import CorruptRow
from bitscli.store import Queue, open_queue

log = logging.getLogger("bitscli.daemon")


class Worker(threading.Thread):
    """Transfers one job until it is done, fails, or the daemon asks it to stop."""

    def __init__(
        self, queue_path: Path, job_id: str, clock: Clock, bandwidth: Bandwidth | None = None, polite: bool = False,
        on_queue_error: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(name=f"job-{job_id}", daemon=True)
        self.queue_path = queue_path
        self.polite = polite  # a background job's thread at a low CPU and I/O priority, as BITS is a background service
        self.on_queue_error = on_queue_error or (lambda: None)  # the daemon then waits before starting workers
        self.bandwidth = bandwidth or Bandwidth()
        self.control = JobControl(job_id, clock)
        stopping = self.control.stopping
        self.yielder: Yielder | None = None  # made in run(), once the job's direction and connections are known
        self._pacer = Pacer(self._rate, clock.monotonic, lambda s: clock.wait(stopping, s))
        self.control.pace = self._pace

    def _rate(self) -> float:
        """The lower of the rate in force (cap, policy) and the yielding controller's; 0 is no limit. Called on
        every read: no allocation."""
        rate = self.bandwidth.rate(self.control.job_id)
        own = self.yielder.rate() if self.yielder is not None else 0.0
        return min(rate, own) if rate and own else rate or own

    def _pace(self, nbytes: int) -> int:
        yielder = self.yielder
        if yielder is not None:
            if self.bandwidth.yields(self.control.job_id):
                yielder.moved(nbytes)
            elif yielder.rate():
                yielder.reset()  # made FOREGROUND, or the policy turned yielding off
        return self._pacer.take(nbytes)

    @property
    def stopping(self) -> threading.Event:
        return self.control.stopping

    def stop(self) -> None:
        self.control.stop()

    def run(self) -> None:
        from bitscli.daemon import downloads, uploads  # deferred: they load the transfer engine
        from bitscli.transfer.client import Client

        job_id = self.control.job_id
        queue = open_queue(self.queue_path, durable=False)
        client = Client(receive_buffer=lambda: self.bandwidth.receive_buffer(job_id))
        journal = Journal(self.control, queue)
        try:
            with queue.read() as tx:
                header = tx.job_header(job_id)
            if self.polite and header is not None and header.priority is not JobPriority.FOREGROUND:
                libc.be_background()  # the threads this one starts (part writer, fsyncs) inherit it
            receiving = header is None or not header.type.is_upload
            self.yielder = Yielder(client.delays, self.control.clock.monotonic, receiving, job_id,
                                   client.set_receive_window)  # fmt: skip
            if header is not None and header.type.is_upload:
                uploads.run(self.control, journal, client)
            else:
                downloads.run(self.queue_path, self.control, journal, client)
        except QueueError as exc:  # a full or read-only state disk: the job's record cannot be written now
            log.error("job %s: the queue cannot be written (%s); the transfer stops until it can", job_id, exc.message)
            self.on_queue_error()
        except CorruptRow as exc:  # a file row that cannot be read: no retry will read it either
            reason = f"internal state corrupt: {exc}"
            log.error("job %s: %s", job_id, reason)
            journal.update(lambda job, now: transitions.failed(
                job, None, HResult.E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER, reason, False, now,
            ))  # fmt: skip
        except Exception as exc:  # a bug must not kill the daemon: the job reports it and is retried
            log.exception("job %s: unexpected failure", job_id)
            message = f"internal error: {type(exc).__name__}"
            with contextlib.suppress(QueueError):  # reported above; a queue that cannot be written waits
                journal.update(lambda job, now: transitions.failed(
                    job, None, HResult.E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER, message, True, now,
                ))  # fmt: skip
        finally:
            client.close()
            _discard_if_ended(queue, job_id)
            queue.close()
            # The daemon ticks for its workers' commits only now and then (loop.UNANNOUNCED_SECONDS): a job
            # that ended announces it, so the next one starts, and a notification runs, at once.
            wakeup.nudge()


def _discard_if_ended(queue: Queue, job_id: str) -> None:
    """cancel and complete delete part files from the CLI while the worker may still be creating one (the next
    files', ahead): after the worker's last file operation, whatever is left of an ended job goes. The files
    complete published were renamed away, so only unfinished files' part files remain."""
    try:
        with queue.read() as tx:
            header = tx.job_header(job_id)
            job = tx.job(job_id) if header is not None and header.state.is_final else None
    except BitsError as exc:
        log.warning("job %s: could not check for part files left by a cancel: %s", job_id, exc)
        return
    if job is not None:
        discard_all(job)
