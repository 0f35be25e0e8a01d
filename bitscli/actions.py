"""What commands do to a job, as pure transitions under BITS's rules (bits.md §2.2); each takes `now`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bitscli.errors import HResult, InvalidState, InvalidValue, LimitExceeded
from bitscli.model import ErrorContext, Job, JobError, JobFile, JobState, JobType


def _require_not_final(job: Job, action: str) -> None:
    # "Final states never change ... any transition or setter on them gives BG_E_INVALID_STATE."
    if job.state.is_final:
        raise InvalidState(
            f"cannot {action} job {job.id} ('{job.display_name}'): it is {job.state.name}",
            hint="finished jobs never change; create a new job instead",
        )


def modify(job: Job, now: float, action: str, **changes: object) -> Job:
    """Apply property changes to a job that is not final, stamping its modification time."""
    _require_not_final(job, action)
    return dataclasses.replace(job, modification_time=now, **changes)  # type: ignore[arg-type]


def resume(job: Job, now: float, delay: float = 0.0) -> Job:
    """QUEUED; ``delay``: the start jitter drawn for this resume (``start_delay``), the job waits that long."""
    _require_not_final(job, "resume")
    if not job.files:
        raise InvalidState(
            f"job {job.id} ('{job.display_name}') has no files to transfer",
            hint=f"add files first: bitscli addfile {job.id} URL PATH",
            code=HResult.BG_E_EMPTY,
        )
    if job.state in (JobState.SUSPENDED, JobState.ERROR, JobState.TRANSIENT_ERROR):
        # Resume clears the error and restarts the retry and download-time clocks (bits.md §2.4); the
        # next TRANSFERRED or ERROR runs the notification command line again.
        return dataclasses.replace(
            job, state=JobState.QUEUED, error=None, started=True, modification_time=now, retry_at=None,
            transient_since=None, active_seconds=0.0, notified_state=None, notify_retry_at=None,
            not_before=now + delay if delay > 0 else None,
        )  # fmt: skip
    return job  # an action state, or TRANSFERRED: nothing to do


def suspend(job: Job, now: float) -> Job:
    _require_not_final(job, "suspend")
    if job.state is JobState.SUSPENDED:
        return job
    return dataclasses.replace(job, state=JobState.SUSPENDED, modification_time=now)


def cancel(job: Job, now: float) -> Job:
    _require_not_final(job, "cancel")
    return dataclasses.replace(job, state=JobState.CANCELLED, modification_time=now, completion_time=now)


def complete(job: Job, now: float) -> Job:
    """ACKNOWLEDGED; the caller publishes finished files and reports a partial result."""
    _require_not_final(job, "complete")
    if job.type.is_upload and job.state is not JobState.TRANSFERRED:
        raise InvalidState(
            f"upload job {job.id} can be completed only once it is TRANSFERRED (it is {job.state.name})",
            hint="wait for the upload to finish, or cancel the job",
        )
    return dataclasses.replace(job, state=JobState.ACKNOWLEDGED, modification_time=now, completion_time=now)


def add_files(job: Job, new_files: Iterable[JobFile], now: float, max_files: int) -> Job:
    _require_not_final(job, "add files to")
    new = tuple(new_files)
    files = job.files + new
    if job.type.is_upload and len(files) > 1:
        raise LimitExceeded(
            f"upload job {job.id} already has its one file",
            hint="an upload job carries exactly one file; create another job for the next one",
            code=HResult.BG_E_TOO_MANY_FILES,
        )
    if len(files) > max_files:
        raise LimitExceeded(
            f"job {job.id} would have {len(files)} files; the limit is {max_files} (MaxFilesPerJob)",
            hint="split the files over several jobs, or raise max_files_per_job in the config file",
            code=HResult.BG_E_TOO_MANY_FILES_IN_JOB,
        )
    if job.dynamic and any(f.ranges for f in new):
        raise InvalidValue(f"job {job.id} has dynamic content, which cannot be combined with ranges")
    seen = {f.local_name for f in job.files}
    for f in new:
        if f.local_name in seen:
            raise InvalidValue(
                f"job {job.id} already writes to {f.local_name}",
                hint="each file of a job needs its own local name",
            )
        seen.add(f.local_name)
    # A TRANSFERRED job that takes a new file has work again (bits.md §2.2: it "can take more files").
    if job.state is JobState.TRANSFERRED:
        job = dataclasses.replace(job, state=JobState.QUEUED, notified_state=None, notify_retry_at=None)
    return dataclasses.replace(job, files=files, modification_time=now)


def replace_remote_prefix(job: Job, old: str, new: str, now: float) -> tuple[Job, int]:
    _require_not_final(job, "change the files of")
    files = tuple(
        dataclasses.replace(f, remote_name=new + f.remote_name[len(old) :]) if f.remote_name.startswith(old) else f
        for f in job.files
    )
    changed = sum(1 for a, b in zip(job.files, files, strict=True) if a is not b)
    return dataclasses.replace(job, files=files, modification_time=now), changed


def set_dynamic(job: Job, dynamic: bool, now: float) -> Job:
    # bits.md §3: dynamic content is for download jobs only, not with ranges, only before the first Resume.
    if dynamic:
        if job.type is not JobType.DOWNLOAD:
            raise InvalidValue("dynamic content applies to download jobs only")
        if any(f.ranges for f in job.files):
            raise InvalidValue("dynamic content cannot be combined with files that have ranges")
        if job.started:
            raise InvalidState(
                f"job {job.id} has already been resumed; dynamic content must be set before that",
                hint="create a new job and set dynamic content before resuming it",
            )
    return modify(job, now, "change", dynamic=dynamic)


def set_reply_file_name(job: Job, path: str, now: float) -> Job:
    if job.type is not JobType.UPLOAD_REPLY:
        raise InvalidValue(
            f"job {job.id} is a {job.type.label} job; a reply file belongs to upload-reply jobs", code=HResult.E_NOTIMPL
        )
    return modify(job, now, "change", reply_file_name=path)


def set_validation_state(job: Job, index: int, valid: bool, now: float) -> Job:
    """The application's verdict on a downloaded file (bits.md §2.7); FALSE puts the job in ERROR."""
    _require_not_final(job, "validate")
    target = file_at(job, index)
    if not target.completed:
        raise InvalidState(
            f"file {index} of job {job.id} has not finished downloading; it cannot be validated yet",
            hint="validate files once the job is TRANSFERRED",
        )
    if valid:
        return _replace_file(job, index, dataclasses.replace(target, validation_state=True), now)
    # Origin content judged invalid: the job goes to ERROR and the file is fetched again on resume.
    redo = dataclasses.replace(target, bytes_transferred=0, completed=False, validation_state=False)
    job = _replace_file(job, index, redo, now)
    error = JobError(HResult.BG_E_VALIDATION_FAILED, ErrorContext.REMOTE_FILE, index, "content failed validation")
    return dataclasses.replace(job, state=JobState.ERROR, error=error, error_count=job.error_count + 1)


def file_at(job: Job, index: int) -> JobFile:
    if not 0 <= index < len(job.files):
        raise InvalidValue(
            f"job {job.id} has no file {index}",
            hint=f"file indexes start at 0; this job has {len(job.files)} file(s)",
        )
    return job.files[index]


def _replace_file(job: Job, index: int, new: JobFile, now: float) -> Job:
    files = (*job.files[:index], new, *job.files[index + 1 :])
    return dataclasses.replace(job, files=files, modification_time=now)


def start_delay(job: Job, default_jitter: int, draw: float) -> float:
    """The random start delay of a resume: ``draw`` (uniform in [0, 1)) times the job's start jitter, or the
    config's when the job has none of its own."""
    jitter = job.start_jitter if job.start_jitter is not None else default_jitter
    return draw * jitter
