"""The pure state transitions of bits.md §2.2, rule by rule."""

from __future__ import annotations

import dataclasses

import pytest

from bitscli import actions, model
from bitscli.errors import HResult, InvalidState, InvalidValue, LimitExceeded
from bitscli.model import ByteRange, Job, JobFile, JobState, JobType

NOW = 1_000_000.0
ALL_STATES = list(JobState)
LIVE_STATES = [s for s in JobState if not s.is_final]
FINAL_STATES = [JobState.ACKNOWLEDGED, JobState.CANCELLED]


def make_job(state: JobState = JobState.SUSPENDED, files: int = 1, job_type: JobType = JobType.DOWNLOAD) -> Job:
    return Job(
        id="{00000000-0000-0000-0000-000000000001}",
        display_name="j",
        type=job_type,
        owner="me",
        creation_time=0.0,
        modification_time=0.0,
        state=state,
        files=tuple(JobFile(f"http://127.0.0.1/{i}", f"/tmp/f{i}") for i in range(files)),
    )


def test_new_job_defaults_follow_bits() -> None:
    job = make_job()
    assert job.state is JobState.SUSPENDED
    assert job.priority is model.JobPriority.NORMAL
    assert job.notify_flags == 3
    assert job.min_retry_delay == 600
    assert job.no_progress_timeout == 1_209_600
    assert job.max_download_time == 7_776_000
    assert job.http_method == "GET"


@pytest.mark.parametrize("state", [JobState.SUSPENDED, JobState.ERROR, JobState.TRANSIENT_ERROR])
def test_resume_queues_a_stopped_job(state: JobState) -> None:
    job = dataclasses.replace(make_job(state), error=model.JobError(1, model.ErrorContext.REMOTE_FILE, 0, "x"))
    resumed = actions.resume(job, NOW)
    assert resumed.state is JobState.QUEUED
    assert resumed.error is None
    assert resumed.started
    assert resumed.modification_time == NOW


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING, JobState.TRANSFERRED])
def test_resume_leaves_an_active_or_transferred_job_alone(state: JobState) -> None:
    job = make_job(state)
    assert actions.resume(job, NOW) is job


def test_resume_of_an_empty_job_is_bg_e_empty_and_changes_nothing() -> None:
    job = make_job(files=0)
    with pytest.raises(InvalidState) as caught:
        actions.resume(job, NOW)
    assert caught.value.code == HResult.BG_E_EMPTY


@pytest.mark.parametrize("state", LIVE_STATES)
def test_suspend_from_any_live_state(state: JobState) -> None:
    assert actions.suspend(make_job(state), NOW).state is JobState.SUSPENDED


@pytest.mark.parametrize("state", LIVE_STATES)
def test_cancel_from_any_live_state(state: JobState) -> None:
    cancelled = actions.cancel(make_job(state), NOW)
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.completion_time == NOW


@pytest.mark.parametrize("state", LIVE_STATES)
def test_complete_a_download_from_any_live_state(state: JobState) -> None:
    done = actions.complete(make_job(state), NOW)
    assert done.state is JobState.ACKNOWLEDGED
    assert done.completion_time == NOW


@pytest.mark.parametrize("state", [s for s in LIVE_STATES if s is not JobState.TRANSFERRED])
@pytest.mark.parametrize("job_type", [JobType.UPLOAD, JobType.UPLOAD_REPLY])
def test_uploads_complete_only_once_transferred(state: JobState, job_type: JobType) -> None:
    with pytest.raises(InvalidState):
        actions.complete(make_job(state, job_type=job_type), NOW)
    assert actions.complete(make_job(JobState.TRANSFERRED, job_type=job_type), NOW).state is JobState.ACKNOWLEDGED


@pytest.mark.parametrize("state", FINAL_STATES)
@pytest.mark.parametrize(
    "operation",
    [
        lambda j: actions.resume(j, NOW),
        lambda j: actions.suspend(j, NOW),
        lambda j: actions.cancel(j, NOW),
        lambda j: actions.complete(j, NOW),
        lambda j: actions.add_files(j, [JobFile("http://127.0.0.1/x", "/tmp/x")], NOW, 200),
        lambda j: actions.modify(j, NOW, "change", priority=model.JobPriority.HIGH),
        lambda j: actions.replace_remote_prefix(j, "http://", "https://", NOW),
        lambda j: actions.set_dynamic(j, False, NOW),
    ],
)
def test_final_states_never_change(state: JobState, operation) -> None:
    with pytest.raises(InvalidState) as caught:
        operation(make_job(state))
    assert caught.value.code == HResult.BG_E_INVALID_STATE


def test_a_transferred_job_that_takes_a_file_has_work_again() -> None:
    job = actions.add_files(make_job(JobState.TRANSFERRED), [JobFile("http://127.0.0.1/n", "/tmp/n")], NOW, 200)
    assert job.state is JobState.QUEUED
    assert job.files_total == 2


def test_upload_jobs_take_exactly_one_file() -> None:
    job = make_job(files=0, job_type=JobType.UPLOAD)
    one = actions.add_files(job, [JobFile("http://127.0.0.1/u", "/tmp/u")], NOW, 200)
    with pytest.raises(LimitExceeded) as caught:
        actions.add_files(one, [JobFile("http://127.0.0.1/v", "/tmp/v")], NOW, 200)
    assert caught.value.code == HResult.BG_E_TOO_MANY_FILES


def test_max_files_per_job() -> None:
    with pytest.raises(LimitExceeded) as caught:
        actions.add_files(make_job(files=2), [JobFile("http://127.0.0.1/z", "/tmp/z")], NOW, 2)
    assert caught.value.code == HResult.BG_E_TOO_MANY_FILES_IN_JOB


def test_two_files_of_one_job_cannot_share_a_local_name() -> None:
    with pytest.raises(InvalidValue):
        actions.add_files(make_job(files=1), [JobFile("http://127.0.0.1/other", "/tmp/f0")], NOW, 200)


def test_dynamic_content_rules() -> None:
    assert actions.set_dynamic(make_job(), True, NOW).dynamic
    with pytest.raises(InvalidValue):
        actions.set_dynamic(make_job(job_type=JobType.UPLOAD), True, NOW)
    with pytest.raises(InvalidState):
        actions.set_dynamic(actions.resume(make_job(), NOW), True, NOW)
    ranged = dataclasses.replace(
        make_job(), files=(JobFile("http://127.0.0.1/r", "/tmp/r", ranges=(ByteRange(0, 5),)),)
    )
    with pytest.raises(InvalidValue):
        actions.set_dynamic(ranged, True, NOW)


def test_validation_false_puts_the_job_in_error_and_refetches_the_file() -> None:
    done = dataclasses.replace(
        make_job(JobState.TRANSFERRED),
        files=(JobFile("http://127.0.0.1/v", "/tmp/v", 10, 10, completed=True),),
    )
    failed = actions.set_validation_state(done, 0, False, NOW)
    assert failed.state is JobState.ERROR
    assert failed.error is not None
    assert failed.error.code == HResult.BG_E_VALIDATION_FAILED
    assert failed.error_count == 1
    assert failed.files[0].bytes_transferred == 0
    assert not failed.files[0].completed
    assert actions.set_validation_state(done, 0, True, NOW).files[0].validation_state


def test_validation_needs_a_finished_file() -> None:
    with pytest.raises(InvalidState):
        actions.set_validation_state(make_job(), 0, True, NOW)
    with pytest.raises(InvalidValue):
        actions.set_validation_state(make_job(), 5, True, NOW)


def test_replace_remote_prefix_counts_changes() -> None:
    job, count = actions.replace_remote_prefix(make_job(files=3), "http://127.0.0.1/1", "https://127.0.0.1/9", NOW)
    assert count == 1
    assert [f.remote_name for f in job.files] == [
        "http://127.0.0.1/0",
        "https://127.0.0.1/9",
        "http://127.0.0.1/2",
    ]


def test_bytes_total_is_unknown_while_any_size_is() -> None:
    job = dataclasses.replace(make_job(), files=(JobFile("a", "/a", 5, 1), JobFile("b", "/b")))
    assert job.bytes_total == model.UNKNOWN
    job = dataclasses.replace(job, files=(JobFile("a", "/a", 5, 1), JobFile("b", "/b", 7, 7, completed=True)))
    assert (job.bytes_total, job.bytes_transferred, job.files_transferred) == (12, 8, 1)
