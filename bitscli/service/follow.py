"""transfer and wait: a job followed until it is TRANSFERRED or fails; transfer also creates, runs and completes it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from bitscli.errors import BitsError, DaemonError, Interrupted, InvalidState, TransferFailed, WaitTimeout
from bitscli.model import Job, JobPriority, JobState, JobType
from bitscli.service import completion, jobs
from bitscli.service.context import Context

# How often the queue's data_version (a cheap read) is checked for the daemon's commits: a fiftieth of the time
# followed so far, between these bounds. A small job ends within milliseconds and is not kept waiting for the
# next check; a long one is checked 50 times a second.
WAKE_SECONDS = (0.002, 0.02)
REFRESH_SECONDS = 0.5  # the progress view is given the job at least this often, for its rate and ETA

Show = Callable[[Job], None]  # the caller's progress view


def start_transfer(
    ctx: Context, name: str, job_type: JobType, priority: JobPriority, specs: Sequence[jobs.FileSpec],
    dynamic: bool, *, start_daemon: bool, **settings: object,
) -> tuple[Job, bool]:  # fmt: skip
    """Create, fill and resume the job (a bad file creates none) and wake the daemon; (job, a daemon runs)."""
    job = jobs.create_transfer(ctx, name, job_type, priority, specs, dynamic, **settings)
    return job, _daemon_runs(start_daemon)


def finish_transfer(ctx: Context, job_id: str, show: Show) -> tuple[completion.Completion, Job]:
    """Follow the job; complete it once TRANSFERRED. A failure or Ctrl-C cancels it (BitsAdmin /TRANSFER)."""
    try:
        final = follow(ctx, job_id, show)
    except KeyboardInterrupt:
        _cancel_quietly(ctx, job_id)
        raise Interrupted(f"interrupted; job {job_id} was cancelled") from None
    if final.state is JobState.TRANSFERRED:
        return completion.complete(ctx, job_id), final
    if final.state is not JobState.CANCELLED:
        _cancel_quietly(ctx, job_id)
    raise TransferFailed(_failure(final), hint="see 'bitscli daemon log' for details")


def wait(
    ctx: Context, refs: Sequence[str], show: Show, timeout: float | None = None, start_daemon: bool = True,
    any_one: bool = False,
) -> list[Job]:  # fmt: skip
    """Follow jobs until every one (or, ``any_one``, the first) is TRANSFERRED or has failed; returns the final
    jobs in the order given (for ``any_one``: the jobs that ended). A failure among them, or the timeout, raises.

    A job that needs the daemon gets one, as `resume` does; with ``start_daemon`` False and none running, waiting
    would never end (after a reboot with no service, say), so that is an error instead."""
    found = [jobs.get_job(ctx, ref) for ref in refs]
    for job in found:
        if job.state is JobState.SUSPENDED:
            raise InvalidState(f"job {job.id} is SUSPENDED and will not finish", hint=f"bitscli resume {job.id}")
    waiting = [job for job in found if not _ended(job.state)]
    if waiting and not _daemon_runs(start_daemon):
        raise DaemonError(
            f"job {waiting[0].id} is {waiting[0].state.name} and needs the daemon, which is not running",
            hint="start it: bitscli daemon start (or drop --no-daemon-start)",
        )
    ids = list(dict.fromkeys(job.id for job in found))  # a job named twice is waited for once
    finals = follow_many(ctx, ids, show, timeout, any_one)
    failed = [job for job in finals if job.state not in (JobState.TRANSFERRED, JobState.ACKNOWLEDGED)]
    if failed:
        raise TransferFailed("; ".join(_failure(job) for job in failed))
    return finals


def follow(ctx: Context, job_id: str, show: Show, timeout: float | None = None) -> Job:
    """Show progress until the job is TRANSFERRED, in ERROR or finished; TRANSIENT_ERROR keeps waiting."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    seen, ended, refresh_at = None, False, 0.0
    while True:
        version = jobs.queue_version(ctx)
        if version != seen:  # the daemon commits often: read only the state, not every file of the job
            seen, ended = version, _ended(jobs.job_state(ctx, job_id))
        if ended or time.monotonic() >= refresh_at:
            refresh_at = time.monotonic() + REFRESH_SECONDS
            job = jobs.get_job(ctx, job_id)
            show(job)
            if _ended(job.state):
                return job
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"job {job_id} is still {job.state.name} after {timeout:g} s")
        time.sleep(min(max((time.monotonic() - started) / 50, WAKE_SECONDS[0]), WAKE_SECONDS[1]))


def follow_many(ctx: Context, ids: list[str], show: Show, timeout: float | None, any_one: bool) -> list[Job]:
    """``follow`` for several jobs: until all have ended, or the first one has (``any_one``)."""
    if len(ids) == 1:
        return [follow(ctx, ids[0], show, timeout)]
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    seen, refresh_at = None, 0.0
    states: dict[str, JobState | None] = {}
    while True:
        version = jobs.queue_version(ctx)
        changed = version != seen
        if changed:
            seen = version
            states = {job_id: jobs.job_state(ctx, job_id) for job_id in ids}
        ended = [job_id for job_id in ids if _ended(states.get(job_id))]
        done = bool(ended) if any_one else len(ended) == len(ids)
        if done or time.monotonic() >= refresh_at:
            refresh_at = time.monotonic() + REFRESH_SECONDS
            current = [jobs.get_job(ctx, job_id) for job_id in ids]
            for job in current:
                show(job)
            if done:
                return [job for job in current if _ended(job.state)] if any_one else current
        if deadline is not None and time.monotonic() >= deadline:
            still = [job_id for job_id in ids if job_id not in ended]
            raise WaitTimeout(f"{len(still)} of {len(ids)} jobs still unfinished after {timeout:g} s: "
                              + ", ".join(still))  # fmt: skip
        time.sleep(min(max((time.monotonic() - started) / 50, WAKE_SECONDS[0]), WAKE_SECONDS[1]))


def _ended(state: JobState | None) -> bool:
    """Where `transfer` and `wait` stop following; None (the job is gone) is settled by loading it."""
    return state is None or state in (JobState.TRANSFERRED, JobState.ERROR) or state.is_final


def _failure(job: Job) -> str:
    detail = f": {job.error.message}" if job.error else ""
    return f"job {job.id} ended in {job.state.name}{detail}"


def _cancel_quietly(ctx: Context, job_id: str) -> None:
    with contextlib.suppress(BitsError):  # already finished or cancelled by someone else
        jobs.cancel(ctx, job_id)


def _daemon_runs(start: bool) -> bool:
    """Nudge the daemon so it starts the job now; start one if allowed. False: no daemon runs for this queue."""
    from bitscli.daemon import wakeup

    if wakeup.nudge():  # a daemon that takes the nudge runs, and starts the job now, not at its next poll
        return True
    from bitscli.daemon import process, spawn

    if start:
        spawn.ensure_running()
    return process.running() is not None
