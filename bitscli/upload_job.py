"""An upload job in the daemon: the protocol engine's reports saved to the queue, the reply, Cancel-Session."""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from bitscli import lifecycle, protocol
from bitscli.clock import Clock
from bitscli.model import JobState, JobType
from bitscli.store import Queue, open_queue
from bitscli.transfer import files, options, upload
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.upload_state import UploadState
from bitscli.worker import QUICK_BACKOFF, QUICK_RETRIES  # as for downloads: resumed at once a few times

if TYPE_CHECKING:
    from bitscli.worker import Worker

log = logging.getLogger("bitscli.daemon")
CANCEL_TRIES = 3


class UploadRecorder:
    """The engine's Events for one job: every report is one transaction in the queue."""

    def __init__(self, worker: Worker, queue: Queue) -> None:
        self.worker = worker
        self.queue = queue
        self.advanced = False
        self._reply_seen: int | None = None
        self._last = worker.clock.monotonic()

    def now(self) -> float:
        return self.worker.clock.now()

    def stop_requested(self) -> bool:
        return self.worker.stopping.is_set()

    def _active(self) -> float:
        now = self.worker.clock.monotonic()
        active, self._last = now - self._last, now
        return active

    def save(self, state: UploadState, offset: int | None = None, size: int | None = None, done: bool = False) -> None:
        job_id = self.worker.job_id
        if self._reply_seen is not None and state.reply_transferred > self._reply_seen:
            self.advanced = True
        self._reply_seen = state.reply_transferred
        with self.queue.write() as tx:
            tx.save_upload_state(job_id, state)  # even for a cancelled job: Cancel-Session needs the session
            job = tx.job_header(job_id)
            if job is None or job.state.is_final:
                self.worker.stopping.set()
                return
            if offset is not None:
                f = tx.file(job_id, 0)
                if offset > f.bytes_transferred:
                    self.advanced = True
                new, new_file = lifecycle.progress(
                    job, f, offset, size if size is not None else f.bytes_total, None, None, f.remote_name,
                    self.now(), self._active(),
                )  # fmt: skip
                if done:
                    new, new_file = lifecycle.file_done(new, new_file, new_file.bytes_total, self.now())
                if job.state not in lifecycle.ACTIVE:  # suspended meanwhile: keep the bytes, not the state
                    new = dataclasses.replace(new, state=job.state)
                    self.worker.stopping.set()
                tx.update_file(job_id, 0, new_file)
                tx.update_header(new)
            elif job.state not in lifecycle.ACTIVE:
                self.worker.stopping.set()


def run(worker: Worker, queue: Queue, client: Client) -> None:
    """Upload the job's file, fetch the reply of an upload-reply job, close the session, then TRANSFERRED."""
    quick = 0
    worker.abort_transfer = client.abort  # a stop breaks a fragment in flight, or the wait for its Ack
    while True:
        with queue.read() as tx:
            job = tx.job_header(worker.job_id)
            if job is None or job.state not in lifecycle.ACTIVE or worker.stopping.is_set():
                return
            f = tx.file(job.id, 0)
            state = tx.upload_state(job.id)
            job = dataclasses.replace(job, files=(f,))
        if job.state is JobState.QUEUED:
            worker.update(queue, lifecycle.connecting)
        recorder = UploadRecorder(worker, queue)
        up = upload.Upload(
            url=f.remote_name, local=f.local_name, reply=job.type is JobType.UPLOAD_REPLY,
            headers=options.headers(job), request_options=options.request_options(job, f.remote_name),
        )  # fmt: skip
        try:
            if not f.completed:
                state = upload.send_file(client, up, state, f.bytes_transferred, recorder)
                size = upload.local_stamp(f.local_name)[1]
                recorder.save(state, size, size, done=True)
            if up.reply and not state.reply_done:
                state = upload.fetch_reply(client, up, state, files.reply_part(job), recorder)
                recorder.save(state)
            if not state.closed:
                upload.close_session(client, up, state)  # the reply is fetched first: closing would lose it
                recorder.save(dataclasses.replace(state, closed=True))
        except upload.Stopped:
            return
        except TransferError as err:
            if err.transient and recorder.advanced and quick < QUICK_RETRIES:
                quick += 1
                log.info("job %s: %s; resuming at once (%d/%d)", job.id, err.message, quick, QUICK_RETRIES)
                if worker.stopping.wait(QUICK_BACKOFF * 2 ** (quick - 1)):
                    return
                continue
            worker.fail(queue, 0, err)
            return
        log.info("job %s: upload of %s done", job.id, f.local_name)
        worker.update(queue, lifecycle.finish)
        return


def cancel_session(queue_path: Path, job_id: str, clock: Clock, stop: threading.Event) -> None:
    """Tell the server a cancelled job's session is gone (Cancel-Session), a few tries; then forget it."""
    queue = open_queue(queue_path, durable=False)
    client = Client()
    try:
        with queue.read() as tx:
            job = tx.job_header(job_id)
            state = tx.upload_state(job_id)
            f = tx.file(job_id, 0) if job is not None else None
        if job is None or f is None or not state.needs_cancel:
            return
        up = upload.Upload(
            url=f.remote_name, local=f.local_name, reply=False, headers=options.headers(job),
            request_options=options.request_options(job, f.remote_name), timeout=(10.0, 20.0),
        )  # fmt: skip
        for attempt in range(CANCEL_TRIES):
            try:
                upload.close_session(client, up, state, protocol.CANCEL_SESSION)
                log.info("job %s: session %s cancelled on the server", job_id, state.session_id)
                break
            except TransferError as err:
                log.info("job %s: Cancel-Session failed (%s)", job_id, err.message)
                if stop.wait(2.0 * (attempt + 1)):
                    return
        # Either way it is forgotten: a server frees sessions without progress on its own (BITSSessionTimeout).
        with queue.write() as tx:
            tx.save_upload_state(job_id, dataclasses.replace(state, closed=True))
    except Exception:
        log.exception("job %s: Cancel-Session", job_id)
    finally:
        client.close()
        queue.close()
