"""The reply of an upload-reply job for the CLI: its file name, its progress, and its bytes (bits.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

from bitscli.errors import HResult, InvalidState, InvalidValue, LimitExceeded
from bitscli.model import UNKNOWN, Job, JobState, JobType, UploadState
from bitscli.partfiles import reply_name, reply_part
from bitscli.service.context import Context, resolve

MAX_REPLY_DATA = 1 << 20  # GetReplyData returns at most 1 MiB; larger replies are read from the file


@dataclass(frozen=True)
class ReplyProgress:
    transferred: int
    total: int  # UNKNOWN until the reply's size is known (a failure in the upload half, bits.md §2.6)


def _reply_job(ctx: Context, ref: str) -> tuple[Job, UploadState]:
    with ctx.queue.read() as tx:
        job = resolve(tx, ref)
        state = tx.upload_state(job.id)
    if job.type is not JobType.UPLOAD_REPLY:
        raise InvalidValue(
            f"job {job.id} is a {job.type.label} job; only upload-reply jobs have a reply", code=HResult.E_NOTIMPL
        )
    return job, state


def reply_file(job: Job) -> str | None:
    """The reply file's name; None until there is an upload file to name it after."""
    if job.type is not JobType.UPLOAD_REPLY:
        raise InvalidValue(f"job {job.id} is a {job.type.label} job; only upload-reply jobs have a reply file")
    return reply_name(job) if job.files or job.reply_file_name else None


def progress(ctx: Context, ref: str) -> tuple[Job, ReplyProgress]:
    job, state = _reply_job(ctx, ref)
    return job, ReplyProgress(state.reply_transferred, state.reply_total)


def data(ctx: Context, ref: str) -> tuple[Job, bytes]:
    """The reply's bytes, once the job is TRANSFERRED (from the part file) or completed (the reply file)."""
    job, state = _reply_job(ctx, ref)
    if job.state not in (JobState.TRANSFERRED, JobState.ACKNOWLEDGED) or not state.reply_done:
        raise InvalidState(
            f"job {job.id} has no reply yet (it is {job.state.name})", hint=f"wait for it: bitscli wait {job.id}"
        )
    path = reply_name(job) if job.state is JobState.ACKNOWLEDGED else reply_part(job)
    total = state.reply_total
    if total != UNKNOWN and total > MAX_REPLY_DATA:
        raise LimitExceeded(
            f"the reply of job {job.id} is {total} bytes; getreplydata returns at most {MAX_REPLY_DATA}",
            hint=f"complete the job and read the reply file: {reply_name(job)}",
            code=HResult.BG_E_TOO_LARGE,
        )
    try:
        with open(path, "rb") as reply:
            return job, reply.read(MAX_REPLY_DATA + 1)[:MAX_REPLY_DATA]
    except OSError as exc:
        raise InvalidState(f"cannot read the reply of job {job.id} at {path}: {exc.strerror}") from None
