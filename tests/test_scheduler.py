"""Scheduling as BITS does it, with an injected clock: no sleeping."""

from __future__ import annotations

import dataclasses

from bitscli.daemon.scheduler import choose
from bitscli.model import Job, JobPriority, JobState, JobType

SLICE = 300.0


def job(n: int, priority: JobPriority = JobPriority.NORMAL, state: JobState = JobState.QUEUED) -> Job:
    return Job(f"{{{n:08d}-0000-0000-0000-000000000000}}", f"j{n}", JobType.DOWNLOAD, "me", float(n), 0.0,
               state=state, priority=priority)  # fmt: skip


def test_all_foreground_jobs_run_together_plus_one_background() -> None:
    jobs = [job(1, JobPriority.FOREGROUND), job(2, JobPriority.FOREGROUND), job(3), job(4)]
    plan = choose(jobs, None, 0.0, SLICE)
    assert plan.foreground == {jobs[0].id, jobs[1].id}
    assert plan.background is not None
    assert plan.background.job_id == jobs[2].id
    assert plan.job_ids == {jobs[0].id, jobs[1].id, jobs[2].id}


def test_only_runnable_states_are_scheduled() -> None:
    jobs = [job(1, state=JobState.SUSPENDED), job(2, state=JobState.TRANSIENT_ERROR), job(3, state=JobState.ERROR),
            job(4, state=JobState.TRANSFERRED), job(5, state=JobState.TRANSFERRING)]  # fmt: skip
    assert choose(jobs, None, 0.0, SLICE).job_ids == {jobs[4].id}


def test_higher_priority_preempts_and_lower_levels_wait() -> None:
    low, normal = job(1, JobPriority.LOW), job(2, JobPriority.NORMAL)
    plan = choose([low], None, 0.0, SLICE)
    assert plan.background.job_id == low.id
    plan = choose([low, normal], plan.background, 10.0, SLICE)  # NORMAL arrives mid-slice: pre-emption
    assert plan.background.job_id == normal.id
    high = job(3, JobPriority.HIGH)
    plan = choose([low, normal, high], plan.background, 20.0, SLICE)
    assert plan.background.job_id == high.id
    plan = choose([low, normal], plan.background, 30.0, SLICE)  # HIGH finished: back down a level
    assert plan.background.job_id == normal.id


def test_equal_priorities_take_turns_in_slices() -> None:
    jobs = [job(1), job(2), job(3)]
    order = []
    current = None
    now = 0.0
    for _ in range(7):
        plan = choose(jobs, current, now, SLICE)
        current = plan.background
        order.append(current.job_id)
        now += 100.0  # three checks per slice
        plan = choose(jobs, current, now, SLICE)
        assert plan.background == current  # mid-slice: no change
        now += SLICE
    assert order[:4] == [jobs[0].id, jobs[1].id, jobs[2].id, jobs[0].id]


def test_a_job_alone_at_its_level_keeps_running() -> None:
    only = job(1)
    first = choose([only], None, 0.0, SLICE).background
    later = choose([only], first, SLICE * 5, SLICE).background
    assert later.job_id == only.id
    assert later.started == SLICE * 5


def test_the_turn_passes_on_when_the_holder_finishes() -> None:
    a, b, c = job(1), job(2), job(3)
    plan = choose([a, b, c], None, 0.0, SLICE)
    plan = choose([a, b, c], plan.background, SLICE, SLICE)  # a's slice ends: b
    assert plan.background.job_id == b.id
    plan = choose([a, c], plan.background, SLICE + 10, SLICE)  # b finishes early: c, not a again
    assert plan.background.job_id == c.id


def test_priority_change_takes_effect_at_the_next_plan() -> None:
    a, b = job(1), job(2)
    plan = choose([a, b], None, 0.0, SLICE)
    assert plan.background.job_id == a.id
    b = dataclasses.replace(b, priority=JobPriority.HIGH)
    assert choose([a, b], plan.background, 1.0, SLICE).background.job_id == b.id
    b = dataclasses.replace(b, priority=JobPriority.FOREGROUND)
    plan = choose([a, b], plan.background, 2.0, SLICE)
    assert plan.foreground == {b.id}
    assert plan.background.job_id == a.id
