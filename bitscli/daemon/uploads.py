"""An upload job in the daemon: the protocol engine's reports saved to the queue, the reply, Cancel-Session."""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from bitscli import protocol
from bitscli.clock import Clock
from bitscli.daemon import transitions
from bitscli.daemon.control import JobControl
from bitscli.daemon.journal import Journal, Moved, Progress
from bitscli.daemon.retries import QuickRetries
from bitscli.model import ACTIVE_STATES, JobState, JobType, UploadState
from bitscli.partfiles import reply_part
from bitscli.store import open_queue
from bitscli.transfer import job_request, upload, upload_reply
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.transfer.types import Stopped

log = logging.getLogger("bitscli.daemon")
CANCEL_TRIES = 3


class UploadRecorder:
    """The engine's Events for one job: every report is journaled, the session with the bytes it covers."""

    def __init__(self, control: JobControl, journal: Journal) -> None:
        self.control = control
        self.journal = journal
        self.moved = Moved(False, False)  # whether this attempt moved bytes, and new ones
        self._reply_seen: int | None = None
        self._last = control.clock.monotonic()

    def now(self) -> float:
        return self.control.clock.now()

    def stop_requested(self) -> bool:
        return self.control.stopping.is_set()

    def pace(self, nbytes: int) -> int:
        return self.control.pace(nbytes)

    def _active(self) -> float:
        now = self.control.clock.monotonic()
        active, self._last = now - self._last, now
        return active

    def save(self, state: UploadState, offset: int | None = None, size: int | None = None, done: bool = False) -> None:
        if self._reply_seen is not None and state.reply_transferred > self._reply_seen:
            self.moved = Moved(True, True)  # the reply's bytes: its part file holds each once
        self._reply_seen = state.reply_transferred
        if offset is None:
            self.journal.record_upload(state)
            return
        recorded = self.journal.record(Progress(0, offset, size, None, None, None, self._active(), done), upload=state)
        self.moved = Moved(self.moved.written or recorded.written, self.moved.new or recorded.new)


def run(control: JobControl, journal: Journal, client: Client) -> None:
    """Upload the job's file, fetch the reply of an upload-reply job, close the session, then TRANSFERRED."""
    retries = QuickRetries(control)
    control.transferring(client.abort)  # a stop breaks a fragment in flight, or the wait for its Ack
    while True:
        with journal.queue.read() as tx:
            job = tx.job_header(control.job_id)
            if job is None or job.state not in ACTIVE_STATES or control.stopping.is_set():
                return
            f = tx.file(job.id, 0)
            state = tx.upload_state(job.id)
            job = dataclasses.replace(job, files=(f,))
        if job.state is JobState.QUEUED:
            journal.update(transitions.connecting)
        recorder = UploadRecorder(control, journal)
        up = upload.Upload(
            url=f.remote_name, local=f.local_name, reply=job.type is JobType.UPLOAD_REPLY,
            headers=job_request.headers(job), request_options=job_request.request_options(job, f.remote_name),
            size=f.bytes_total,
        )  # fmt: skip
        try:
            if not f.completed:
                state = upload.send_file(client, up, state, f.bytes_transferred, recorder)
                size = upload.local_stamp(f.local_name)[1]
                recorder.save(state, size, size, done=True)
            if up.reply and not state.reply_done:
                state = upload_reply.fetch_reply(client, up, state, reply_part(job), recorder)
                recorder.save(state)
            if not state.closed:
                upload.close_session(client, up, state)  # the reply is fetched first: closing would lose it
                recorder.save(dataclasses.replace(state, closed=True))
        except Stopped:
            return
        except TransferError as err:
            if retries.again(err, recorder.moved):
                continue
            journal.fail(0, err)
            return
        log.info("job %s: upload of %s done", job.id, f.local_name)
        journal.update(transitions.finish)
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
            url=f.remote_name, local=f.local_name, reply=False, headers=job_request.headers(job),
            request_options=job_request.request_options(job, f.remote_name), timeout=(10.0, 20.0),
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
