"""Which jobs run now (bits.md §2.3): every FOREGROUND job, plus one background job in round-robin slices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bitscli.model import ACTIVE_STATES, Job, JobPriority


@dataclass(frozen=True)
class Slice:
    """The background job that holds the turn, and since when (monotonic seconds)."""

    job_id: str
    priority: JobPriority
    order: tuple[float, str]  # the job's place in round-robin order: (creation time, GUID)
    started: float


@dataclass(frozen=True)
class Plan:
    foreground: frozenset[str]
    background: Slice | None

    @property
    def job_ids(self) -> frozenset[str]:
        return self.foreground | ({self.background.job_id} if self.background else frozenset())


def _order(job: Job) -> tuple[float, str]:
    return (job.creation_time, job.id)


def choose(jobs: Sequence[Job], current: Slice | None, now: float, slice_seconds: float) -> Plan:
    """The plan for ``now`` given the runnable jobs and the background slice in force.

    - All FOREGROUND jobs run at once.
    - One background job runs: the highest priority waiting pre-empts any lower one, and a lower
      level gets no time while a higher one has work.
    - Jobs of equal priority take turns: when a slice ends the next job in creation order runs, so big
      jobs do not starve small ones. A job alone at its level keeps running.
    """
    runnable = [j for j in jobs if j.state in ACTIVE_STATES]
    foreground = frozenset(j.id for j in runnable if j.priority is JobPriority.FOREGROUND)
    background = [j for j in runnable if j.priority is not JobPriority.FOREGROUND]
    if not background:
        return Plan(foreground, None)
    top = min(j.priority for j in background)
    level = sorted((j for j in background if j.priority == top), key=_order)
    holder = next((j for j in level if current and j.id == current.job_id), None)
    if holder is not None and current is not None:
        if now - current.started < slice_seconds:
            return Plan(foreground, current)
        if len(level) == 1:
            return Plan(foreground, Slice(holder.id, top, current.order, now))  # alone: a fresh slice
    # The turn passes to the job after the last holder of this level (the first, after a pre-emption).
    after = current.order if current is not None and current.priority == top else None
    following = [j for j in level if after is None or _order(j) > after]
    chosen = following[0] if following else level[0]
    return Plan(foreground, Slice(chosen.id, top, _order(chosen), now))
