"""Pure state changes the daemon makes: connecting, progress, file done, errors, retries, timeouts."""

from __future__ import annotations

import dataclasses

from bitscli.errors import HResult
from bitscli.model import ACTIVE_STATES, ErrorContext, Job, JobError, JobFile, JobState, SecurityFlags


def connecting(job: Job, now: float) -> Job:
    if job.state is not JobState.QUEUED:
        return job
    return dataclasses.replace(job, state=JobState.CONNECTING, modification_time=now)


def progress(
    job: Job, f: JobFile, offset: int, size: int, etag: str | None, last_modified: str | None, url: str,
    now: float, active: float,
) -> tuple[Job, JobFile]:  # fmt: skip
    """Record durable bytes of a file; a new byte resets the no-progress timer (bits.md §2.6).

    A new byte is one past the file's high-water mark: bytes fetched again after a restart from zero are not
    progress, or a server that ignores Range and cuts every transfer short would keep a job busy for ever.
    """
    new_bytes = offset > f.high_water
    restarted = offset == 0 and f.bytes_transferred > 0
    new = dataclasses.replace(
        f, bytes_transferred=offset, bytes_total=size, etag=etag, last_modified=last_modified,
        remote_name=url if job.security_flags & SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT else f.remote_name,
        high_water=max(f.high_water, offset), restarts=0 if new_bytes else f.restarts + restarted,
    )  # fmt: skip
    changes: dict[str, object] = {"active_seconds": job.active_seconds + active}
    if new_bytes:
        changes.update(transient_since=None, modification_time=now)
    if job.state in (JobState.QUEUED, JobState.CONNECTING):
        changes["state"] = JobState.TRANSFERRING
    return dataclasses.replace(job, **changes), new  # type: ignore[arg-type]


def file_done(job: Job, f: JobFile, size: int, now: float) -> tuple[Job, JobFile]:
    new = dataclasses.replace(f, bytes_total=size, bytes_transferred=size, completed=True, restarts=0)
    return dataclasses.replace(job, modification_time=now, transient_since=None), new


def finish(job: Job, now: float) -> Job:
    """TRANSFERRED: the caller found no file left to transfer."""
    if job.state not in ACTIVE_STATES:
        return job
    return dataclasses.replace(job, state=JobState.TRANSFERRED, completion_time=now, error=None)


RETRY_SPREAD = 0.25  # retry delays are jittered up to this much longer
MAX_RESTARTS = 5  # starts from byte 0 without a new byte before a file is given up (BG_E_INSUFFICIENT_RANGE_SUPPORT)


def failed(
    job: Job, index: int | None, code: int, context: ErrorContext, message: str, transient: bool, now: float,
    retry_after: float | None = None, spread: float = 0.0,
) -> Job:  # fmt: skip
    """TRANSIENT_ERROR with a retry time, or ERROR when fatal or out of patience (bits.md §2.6).

    ``spread`` (uniform in [0, 1), drawn by the caller) lengthens the retry delay by up to RETRY_SPREAD of it,
    never shortening it: a fleet that failed together does not come back together.
    """
    error = JobError(code, context, index, message)
    since = job.transient_since if job.transient_since is not None else now
    delay = max(job.min_retry_delay, retry_after or 0.0) * (1 + RETRY_SPREAD * spread)
    out_of_time = now - since >= job.no_progress_timeout or delay > job.no_progress_timeout
    if not transient or out_of_time:
        return dataclasses.replace(
            job, state=JobState.ERROR, error=error, error_count=job.error_count + 1, modification_time=now,
            retry_at=None,
        )  # fmt: skip
    return dataclasses.replace(
        job, state=JobState.TRANSIENT_ERROR, error=error, error_count=job.error_count + 1, modification_time=now,
        retry_at=now + delay, transient_since=since,
    )  # fmt: skip


def requeue(job: Job, now: float) -> Job:
    """Back to QUEUED: the slice ended, a higher priority took over, or the daemon restarted."""
    if job.state not in (JobState.CONNECTING, JobState.TRANSFERRING):
        return job
    return dataclasses.replace(job, state=JobState.QUEUED, modification_time=now)


def timers(job: Job, now: float, inactivity_seconds: float = 90 * 86_400) -> Job:
    """Apply the retry delay, the no-progress timeout, the maximum download time and the inactivity limit."""
    if not job.state.is_final and now - job.modification_time >= inactivity_seconds:
        # JobInactivityTimeout: no progress and no change for that long; abandoned (bits.md §5).
        return dataclasses.replace(job, state=JobState.CANCELLED, modification_time=now, completion_time=now)
    if job.state is JobState.TRANSIENT_ERROR:
        if job.transient_since is not None and now - job.transient_since >= job.no_progress_timeout:
            return dataclasses.replace(job, state=JobState.ERROR, retry_at=None, modification_time=now)
        if job.retry_at is not None and now >= job.retry_at:
            return dataclasses.replace(job, state=JobState.QUEUED, retry_at=None, modification_time=now)
    if job.state in ACTIVE_STATES and job.max_download_time and job.active_seconds >= job.max_download_time:
        error = JobError(
            HResult.BG_E_MAXDOWNLOAD_TIMEOUT, ErrorContext.GENERAL_QUEUE_MANAGER, None,
            f"the job spent its maximum download time ({job.max_download_time} s)",
        )  # fmt: skip
        return dataclasses.replace(
            job, state=JobState.ERROR, error=error, error_count=job.error_count + 1, modification_time=now
        )
    return job
