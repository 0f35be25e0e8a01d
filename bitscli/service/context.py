"""What every use case needs: the queue, the policy, the clock and who asks; finding a job; one change saved."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass

from bitscli import config as config_module
from bitscli.clock import Clock, SystemClock
from bitscli.config import Config
from bitscli.errors import AmbiguousJob, JobNotFound
from bitscli.inputs.fields import parse_guid
from bitscli.model import Job
from bitscli.store import Queue, open_queue
from bitscli.transaction import Transaction


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
    guid = parse_guid(ref)
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


def change_job(ctx: Context, ref: str, change: Callable[[Job, float], Job]) -> Job:
    """Resolve the job, apply ``change`` at the clock's now, and save the result, in one transaction."""
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        new = change(job, ctx.clock.now())
        if new is not job:
            tx.update(new, job)
    return new
