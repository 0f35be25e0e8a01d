"""Notification command lines run by a real daemon (in-process, injected clock) against a local server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli import paths
from bitscli.daemon.loop import Daemon
from bitscli.model import JobState

from .daemonproc import FakeClock, run_once, state
from .faultserver import FaultServer, serving


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", os.urandom(50_000))


@pytest.fixture
def handler(tmp_path: Path) -> tuple[Path, Path]:
    """A handler script that records its arguments and environment, and fails while a flag file exists."""
    record, fail = tmp_path / "record.txt", tmp_path / "fail"
    script = tmp_path / "handler.sh"
    script.write_text(
        f'#!/bin/sh\nprintf "%s|%s|%s\\n" "$*" "$BITSCLI_JOB_ID" "$BITSCLI_JOB_STATE" >> "{record}"\n'
        f'test -e "{fail}" && exit 3\nexit 0\n'
    )
    script.chmod(0o755)
    return script, record


def notified(daemon: Daemon) -> None:
    """A tick that starts notifications, then wait for them."""
    daemon.tick()
    for thread in list(daemon.notifying.values()):
        thread.join(60)


def lines(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def new_job(ok, url: str, target: Path, script: Path) -> str:  # type: ignore[no-untyped-def]
    job = ok("create", "--raw", target.name).stdout
    ok("addfile", job, url, str(target))
    ok("setnotifycmdline", job, str(script), f"{script.name} done {{{job}}}")
    return job


def test_the_command_runs_once_when_the_job_is_transferred(new_daemon, ok, server, handler, tmp_path: Path) -> None:
    script, record = handler
    job = new_job(ok, server.url("/f"), tmp_path / "out.bin", script)
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    notified(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert lines(record) == [f"done {{{job}}}|{job}|TRANSFERRED"]
    notified(daemon)
    assert len(lines(record)) == 1  # once per entry into the state


def test_a_failing_command_runs_again_after_the_retry_delay(new_daemon, ok, server, handler, tmp_path: Path) -> None:
    script, record = handler
    (tmp_path / "fail").touch()
    job = new_job(ok, server.url("/f"), tmp_path / "out.bin", script)
    ok("setminretrydelay", job, "60")
    ok("resume", job)
    clock = FakeClock()
    daemon = new_daemon(clock)
    run_once(daemon)
    notified(daemon)
    notified(daemon)
    assert len(lines(record)) == 1  # failed, and waits for the retry delay
    (tmp_path / "fail").unlink()
    clock.advance(61)
    notified(daemon)
    notified(daemon)
    assert len(lines(record)) == 2  # ran again, succeeded, and stays done


def test_errors_notify_per_flags_and_again_after_a_new_error(new_daemon, ok, server, handler, tmp_path: Path) -> None:
    script, record = handler
    job = new_job(ok, server.url("/missing"), tmp_path / "out.bin", script)
    ok("setnotifyflags", job, "1")  # transferred only
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    notified(daemon)
    assert state(job) is JobState.ERROR
    assert lines(record) == []
    ok("setnotifyflags", job, "3")  # set after the job reached ERROR: it still runs (bits.md §6)
    notified(daemon)
    assert lines(record) == [f"done {{{job}}}|{job}|ERROR"]
    ok("resume", job)  # a new attempt and a new ERROR: a new notification
    run_once(daemon)
    notified(daemon)
    notified(daemon)
    assert len(lines(record)) == 2
    ok("setnotifyflags", job, "7")  # DISABLE suppresses everything
    ok("resume", job)
    run_once(daemon)
    notified(daemon)
    assert len(lines(record)) == 2


def test_policy_can_forbid_running_command_lines(ok, server, handler, tmp_path: Path) -> None:
    script, record = handler
    job = new_job(ok, server.url("/f"), tmp_path / "out.bin", script)
    ok("resume", job)
    daemon = Daemon(paths.queue_path(), FakeClock(), allow_notify=False)
    try:
        run_once(daemon)
        notified(daemon)
        assert state(job) is JobState.TRANSFERRED
        assert lines(record) == []
    finally:
        daemon.shutdown()


def test_leaving_transferred_or_error_clears_the_notification_record() -> None:
    import dataclasses

    from bitscli import actions
    from bitscli.daemon import notify
    from bitscli.model import Job, JobFile, JobType

    job = Job(id="{J}", display_name="j", type=JobType.DOWNLOAD, owner="me", creation_time=0, modification_time=0,
              files=(JobFile("http://h/f", "/tmp/f"),), notify_program="/bin/true", state=JobState.ERROR,
              notified_state=int(JobState.ERROR), notify_retry_at=99.0)  # fmt: skip
    assert notify.due(job, 0) is None  # already notified for this ERROR
    resumed = actions.resume(job, 1)
    assert (resumed.notified_state, resumed.notify_retry_at) == (None, None)
    done = dataclasses.replace(job, state=JobState.TRANSFERRED, notified_state=int(JobState.TRANSFERRED))
    more = actions.add_files(done, [JobFile("http://h/g", "/tmp/g")], 2, max_files=10)
    assert (more.state, more.notified_state) == (JobState.QUEUED, None)
    assert notify.due(dataclasses.replace(more, state=JobState.TRANSFERRED), 3) is not None


def test_the_first_token_of_the_parameters_is_argv_0_whatever_it_names(new_daemon, ok, server, tmp_path: Path) -> None:
    """Issue 15: BITS passes the parameters as the whole command line; `/SETNOTIFYCMDLINE job notepad.exe
    C:/temp/flag.ps1`-style lines, whose first token is not the program, were refused with E_INVALIDARG."""
    import json
    import sys

    flag = tmp_path / "flag.py"
    seen = tmp_path / "seen.json"
    flag.write_text(f"import json, sys\nopen({str(seen)!r}, 'w').write(json.dumps(sys.orig_argv))\n")
    job = ok("create", "--raw", "argv0").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "out.bin"))
    ok("setnotifycmdline", job, sys.executable, f"notepad.exe {flag} 'an argument'")
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    notified(daemon)
    assert json.loads(seen.read_text()) == ["notepad.exe", str(flag), "an argument"]
