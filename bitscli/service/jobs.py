"""Jobs as a whole: find and list them, create and fill them, resume, suspend and cancel them."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bitscli import actions, model
from bitscli.config import Config
from bitscli.errors import BitsError, HResult, InvalidValue, LimitExceeded
from bitscli.inputs import fields, names
from bitscli.model import Job, JobFile, JobPriority, JobState, JobType
from bitscli.partfiles import discard_all
from bitscli.service.context import Context, change_job, resolve
from bitscli.transaction import Transaction

_DAY = 86_400


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
        id=fields.new_guid(),
        display_name=fields.check_display_name(name),
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
    ctx: Context, name: str, job_type: JobType, priority: JobPriority, specs: Sequence[FileSpec], dynamic: bool,
    **settings: object,
) -> Job:  # fmt: skip
    """Create, fill and resume a job in one transaction: a bad file creates no job (BitsAdmin /TRANSFER).

    ``settings`` are job properties (acl_flags, max_bandwidth) in force from the first byte.
    """
    job = _new_job(ctx, name, job_type, priority)
    now = job.creation_time
    if dynamic:
        job = actions.set_dynamic(job, True, now)
    if settings:
        job = actions.modify(job, now, "create", **settings)
    writable_dirs: set[str] = set()
    files = tuple(_checked_file(job, spec, ctx.config, writable_dirs) for spec in specs)
    job = actions.add_files(job, files, now, ctx.config.max_files_per_job)
    job = actions.resume(job, now, actions.start_delay(job, ctx.config.bandwidth.start_jitter, random.random()))
    _insert(ctx, job)
    return job


@dataclass(frozen=True)
class FileSpec:
    """A file to add: where it came from (for error messages), its names and optional ranges."""

    remote: str
    local: str
    ranges: str | None = None
    origin: str | None = None  # e.g. "line 7", prefixed to errors about this file
    expected_hash: str | None = None  # "sha256:HEX", "sha512:HEX", ... (addfile --sha256, --hash)
    if_changed: bool = False  # fetch only if the server's copy differs from the local file (addfile --if-changed)


def add_files(ctx: Context, ref: str, specs: Sequence[FileSpec]) -> tuple[Job, tuple[JobFile, ...]]:
    """Add all files or none (one transaction), after checking every name against the job's type."""
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        writable_dirs: set[str] = set()
        new_files = tuple(_checked_file(job, spec, ctx.config, writable_dirs) for spec in specs)
        new = actions.add_files(job, new_files, ctx.clock.now(), ctx.config.max_files_per_job)
        tx.update(new, job)
    return new, new_files


def _checked_file(job: Job, spec: FileSpec, config: Config, writable_dirs: set[str]) -> JobFile:
    try:
        upload = job.type.is_upload
        remote = names.check_remote_name(spec.remote, upload=upload)
        local = names.check_local_name(spec.local, upload=upload, writable_dirs=writable_dirs)
        ranges: tuple[model.ByteRange, ...] = ()
        if spec.ranges is not None:
            if upload:
                raise InvalidValue("ranges apply to download jobs only")
            if not remote.lower().startswith(("http://", "https://")):
                raise InvalidValue("ranges need an http:// or https:// remote name (as in BITS 3.0 and later)")
            ranges = names.parse_ranges(spec.ranges, config.max_ranges_per_file)
        if spec.if_changed and (upload or ranges):
            raise InvalidValue("--if-changed applies to whole downloaded files: not an upload, nor ranges")
        expected_hash = None
        if spec.expected_hash is not None:
            if upload or ranges:
                raise InvalidValue("a hash checks a whole downloaded file: not an upload, nor a file of ranges")
            expected_hash = fields.parse_expected_hash(spec.expected_hash)
        if upload:
            size = os.path.getsize(local)
            if not size:  # a fragment's Content-Range cannot describe zero bytes
                raise InvalidValue(f"{local} is empty; the BITS upload protocol cannot send an empty file")
            return JobFile(remote, local, bytes_total=size)
        return JobFile(remote, local, ranges=ranges, expected_hash=expected_hash, if_changed=spec.if_changed)
    except BitsError as exc:
        if spec.origin:
            exc.message = f"{spec.origin}: {exc.message}"
            exc.args = (exc.message,)
        raise


def fileset_specs(lines: Iterable[str]) -> list[FileSpec]:
    return [FileSpec(remote, local, origin=f"line {n}", expected_hash=digest)
            for n, remote, local, digest in names.parse_fileset(lines)]  # fmt: skip


def replace_remote_prefix(ctx: Context, ref: str, old: str, new: str) -> tuple[Job, int]:
    if not old:
        raise InvalidValue("the old prefix cannot be empty")
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        updated, count = actions.replace_remote_prefix(job, old, new, ctx.clock.now())
        for before, after in zip(job.files, updated.files, strict=True):
            if before is not after:
                names.check_remote_name(after.remote_name, upload=job.type.is_upload)
        if count:
            tx.update(updated, job)
    return updated, count


def resume(ctx: Context, ref: str) -> Job:
    """QUEUED, after the job's start jitter: a random delay, so a fleet given one job spreads its requests."""
    draw = random.random()
    return change_job(ctx, ref, lambda job, now: actions.resume(
        job, now, actions.start_delay(job, ctx.config.bandwidth.start_jitter, draw),
    ))  # fmt: skip


def suspend(ctx: Context, ref: str) -> Job:
    return change_job(ctx, ref, actions.suspend)


def cancel(ctx: Context, ref: str) -> Job:
    job = change_job(ctx, ref, actions.cancel)
    _discard_part_files(job)
    return job


def reset(ctx: Context) -> tuple[list[Job], int]:
    """Cancel every live job (BitsAdmin /RESET); returns the cancelled jobs and how many there were."""
    now = ctx.clock.now()
    with ctx.queue.write() as tx:
        jobs = tx.jobs()
        cancelled = [actions.cancel(job, now) for job in jobs]
        for new, old in zip(cancelled, jobs, strict=True):
            tx.update(new, old)
    for job in cancelled:
        _discard_part_files(job)
    return cancelled, len(jobs)


def _discard_part_files(job: Job) -> None:
    discard_all(job)  # after the commit: the cancel stands even if a part file cannot be removed now
