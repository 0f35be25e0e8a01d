"""One function per use case: resolve the job, apply a model transition and save it, in one transaction."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bitscli import config as config_module
from bitscli import connection, model, values
from bitscli.clock import Clock, SystemClock
from bitscli.config import Config
from bitscli.errors import (
    AmbiguousJob,
    BitsError,
    HResult,
    InvalidState,
    InvalidValue,
    JobNotFound,
    LimitExceeded,
    NotSupported,
)
from bitscli.model import AuthScheme, AuthTarget, Credential, Job, JobFile, JobPriority, JobState, JobType
from bitscli.store import Queue, Transaction, open_queue

_DAY = 86_400


@dataclass(frozen=True)
class Context:
    """What every use case needs: the queue, the policy, the clock and who is asking."""

    queue: Queue
    config: Config
    clock: Clock
    owner: str


def open_context(clock: Clock | None = None) -> Context:
    return Context(open_queue(), config_module.load(), clock or SystemClock(), _current_user())


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no LOGNAME/USER (minimal containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def resolve(tx: Transaction, ref: str) -> Job:
    """A job by GUID (braces optional, any case) or display name; a name must match one live job.

    Finished jobs stay reachable by GUID; by name only when no live job has it, so a script that
    reuses a name after `complete` acts on the new job (a BitsAdmin pitfall, bits.md §8).
    """
    guid = values.parse_guid(ref)
    if guid is not None:
        job = tx.job(guid)
        if job is None:
            raise JobNotFound(f"no job has the GUID {guid}", hint="list your jobs with: bitscli list --all")
        return job
    named = tx.jobs_named(ref)
    live = [j for j in named if not j.state.is_final]
    if len(live) > 1:
        listing = ", ".join(f"{j.id} ({j.state.name})" for j in live)
        raise AmbiguousJob(f"{len(live)} jobs are named '{ref}': {listing}", hint="name the job by its GUID")
    if live:
        return live[0]
    if named:
        return named[-1]
    raise JobNotFound(f"no job is named '{ref}'", hint="list your jobs with: bitscli list")


def _change(ctx: Context, ref: str, change: Callable[[Job, float], Job]) -> Job:
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        new = change(job, ctx.clock.now())
        if new is not job:
            tx.update(new, job)
    return new


def queue_version(ctx: Context) -> int:
    """Changes whenever another process commits to the queue: poll this, load jobs only when it moves."""
    return ctx.queue.data_version()


def job_state(ctx: Context, job_id: str) -> JobState | None:
    """A job's state by GUID without loading its files (cheap for jobs of thousands); None if it is gone."""
    with ctx.queue.read() as tx:
        header = tx.job_header(job_id)
    return header.state if header else None


def get_job(ctx: Context, ref: str) -> Job:
    with ctx.queue.read() as tx:
        return resolve(tx, ref)


def list_jobs(ctx: Context, *, include_final: bool = False) -> list[Job]:
    with ctx.queue.read() as tx:
        return tx.jobs(include_final=include_final)


def create_job(ctx: Context, name: str, job_type: JobType, priority: JobPriority = JobPriority.NORMAL) -> Job:
    job = _new_job(ctx, name, job_type, priority)
    _insert(ctx, job)
    return job


def _new_job(ctx: Context, name: str, job_type: JobType, priority: JobPriority) -> Job:
    """A new SUSPENDED job with a fresh GUID, owned by the caller."""
    now = ctx.clock.now()
    return Job(
        id=values.new_guid(),
        display_name=values.check_display_name(name),
        type=job_type,
        owner=ctx.owner,
        creation_time=now,
        modification_time=now,
        priority=priority,
    )


def _insert(ctx: Context, job: Job) -> None:
    """Store a new job, within the MaxJobsPerUser quota (finished jobs past their history are dropped first)."""
    with ctx.queue.write() as tx:
        _check_job_quota(ctx, tx, job.creation_time)
        tx.insert(job)


def _check_job_quota(ctx: Context, tx: Transaction, now: float) -> None:
    tx.delete_final_before(now - ctx.config.history_days * _DAY)
    if tx.count_live_jobs() >= ctx.config.max_jobs_per_user:
        raise LimitExceeded(
            f"you already have {ctx.config.max_jobs_per_user} jobs (MaxJobsPerUser)",
            hint="complete or cancel finished jobs (see bitscli list), or raise max_jobs_per_user in the config",
            code=HResult.BG_E_TOO_MANY_JOBS_PER_USER,
        )


def create_transfer(
    ctx: Context, name: str, job_type: JobType, priority: JobPriority, specs: Sequence[FileSpec], dynamic: bool
) -> Job:
    """Create, fill and resume a job in one transaction: a bad file creates no job (BitsAdmin /TRANSFER)."""
    job = _new_job(ctx, name, job_type, priority)
    now = job.creation_time
    if dynamic:
        job = model.set_dynamic(job, True, now)
    writable_dirs: set[str] = set()
    files = tuple(_checked_file(job, spec, ctx.config, writable_dirs) for spec in specs)
    job = model.resume(model.add_files(job, files, now, ctx.config.max_files_per_job), now)
    _insert(ctx, job)
    return job


@dataclass(frozen=True)
class FileSpec:
    """A file to add: where it came from (for error messages), its names and optional ranges."""

    remote: str
    local: str
    ranges: str | None = None
    origin: str | None = None  # e.g. "line 7", prefixed to errors about this file


def add_files(ctx: Context, ref: str, specs: Sequence[FileSpec]) -> tuple[Job, tuple[JobFile, ...]]:
    """Add all files or none (one transaction), after checking every name against the job's type."""
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        writable_dirs: set[str] = set()
        new_files = tuple(_checked_file(job, spec, ctx.config, writable_dirs) for spec in specs)
        new = model.add_files(job, new_files, ctx.clock.now(), ctx.config.max_files_per_job)
        tx.update(new, job)
    return new, new_files


def _checked_file(job: Job, spec: FileSpec, config: Config, writable_dirs: set[str]) -> JobFile:
    try:
        upload = job.type.is_upload
        remote = values.check_remote_name(spec.remote, upload=upload)
        local = values.check_local_name(spec.local, upload=upload, writable_dirs=writable_dirs)
        ranges: tuple[model.ByteRange, ...] = ()
        if spec.ranges is not None:
            if upload:
                raise InvalidValue("ranges apply to download jobs only")
            if not remote.lower().startswith(("http://", "https://")):
                raise InvalidValue("ranges need an http:// or https:// remote name (as in BITS 3.0 and later)")
            ranges = values.parse_ranges(spec.ranges, config.max_ranges_per_file)
        if upload:
            size = os.path.getsize(local)
            if not size:  # a fragment's Content-Range cannot describe zero bytes
                raise InvalidValue(f"{local} is empty; the BITS upload protocol cannot send an empty file")
            return JobFile(remote, local, bytes_total=size)
        return JobFile(remote, local, ranges=ranges)
    except BitsError as exc:
        if spec.origin:
            exc.message = f"{spec.origin}: {exc.message}"
            exc.args = (exc.message,)
        raise


def fileset_specs(lines: Iterable[str]) -> list[FileSpec]:
    return [FileSpec(remote, local, origin=f"line {n}") for n, remote, local in values.parse_fileset(lines)]


def replace_remote_prefix(ctx: Context, ref: str, old: str, new: str) -> tuple[Job, int]:
    if not old:
        raise InvalidValue("the old prefix cannot be empty")
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        updated, count = model.replace_remote_prefix(job, old, new, ctx.clock.now())
        for before, after in zip(job.files, updated.files, strict=True):
            if before is not after:
                values.check_remote_name(after.remote_name, upload=job.type.is_upload)
        if count:
            tx.update(updated, job)
    return updated, count


def resume(ctx: Context, ref: str) -> Job:
    return _change(ctx, ref, model.resume)


def suspend(ctx: Context, ref: str) -> Job:
    return _change(ctx, ref, model.suspend)


def cancel(ctx: Context, ref: str) -> Job:
    job = _change(ctx, ref, model.cancel)
    _discard_part_files(job)
    return job


def reset(ctx: Context) -> tuple[list[Job], int]:
    """Cancel every live job (BitsAdmin /RESET); returns the cancelled jobs and how many there were."""
    now = ctx.clock.now()
    with ctx.queue.write() as tx:
        jobs = tx.jobs()
        cancelled = [model.cancel(job, now) for job in jobs]
        for new, old in zip(cancelled, jobs, strict=True):
            tx.update(new, old)
    for job in cancelled:
        _discard_part_files(job)
    return cancelled, len(jobs)


def _discard_part_files(job: Job) -> None:
    # After the commit: the cancel stands even if a part file cannot be removed now.
    from bitscli.transfer import files

    files.discard_all(job)


@dataclass(frozen=True)
class Completion:
    job: Job
    kept: int  # files now under their final names
    total: int

    @property
    def partial(self) -> bool:
        """BG_S_PARTIAL_COMPLETE: some files were not finished and were dropped."""
        return self.kept < self.total


def complete(ctx: Context, ref: str) -> Completion:
    """ACKNOWLEDGED: finished files are renamed into place (durably) before the state is committed."""
    from bitscli.transfer import files

    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        done = model.complete(job, ctx.clock.now())
        kept = 0
        directories = set()
        for index, f in enumerate(job.files):
            part = files.part_path(f.local_name, job.id, index)
            if f.completed and (job.type.is_upload or _publish(part, f.local_name, synced=True)):
                kept += 1
                directories.add(os.path.dirname(f.local_name))
            elif not job.type.is_upload:
                files.discard(part)
        if job.type is JobType.UPLOAD_REPLY and _publish(files.reply_part(job), files.reply_name(job)):
            directories.add(os.path.dirname(files.reply_name(job)))
        for directory in directories:  # the renames are durable before ACKNOWLEDGED is committed
            files.fsync_directory(directory)
        tx.update(done, job)
    return Completion(done, kept, len(job.files))


def _publish(part: str, final: str, synced: bool = False) -> bool:
    from bitscli.transfer import files

    try:
        # A re-run after a crash between the renames and the commit finds the file already in place.
        return files.publish(part, final, sync_directory=False, synced=synced) or os.path.exists(final)
    except OSError as exc:
        raise BitsError(
            f"cannot move the finished file into place at {final}: {exc.strerror}; the job was not completed",
            hint="fix the problem (disk space, permissions) and run complete again",
            code=HResult.E_ACCESSDENIED,
        ) from None


# --- properties ---------------------------------------------------------------------------------


def set_properties(ctx: Context, ref: str, **changes: object) -> Job:
    return _change(ctx, ref, lambda job, now: model.modify(job, now, "change", **changes))


def set_dynamic(ctx: Context, ref: str, dynamic: bool) -> Job:
    return _change(ctx, ref, lambda job, now: model.set_dynamic(job, dynamic, now))


def set_reply_file_name(ctx: Context, ref: str, path: str) -> Job:
    checked = values.check_local_name(path, upload=False)
    return _change(ctx, ref, lambda job, now: model.set_reply_file_name(job, checked, now))


def set_validation_state(ctx: Context, ref: str, index: int, valid: bool) -> Job:
    return _change(ctx, ref, lambda job, now: model.set_validation_state(job, index, valid, now))


def set_notify_command(ctx: Context, ref: str, program: str, parameters: str | None) -> Job:
    prog, params = values.parse_notify_command(program, parameters)
    if prog is not None and not ctx.config.allow_notify_command_line:
        raise NotSupported(
            "notification command lines are disabled by policy",
            hint="notify.allow_notify_command_line = false in the config file",
            code=HResult.BG_E_BLOCKED_BY_POLICY,
        )
    return set_properties(ctx, ref, notify_program=prog, notify_parameters=params)


def set_credentials(
    ctx: Context, ref: str, target: AuthTarget, scheme: AuthScheme, username: str | None, password: str | None
) -> Job:
    if scheme is AuthScheme.PASSPORT:
        raise NotSupported("the PASSPORT scheme was retired by Microsoft", hint="use BASIC, DIGEST, NTLM or NEGOTIATE")
    connection.check_credentials(scheme, username, password)
    credential = Credential(target, scheme, username, password)

    def change(job: Job, now: float) -> Job:
        others = tuple(c for c in job.credentials if (c.target, c.scheme) != (target, scheme))
        return model.modify(job, now, "change", credentials=(*others, credential))

    return _change(ctx, ref, change)


def remove_credentials(ctx: Context, ref: str, target: AuthTarget, scheme: AuthScheme) -> tuple[Job, bool]:
    removed = False

    def change(job: Job, now: float) -> Job:
        nonlocal removed
        kept = tuple(c for c in job.credentials if (c.target, c.scheme) != (target, scheme))
        removed = len(kept) != len(job.credentials)
        return model.modify(job, now, "change", credentials=kept)

    return _change(ctx, ref, change), removed


def custom_headers(ctx: Context, ref: str) -> tuple[Job, tuple[str, ...]]:
    job = get_job(ctx, ref)
    if job.custom_headers_write_only:
        raise InvalidState(
            f"the custom headers of job {job.id} are write-only",
            hint="they were made write-only with makecustomheaderswriteonly; that cannot be undone",
            code=HResult.E_ACCESSDENIED,
        )
    return job, job.custom_headers


def make_headers_write_only(ctx: Context, ref: str) -> Job:
    return set_properties(ctx, ref, custom_headers_write_only=True)


def job_with_file(ctx: Context, ref: str, index: int) -> tuple[Job, JobFile]:
    job = get_job(ctx, ref)
    return job, model.file_at(job, index)


def temporary_name(job: Job, index: int) -> str:
    from bitscli.transfer import files

    return files.part_path(model.file_at(job, index).local_name, job.id, index)
