"""Bandwidth policy from the config file: windows across their edges, the timetable, waits, and live reloads."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bitscli import policy
from bitscli.model import Job, JobPriority, JobState, JobType
from bitscli.policy import Policy, PolicyError, from_table

from .daemonproc import DaemonProcess, FakeClock, run_once, state, wait_for
from .faultserver import FaultServer, serving

MON = datetime(2026, 11, 30)  # a Monday


def at(day: int, hour: int, minute: int = 0) -> float:
    """Local time: ``day`` days after Monday 30 November 2026."""
    return (MON + timedelta(days=day)).replace(hour=hour, minute=minute).timestamp()


def job(priority: JobPriority = JobPriority.LOW, cap: int = 0) -> Job:
    return Job(id="{J}", display_name="j", type=JobType.DOWNLOAD, owner="me", creation_time=0, modification_time=0,
               priority=priority, max_bandwidth=cap)  # fmt: skip


def rate(table: dict[str, object], when: float, priority: JobPriority = JobPriority.LOW, cap: int = 0) -> int | None:
    return policy.allowed(from_table(table), job(priority, cap), when).rate


NIGHT = {"background": {"days": "Fri", "start": "22:00", "end": "06:00", "inside": "0", "outside": "none"}}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(4, 21, 59), None),  # Friday evening, before
        (at(4, 22, 0), 0),  # opens
        (at(4, 23, 59), 0),
        (at(5, 0, 0), 0),  # past midnight: Saturday morning belongs to Friday's night
        (at(5, 5, 59), 0),
        (at(5, 6, 0), None),  # closes
        (at(5, 22, 0), None),  # Saturday night is not listed
        (at(0, 3, 0), None),  # Monday morning: Sunday is not listed either
    ],
)
def test_a_window_that_spans_midnight(when: float, expected: int | None) -> None:
    assert rate(NIGHT, when) == expected


def test_a_window_over_the_week_end() -> None:
    table = {"background": {"days": "Sat-Mon", "start": "00:00", "end": "23:59", "inside": "1M", "outside": "none"}}
    assert rate(table, at(6, 12)) == 1 << 20  # Sunday
    assert rate(table, at(0, 12)) == 1 << 20  # Monday: the range wraps round the week's end
    assert rate(table, at(1, 12)) is None  # Tuesday


WORK = {
    "work": {"days": "Mon-Fri", "start": "08:00", "end": "17:00", "high": "10MB", "normal": "2MB", "low": "128KiB"},
    "non_work": {"low": "512KiB"},
    "maintenance": {"days": "Sat", "start": "01:00", "end": "05:00", "low": "none"},
}


@pytest.mark.parametrize(
    ("when", "priority", "expected"),
    [
        (at(0, 8), JobPriority.LOW, 128 * 1024),
        (at(0, 8), JobPriority.NORMAL, 2_000_000),
        (at(0, 16, 59), JobPriority.HIGH, 10_000_000),
        (at(0, 17), JobPriority.LOW, 512 * 1024),  # non-work hours
        (at(0, 17), JobPriority.NORMAL, None),  # no non-work cap for NORMAL
        (at(5, 2), JobPriority.LOW, None),  # the maintenance window overrides
        (at(5, 6), JobPriority.LOW, 512 * 1024),
        (at(0, 8), JobPriority.FOREGROUND, None),  # never throttled by policy
    ],
)
def test_work_and_non_work_hours_and_the_maintenance_window(
    when: float, priority: JobPriority, expected: int | None
) -> None:
    assert rate(WORK, when, priority) == expected


def test_the_lowest_cap_wins_and_the_jobs_own_cap_applies_to_foreground() -> None:
    assert rate(WORK, at(0, 9), JobPriority.LOW, cap=64 * 1024) == 64 * 1024
    assert rate(WORK, at(0, 9), JobPriority.LOW, cap=1 << 30) == 128 * 1024
    assert rate(WORK, at(0, 9), JobPriority.FOREGROUND, cap=1000) == 1000


@pytest.mark.parametrize(
    ("when", "expected"),
    [(at(0, 7, 59), None), (at(0, 8), 2 << 20), (at(4, 18, 59), 2 << 20), (at(4, 19), None), (at(5, 9), None),
     (at(6, 23, 59), None)],
)  # fmt: skip
def test_the_timetable_as_rclone_users_write_it(when: float, expected: int | None) -> None:
    assert rate({"timetable": "Mon-Fri,08:00,2M 19:00,off"}, when) == expected


def test_a_timetable_with_day_times_and_a_wait() -> None:
    table = {"timetable": "Mon-00:00,512K Sat-10:00,0 Sun-20:00,off"}
    assert rate(table, at(2, 12)) == 512 * 1024
    assert rate(table, at(5, 11)) == 0
    assert rate(table, at(6, 21)) is None
    assert rate(table, at(0, 0, 1)) == 512 * 1024


@pytest.mark.parametrize(
    "table",
    [
        {"timetable": "25:00,1M"},
        {"timetable": "Mon-Fri,08:00"},
        {"timetable": "Xyz,08:00,1M"},
        {"timetable": "08:00,fast"},
        {"timetable": ""},
        {"background": {"days": "Mon", "start": "8", "end": "17:00", "inside": "1M"}},
        {"background": {"days": "Mon", "start": "08:00", "inside": "1M"}},
        {"work": {"days": "Mon-Fri", "start": "08:00", "end": "17:00", "urgent": "1M"}},
        {"non_work": {"low": "1M"}},
        {"yield": "yes"},
        {"speed": "1M"},
    ],
)
def test_bad_policies_say_what_is_wrong(table: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        from_table(table)


def test_the_next_change_is_reported() -> None:
    found = policy.allowed(from_table(NIGHT), job(), at(4, 23))
    assert found.rate == 0
    assert found.until == at(5, 6)


def test_an_empty_policy_is_only_the_jobs_cap() -> None:
    assert policy.allowed(Policy(), job(cap=5000), at(0, 9)).rate == 5000
    assert policy.allowed(Policy(), job(), at(0, 9)).rate is None


# --- the daemon --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", os.urandom(100_000))


def _write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    return path


def test_a_zero_window_waits_in_queued_then_runs(new_daemon, ok, server, home: Path, tmp_path: Path) -> None:
    """Issue 11: a cap of 0 means the jobs wait, QUEUED, with no error; FOREGROUND is not held by policy."""
    _write_config(home, "[bandwidth.background]\ndays = \"daily\"\nstart = \"08:00\"\nend = \"18:00\"\n"
                        "inside = \"0\"\noutside = \"none\"\n")  # fmt: skip
    background = ok("create", "--raw", "bg").stdout
    foreground = ok("create", "--raw", "fg").stdout
    for ref, name in ((background, "b"), (foreground, "f")):
        ok("addfile", ref, server.url("/f"), str(tmp_path / name))
        ok("resume", ref)
    ok("setpriority", foreground, "FOREGROUND")
    clock = FakeClock(start=at(0, 9))
    daemon = new_daemon(clock)
    run_once(daemon)
    assert state(foreground) is JobState.TRANSFERRED
    assert state(background) is JobState.QUEUED
    assert ok("geterrorcount", background).stdout == "0\n"
    clock.advance(9 * 3600)  # 18:00: the window ends
    run_once(daemon)
    assert state(background) is JobState.TRANSFERRED


def test_info_says_a_waiting_job_waits_and_until_when(ok, cli, home: Path, tmp_path: Path) -> None:
    _write_config(home, '[bandwidth]\ntimetable = "00:00,0"\n')  # every day, all day: the CLI's real clock
    job_id = ok("create", "--raw", "j").stdout
    ok("addfile", job_id, "http://127.0.0.1:1/f", str(tmp_path / "f"))
    ok("resume", job_id)
    text = cli("info", job_id).stdout
    assert "waiting for the bandwidth window: the timetable until" in text
    allowed = cli("info", job_id, "--json").json["job"]["allowed_rate"]
    assert allowed["bytes_per_second"] == 0
    assert allowed["until"] is not None


def test_a_changed_config_file_applies_without_a_restart(new_daemon, ok, server, home: Path, tmp_path: Path) -> None:
    from bitscli import paths
    from bitscli.daemon.loop import Daemon

    config = _write_config(home, '[bandwidth]\ntimetable = "00:00,0"\n')
    clock = FakeClock(start=at(0, 9))
    daemon = Daemon(paths.queue_path(), clock, bandwidth_policy=None, config_path=config)
    try:
        job_id = ok("create", "--raw", "j").stdout
        ok("addfile", job_id, server.url("/f"), str(tmp_path / "f"))
        ok("resume", job_id)
        run_once(daemon)
        assert state(job_id) is JobState.QUEUED  # every day from midnight: wait
        config.write_text('[bandwidth]\ntimetable = "this is not a timetable"\n')
        run_once(daemon)
        with daemon.queue.read() as tx:  # (commands refuse the bad file, exit 8: the daemon's queue is read)
            header = tx.job_header(job_id)
        assert header is not None
        assert header.state is JobState.QUEUED  # a bad file keeps the last good policy
        config.write_text('[bandwidth]\ntimetable = "00:00,off"\n')
        run_once(daemon)
        assert state(job_id) is JobState.TRANSFERRED
    finally:
        daemon.shutdown()


def test_sighup_reloads_instead_of_stopping(home: Path) -> None:
    daemon = DaemonProcess(home).start()
    try:
        assert daemon.process is not None
        os.kill(daemon.process.pid, signal.SIGHUP)
        log = home / "daemon.log"
        wait_for(lambda: log.exists() and "config file reloaded" in log.read_text())
        assert "daemon stopped" not in log.read_text()  # SIGHUP used to stop it
    finally:
        assert daemon.stop() == 0
        daemon.close()


@pytest.mark.parametrize(("priority", "nice"), [("LOW", 10), ("FOREGROUND", 0)])
def test_background_workers_run_at_a_low_cpu_priority(new_daemon, ok, server, tmp_path: Path, priority: str,
                                                      nice: int) -> None:  # fmt: skip
    """Issue 11: polite to the machine too; FOREGROUND competes like an application (bits.md §2.3)."""
    job_id = ok("create", "--raw", "j").stdout
    ok("addfile", job_id, server.url("/f"), str(tmp_path / "f"))
    ok("setpriority", job_id, priority)
    ok("resume", job_id)
    server.fault(path="/f", stall=3.0)  # holds the worker in its transfer while we look at it
    daemon = new_daemon(FakeClock())
    daemon.tick()
    worker = daemon.workers[job_id]
    wait_for(lambda: worker.native_id is not None and _nice(worker.native_id) == nice and server.gets("/f"))
    assert _nice(worker.native_id) == nice
    worker.stop()
    worker.join(20)


def _nice(tid: int | None) -> int:
    assert tid is not None
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_a_start_jitter_holds_a_resumed_job_for_a_random_while(
    new_daemon, ok, cli, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: fleet politeness; the delay is drawn at resume, within the job's jitter (here the draw is 0.5:
    the spread itself is the next test's)."""
    from bitscli.service import jobs as job_service

    monkeypatch.setattr(job_service.random, "random", lambda: 0.5)
    job_id = ok("create", "--raw", "j").stdout
    ok("addfile", job_id, server.url("/f"), str(tmp_path / "f"))
    ok("setstartjitter", job_id, "600")
    assert ok("getstartjitter", job_id).stdout == "600\n"
    clock = FakeClock()
    before = time.time()
    ok("resume", job_id)
    not_before = cli("info", job_id, "--json").json["job"]["properties"]["not_before"]
    assert before + 299 <= datetime.fromisoformat(not_before).timestamp() <= time.time() + 301
    daemon = new_daemon(clock)
    run_once(daemon)
    assert state(job_id) is JobState.QUEUED
    assert "waiting for its start jitter" in cli("info", job_id).stdout
    clock.advance(301)
    run_once(daemon)
    assert state(job_id) is JobState.TRANSFERRED


def test_the_config_gives_the_default_jitter_and_a_job_can_opt_out(ok, cli, home: Path, tmp_path: Path) -> None:
    _write_config(home, "[bandwidth]\nstart_jitter = 3600\n")
    delays = []
    for i in range(20):
        job_id = ok("create", "--raw", f"j{i}").stdout
        ok("addfile", job_id, "http://127.0.0.1:1/f", str(tmp_path / f"f{i}"))
        if i == 0:
            ok("setstartjitter", job_id, "0")
        start = time.time()
        ok("resume", job_id)
        not_before = cli("info", job_id, "--json").json["job"]["properties"]["not_before"]
        delays.append(None if not_before is None else datetime.fromisoformat(not_before).timestamp() - start)
    assert delays[0] is None  # its own 0: no delay
    assert all(d is not None and -1 <= d <= 3601 for d in delays[1:])
    assert len({round(d or 0) for d in delays[1:]}) > 10  # spread, not one value


def test_retry_delays_are_spread_but_never_shorter() -> None:
    from bitscli.daemon import transitions
    from bitscli.model import ErrorContext

    base = job()
    times = [
        transitions.failed(base, 0, 0x80190000 + 503, ErrorContext.REMOTE_FILE, "busy", True, 1000.0, None, s).retry_at
        for s in (0.0, 0.5, 0.999)
    ]  # fmt: skip
    assert times == sorted(times)
    assert times[0] == 1000.0 + base.min_retry_delay
    assert times[-1] is not None
    assert times[-1] < 1000.0 + base.min_retry_delay * 1.25
