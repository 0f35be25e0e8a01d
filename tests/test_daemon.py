"""The daemon with a real local server: in-process ticks on an injected clock, and real daemon processes."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.model import JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job

from .conftest import run_process
from .daemonproc import DaemonProcess, FakeClock, run_once, settle, state, wait_for
from .faultserver import FaultServer, serving

DATA = os.urandom(2 * 1024 * 1024 + 7)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", DATA)


@pytest.fixture
def daemon_process(home: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(home)
    yield proc
    proc.close()


def _stable_bytes(ref: str) -> int | None:
    """The bytes recorded, once two reads half a second apart agree."""
    first = get_job(open_context(), ref).bytes_transferred
    time.sleep(0.5)
    second = get_job(open_context(), ref).bytes_transferred
    return second if first == second else None


# --- in-process ticks, injected clock ---------------------------------------------------------


def test_tick_runs_a_job_to_transferred(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    daemon = new_daemon()
    plan = daemon.tick()
    assert job in plan.job_ids
    settle(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert not (tmp_path / "f").exists()
    ok("complete", job)
    assert sha((tmp_path / "f").read_bytes()) == sha(DATA)


def test_transient_error_waits_for_the_retry_delay(new_daemon, ok, server, tmp_path: Path) -> None:
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setminretrydelay", job, "60")
    ok("resume", job)
    server.fault(status=503, headers={"Retry-After": "120"})  # the HEAD of the first attempt
    daemon = new_daemon(clock)
    run_once(daemon)
    found = get_job(open_context(), job)
    assert found.state is JobState.TRANSIENT_ERROR
    assert found.error is not None
    assert found.error.code == 0x801901F7
    # The longer of the retry delay and Retry-After, spread by up to a quarter more (a fleet must not return at once).
    assert found.retry_at is not None
    assert clock.now() + 120 <= found.retry_at < clock.now() + 150
    clock.advance(119)
    daemon.tick()
    assert state(job) is JobState.TRANSIENT_ERROR
    clock.advance(found.retry_at - clock.now())
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert ok("geterrorcount", job).stdout == "1\n"


def test_no_progress_timeout_turns_transient_into_error(new_daemon, ok, server, tmp_path: Path) -> None:
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setminretrydelay", job, "10")
    ok("setnoprogresstimeout", job, "25")
    ok("resume", job)
    server.fault(status=500, times=100)
    daemon = new_daemon(clock)
    for _ in range(3):  # fails at t=0, 10 and 20, each time TRANSIENT_ERROR
        daemon.tick()
        settle(daemon)
        assert state(job) is JobState.TRANSIENT_ERROR
        clock.advance(10)
    daemon.tick()  # t=30: 25 s without progress since the first error
    assert state(job) is JobState.ERROR
    assert "500" in ok("geterror", job).stdout


def test_fatal_http_errors_go_straight_to_error(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/missing"), str(tmp_path / "f"))
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.ERROR
    err = ok("geterror", job).stdout
    assert "ERROR CODE:    0x80190194" in err
    assert "ERROR CONTEXT: 0x00000005" in err
    assert server.url("/missing") in err


def test_a_reset_after_progress_is_resumed_at_once(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    server.fault(reset_after=300_000)
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED  # no TRANSIENT_ERROR, no retry delay
    assert ok("geterrorcount", job).stdout == "0\n"
    ok("complete", job)
    assert sha((tmp_path / "f").read_bytes()) == sha(DATA)


def test_max_download_time(new_daemon, ok, server, tmp_path: Path) -> None:
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setmaxdownloadtime", job, "5")
    ok("resume", job)
    ctx = open_context()
    with ctx.queue.write() as tx:  # 6 s already spent transferring
        import dataclasses

        current = tx.job(job)
        tx.update(dataclasses.replace(current, active_seconds=6.0), current)
    daemon = new_daemon(clock)
    daemon.tick()
    assert state(job) is JobState.ERROR
    assert "0x80200054" in ok("geterror", job).stdout


def test_file_urls_copy_with_the_same_rules(new_daemon, ok, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, source.as_uri(), str(tmp_path / "a"))
    ok("addfile", job, str(source), str(tmp_path / "b"))
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    ok("complete", job)
    assert sha((tmp_path / "a").read_bytes()) == sha((tmp_path / "b").read_bytes()) == sha(DATA)


def test_daemon_restart_requeues_jobs_left_transferring(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    ctx = open_context()
    with ctx.queue.write() as tx:  # as a killed daemon leaves it
        import dataclasses

        current = tx.job(job)
        tx.update(dataclasses.replace(current, state=JobState.TRANSFERRING), current)
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED


# --- real daemon processes --------------------------------------------------------------------


def test_one_daemon_per_queue(daemon_process: DaemonProcess, home: Path) -> None:
    daemon_process.start()
    second = run_process("daemon", "run")
    assert second.exit_code == 11  # issue 16 item 15: systemd must not take this for a service that finished
    assert f"already running for this queue (pid {daemon_process.process.pid})" in second.stderr
    status = run_process("daemon", "status")
    assert status.exit_code == 0
    assert f"pid {daemon_process.process.pid}" in status.stdout
    assert daemon_process.stop() == 0
    assert run_process("daemon", "status").exit_code == 11
    log = run_process("daemon", "log", "-n", "50").stdout
    assert f"daemon started, pid {daemon_process.process.pid}" in log
    assert "daemon stopped" in log
    assert (home / "daemon.log").stat().st_mode & 0o077 == 0  # private, like the queue


def test_transfer_command_end_to_end(daemon_process: DaemonProcess, server, tmp_path: Path) -> None:
    daemon_process.start()
    result = run_process("transfer", "t", server.url("/f"), str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert "Transfer complete" in result.stdout
    assert sha((tmp_path / "out").read_bytes()) == sha(DATA)
    failed = run_process("transfer", "t2", server.url("/nope"), str(tmp_path / "nope"))
    assert failed.exit_code == 10
    assert "0x80190194" not in failed.stdout
    assert "404" in failed.stderr
    assert not (tmp_path / "nope").exists()
    assert run_process("getstate", "t2").stdout == "CANCELLED\n"


def test_bitsadmin_transfer_takes_its_name_first_and_prints_bitsadmin_lines(
    daemon_process: DaemonProcess, server, tmp_path: Path
) -> None:
    """Issue 16 item 5: `/transfer /Download /priority Foreground URL FILE` (a public test suite's line) names
    the job "/Download", downloads the file, and prints DISPLAY/STATE lines and `Transfer complete.`"""
    daemon_process.start()
    result = run_process("/transfer", "/Download", "/priority", "Foreground", server.url("/f"), str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr
    assert sha((tmp_path / "o").read_bytes()) == sha(DATA)
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("DISPLAY: '/Download' STATE: ")]
    assert progress, result.stdout
    assert (
        progress[-1] == f"DISPLAY: '/Download' STATE: TRANSFERRED FILES: 1 / 1 BYTES: {len(DATA)} / {len(DATA)} (100%)"
    )
    assert lines[-1] == "Transfer complete."
    assert run_process("list", "--all", "--json").json["jobs"][0]["name"] == "/Download"


def test_suspend_stops_a_running_transfer_and_keeps_progress(daemon_process, server, ok, tmp_path: Path) -> None:
    server.fault(trickle=0.001, times=1)  # about 1 KB/s: still running when we suspend
    job = ok("create", "--raw", "slow").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    daemon_process.start()
    wait_for(lambda: get_job(open_context(), job).bytes_transferred > 0)
    ok("suspend", job)
    settled = wait_for(lambda: _stable_bytes(job))  # the worker has saved its last bytes and stopped
    time.sleep(1.0)
    after = get_job(open_context(), job)
    assert after.state is JobState.SUSPENDED
    assert after.bytes_transferred == settled > 0  # nothing moved after the suspend
    ok("resume", job)
    wait_for(lambda: state(job) is JobState.TRANSFERRED)
    ok("complete", job)
    assert sha((tmp_path / "f").read_bytes()) == sha(DATA)


def test_graceful_stop_requeues_with_progress(daemon_process, server, ok, tmp_path: Path) -> None:
    server.fault(trickle=0.001, times=1)
    job = ok("create", "--raw", "slow").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    daemon_process.start()
    wait_for(lambda: get_job(open_context(), job).bytes_transferred > 0)
    assert daemon_process.stop() == 0
    stopped = get_job(open_context(), job)
    assert stopped.state is JobState.QUEUED
    assert stopped.bytes_transferred > 0
    daemon_process.start()
    wait_for(lambda: state(job) is JobState.TRANSFERRED)
    assert server.gets("/f")[-1].headers.get("Range", "").startswith("bytes=")


def test_wait_command(daemon_process, server, ok, tmp_path: Path) -> None:
    job = ok("create", "--raw", "w").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    assert run_process("wait", job).exit_code == 5  # suspended: it would never finish
    ok("resume", job)
    daemon_process.start()
    done = run_process("wait", job, "--timeout", "60")
    assert done.exit_code == 0, done.stderr
    assert state(job) is JobState.TRANSFERRED


def test_a_ranged_file_through_the_daemon(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "r").stdout
    ok("addfilewithranges", job, server.url("/f"), str(tmp_path / "r"), "900:100,100:100")
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert ok("getbytestotal", job).stdout == "200\n"
    ok("complete", job)
    assert (tmp_path / "r").read_bytes() == DATA[900:1000] + DATA[100:200]


def test_inactive_jobs_are_cancelled_with_their_part_files(new_daemon, ok, server, tmp_path: Path) -> None:
    clock = FakeClock()
    job = ok("create", "--raw", "old").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    from bitscli import partfiles

    part = Path(partfiles.part_path(str(tmp_path / "f"), job, 0))
    part.write_bytes(b"left from long ago")
    clock.wall = get_job(open_context(), job).modification_time + 91 * 86_400
    daemon = new_daemon(clock)
    daemon.tick()
    assert state(job) is JobState.CANCELLED
    assert not part.exists()


def test_custom_headers_go_out_on_every_request(new_daemon, ok, server, tmp_path: Path) -> None:
    job = ok("create", "--raw", "h").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setcustomheaders", job, "X-Trace: 42", "X-Other: yes")
    ok("resume", job)
    server.fault(truncate_after=100_000)  # a resume, so the ranged GET is seen too
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED
    seen = [s for s in server.seen if s.path == "/f"]
    assert len(seen) >= 3  # GET, HEAD, ranged GET
    assert all(s.headers.get("X-Trace") == "42" and s.headers.get("X-Other") == "yes" for s in seen)
    assert any("Range" in s.headers for s in seen)


def test_headers_changed_during_a_job_apply_from_its_next_file(new_daemon, ok, server, tmp_path: Path) -> None:
    # The worker keeps the job's header between files and reads it again only when the queue changed: a
    # change made by the CLI while the first file downloads must reach the second file's request.
    server.put("/g", b"second")
    server.fault(path="/f", stall=1.0)
    job = ok("create", "--raw", "h").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("addfile", job, server.url("/g"), str(tmp_path / "g"))
    ok("setcustomheaders", job, "X-Trace: 1")
    ok("resume", job)
    daemon = new_daemon()
    daemon.tick()
    wait_for(lambda: server.gets("/f"))
    ok("setcustomheaders", job, "X-Trace: 2")
    settle(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert [s.headers.get("X-Trace") for s in server.gets("/f")] == ["1"]
    assert [s.headers.get("X-Trace") for s in server.gets("/g")] == ["2"]


@pytest.mark.parametrize("end", ["cancel", "complete"])
def test_part_files_are_made_ahead_and_an_ended_job_leaves_none(
    new_daemon, ok, cli, server, tmp_path: Path, end: str
) -> None:
    server.fault(path="/f", stall=60)  # the worker sits in the first file's read
    out = tmp_path / "out"
    out.mkdir()
    job = ok("create", "--raw", "ahead").stdout
    for name in ("a", "b", "c"):
        ok("addfile", job, server.url("/f"), str(out / name))
    ok("resume", job)
    daemon = new_daemon()
    daemon.tick()
    worker = daemon.workers[job]
    guid = job.strip("{}").replace("-", "").lower()
    wait_for(lambda: (out / f".c.{guid}.2.bitscli-part").exists())  # created while file 0 downloads
    # complete keeps only finished files: none here, which it says with exit 10 (the job is completed all the same)
    assert cli(end, job).exit_code == (0 if end == "cancel" else 10)
    # As if the worker created a part file just after the CLI deleted them: the worker removes it as it stops.
    (out / f".b.{guid}.1.bitscli-part").write_bytes(b"")
    daemon.tick()
    worker.join(20)
    assert not worker.is_alive()
    assert state(job) is (JobState.CANCELLED if end == "cancel" else JobState.ACKNOWLEDGED)
    assert list(out.iterdir()) == []


def test_a_nudge_is_taken_only_by_a_listening_daemon(home: Path) -> None:
    from bitscli import paths
    from bitscli.daemon import wakeup

    paths.ensure_private_dir(paths.state_dir())  # as `daemon run` does first
    assert not wakeup.nudge()  # no socket yet
    listener = wakeup.Listener()
    assert listener.listening
    assert wakeup.nudge()  # `transfer` and `resume` skip the lock probe on this answer
    listener.close()
    assert not wakeup.nudge()
    wakeup.socket_path().touch()  # a socket file no process is bound to (a daemon killed with -9)
    assert not wakeup.nudge()


def test_a_cli_change_wakes_the_daemon_without_waiting_for_its_poll(
    ok, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bitscli import paths
    from bitscli.daemon import loop as daemon_module
    from bitscli.daemon import wakeup

    monkeypatch.setattr(daemon_module, "POLL_SECONDS", 3600.0)  # only a nudge can wake it in this test
    job = ok("create", "--raw", "nudged").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    listener = wakeup.Listener()
    assert listener.listening
    daemon = daemon_module.Daemon(paths.queue_path(), FakeClock(), wake=listener)
    ticked = threading.Event()
    tick = daemon.tick
    daemon.tick = lambda: (tick(), ticked.set())[0]  # type: ignore[method-assign]
    loop = threading.Thread(target=daemon.run, daemon=True)
    loop.start()
    try:
        ticked.wait(30)  # its first tick is done; it now waits for an hour
        ok("resume", job)  # the CLI nudges the daemon as it closes the queue
        wait_for(lambda: state(job) is JobState.TRANSFERRED)
    finally:
        daemon.stop_event.set()
        wakeup.nudge()
        loop.join(30)
        listener.close()
    assert not loop.is_alive()
    assert not wakeup.socket_path().exists()


class _LoopUnderTest:
    """Daemon.run in a thread, with a bound wake-up socket and a clock that stands still (no periodic ticks)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from bitscli import paths
        from bitscli.daemon import loop as daemon_module
        from bitscli.daemon import wakeup

        monkeypatch.setattr(daemon_module, "POLL_SECONDS", 0.01)  # data_version is looked at 100 times a second
        self.listener = wakeup.Listener()
        assert self.listener.listening
        self.daemon = daemon_module.Daemon(paths.queue_path(), FakeClock(), wake=self.listener)
        self.ticks = 0
        self.ticked = threading.Event()
        tick = self.daemon.tick

        def counted() -> object:
            plan = tick()
            self.ticks += 1
            self.ticked.set()
            return plan

        self.daemon.tick = counted  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> _LoopUnderTest:
        self.thread.start()
        assert self.ticked.wait(30)  # the first tick is done
        return self

    def __exit__(self, *exc: object) -> None:
        from bitscli.daemon import wakeup

        self.daemon.stop_event.set()
        wakeup.nudge()
        self.thread.join(30)
        self.listener.close()
        assert not self.thread.is_alive()


def test_the_daemon_does_not_tick_for_each_commit_of_its_own_workers(
    ok, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job of small files commits its progress every few milliseconds; a tick reads every live job. Where
    # commands nudge the daemon, those commits wait for a later tick (its clock stands still here: none).
    job = ok("create", "--raw", "many").stdout
    for i in range(30):
        server.put(f"/s{i}", b"s" * 1000)
        server.fault(path=f"/s{i}", delay=0.03)  # each file lands in a batch of its own
        ok("addfile", job, server.url(f"/s{i}"), str(tmp_path / f"s{i}"))
    with _LoopUnderTest(monkeypatch) as loop:
        ok("resume", job)
        wait_for(lambda: state(job) is JobState.TRANSFERRED)
        assert loop.ticks <= 4  # the first, the resume's nudge, the worker's as it ends (and one that raced it)
    ok("complete", job)
    assert all((tmp_path / f"s{i}").read_bytes() == b"s" * 1000 for i in range(30))


def test_a_job_that_ends_wakes_the_daemon_to_start_the_next(
    ok, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two background jobs run one at a time. The clock stands still and the queue's changes wait: only the
    # first worker's nudge as it ends can start the second job.
    server.put("/g", b"second job")
    first = ok("create", "--raw", "first").stdout
    ok("addfile", first, server.url("/f"), str(tmp_path / "f"))
    second = ok("create", "--raw", "second").stdout
    ok("addfile", second, server.url("/g"), str(tmp_path / "g"))
    with _LoopUnderTest(monkeypatch):
        ok("resume", first)
        ok("resume", second)
        wait_for(lambda: state(first) is JobState.TRANSFERRED)
        wait_for(lambda: state(second) is JobState.TRANSFERRED)


def test_follow_and_report_rewrites_the_remote_name(new_daemon, ok, server, tmp_path: Path) -> None:
    server.fault(path="/old", status=302, headers={"Location": "/f"})
    job = ok("create", "--raw", "moved").stdout
    ok("addfile", job, server.url("/old"), str(tmp_path / "f"))
    ok("setsecurityflags", job, "0x100")  # BG_HTTP_REDIRECT_POLICY_ALLOW_REPORT
    ok("resume", job)
    daemon = new_daemon()
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED
    assert ok("listfiles", job, "--json").json["files"][0]["remote_name"] == server.url("/f")


def test_a_missing_target_directory_is_a_transient_local_file_error(new_daemon, ok, server, tmp_path: Path) -> None:
    """The directory may be made again (issue 13, item 6): the job waits in TRANSIENT_ERROR, then goes on."""
    target_dir = tmp_path / "gone"
    target_dir.mkdir()
    job = ok("create", "--raw", "local").stdout
    ok("addfile", job, server.url("/f"), str(target_dir / "f"))
    ok("setminretrydelay", job, "5")
    target_dir.rmdir()
    ok("resume", job)
    clock = FakeClock()
    daemon = new_daemon(clock)
    run_once(daemon)
    assert state(job) is JobState.TRANSIENT_ERROR
    err = ok("geterror", job).stdout
    assert "ERROR CODE:    0x80070003" in err
    assert "ERROR CONTEXT: 0x00000004" in err
    target_dir.mkdir()
    clock.advance(7)  # the retry delay and its spread
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED


def test_ctrl_c_during_transfer_cancels_the_job(daemon_process, server, home: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    server.fault(trickle=0.01)  # slow enough to still be running when Ctrl-C comes
    daemon_process.start()
    child = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "transfer", "interrupted", server.url("/f"), str(tmp_path / "f")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "BITSCLI_HOME": str(home)},
    )
    wait_for(lambda: _bytes_of("interrupted") > 0)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert b"cancelled" in err
    assert state("interrupted") is JobState.CANCELLED
    assert not (tmp_path / "f").exists()
    assert not list(tmp_path.glob(".*.bitscli-part"))


def _bytes_of(name: str) -> int:
    from bitscli.errors import BitsError

    try:
        return get_job(open_context(), name).bytes_transferred
    except BitsError:  # the job is not created yet
        return 0


def test_wait_starts_the_daemon_a_job_needs_or_says_it_is_missing(home: Path, server, ok, tmp_path: Path) -> None:
    """Issue 16 item 13: `wait` on a QUEUED job with no daemon (a reboot with no service) blocked for ever."""
    ok("create", "w")
    ok("addfile", "w", server.url("/f"), str(tmp_path / "w"))
    ok("resume", "w", "--no-daemon-start")
    refused = run_process("wait", "w", "--no-daemon-start", "--timeout", "600")
    assert refused.exit_code == 11
    assert "needs the daemon, which is not running" in refused.stderr
    try:
        waited = run_process("wait", "w", env={"BITSCLI_NO_AUTOSTART": ""})
        assert waited.exit_code == 0, waited.stderr
        assert state("w") is JobState.TRANSFERRED
    finally:
        run_process("daemon", "stop")


def test_daemon_run_logs_to_the_journal_under_systemd(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 item 14: systemd sets JOURNAL_STREAM when stderr is the journal; the log goes there too."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    daemon = DaemonProcess(home).start()
    try:
        assert daemon.stop() == 0
        assert daemon.process is not None
        assert daemon.process.stderr is not None
        journal = daemon.process.stderr.read().decode()
    finally:
        daemon.close()
    assert f"daemon started, pid {daemon.process.pid}" in journal
    assert "daemon stopped" in journal


def test_transfer_without_a_daemon_says_so_and_ctrl_c_cancels(home: Path, server, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitscli",
            "transfer",
            "--no-daemon-start",
            "nodaemon",
            server.url("/f"),
            str(tmp_path / "f"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "BITSCLI_HOME": str(home)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().startswith(b"QUEUED")  # the first progress line: the warning came before it
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert b"warning: no daemon runs for this queue" in err
    assert child.returncode == 130
    assert state("nodaemon") is JobState.CANCELLED


@pytest.mark.parametrize("stall", [{"trickle": 60}, {"stall": 60}], ids=["after-a-byte", "before-any-byte"])
def test_suspend_during_a_stalled_read_leaves_the_job_suspended(
    new_daemon, ok, server, tmp_path: Path, stall: dict[str, float]
) -> None:
    server.fault(times=1, **stall)  # a minute of silence, the worker blocked in a read
    job = ok("create", "--raw", "stalled").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    daemon = new_daemon()
    daemon.tick()
    worker = daemon.workers[job]
    wait_for(lambda: server.gets("/f"))
    ok("suspend", job)
    daemon.tick()  # the daemon stops the worker, which breaks the read
    worker.join(20)
    assert not worker.is_alive()  # it did not wait out the stall
    found = get_job(open_context(), job)
    assert found.state is JobState.SUSPENDED  # the broken read is ours, not a transient error
    assert found.error is None


def test_an_immutable_state_directory_is_a_clean_daemon_error(ok, home: Path) -> None:
    """Issue 13, item 4: `daemon run` said "internal error: PermissionError" (filelock's open)."""
    ok("create", "j")
    immutable = subprocess.run(["chattr", "+i", str(home)], capture_output=True, check=False)
    if immutable.returncode:
        pytest.skip(f"chattr +i is not available here: {immutable.stderr.decode().strip()}")
    try:
        for argv in (["daemon", "run"], ["daemon", "start"]):
            result = run_process(*argv)
            assert result.exit_code == 11, (argv, result.stderr)
            assert "internal error" not in result.stderr
            assert "writable" in result.stderr
    finally:
        subprocess.run(["chattr", "-i", str(home)], check=True)


def test_an_immutable_queue_brings_no_restart_storm(ok, home: Path, tmp_path: Path) -> None:
    """Issue 13, item 4: `chattr +i queue.db` made the daemon start the job's worker every tick, each dying with a
    traceback. Now the worker stops with one line, workers wait with a growing back-off, and the job goes on
    once the file is writable again."""
    server = FaultServer()
    server.put("/f", os.urandom(1 << 20))
    daemon = DaemonProcess(home)
    queue = home / "queue.db"
    try:
        job = ok("create", "--raw", "j").stdout
        ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
        immutable = subprocess.run(["chattr", "+i", str(queue)], capture_output=True, check=False)
        if immutable.returncode:
            pytest.skip(f"chattr +i is not available here: {immutable.stderr.decode().strip()}")
        subprocess.run(["chattr", "-i", str(queue)], check=True)
        ok("resume", job)  # QUEUED, and the daemon's first worker opens the queue after the file is made immutable
        subprocess.run(["chattr", "+i", str(queue)], check=True)
        daemon.start()
        log = home / "daemon.log"
        wait_for(lambda: log.exists() and log.read_text().count("cannot be written") >= 3)
        text = log.read_text()
        starts = [_logged_at(line) for line in text.splitlines() if "starting its transfer" in line]
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert gaps[1] >= 1.5, gaps  # a storm restarts at every tick; the back-off waits 1, 2, 4 s... between
        assert "Traceback" not in text
        subprocess.run(["chattr", "-i", str(queue)], check=True)
        wait_for(lambda: state(job) is JobState.TRANSFERRED, timeout=90)
    finally:
        subprocess.run(["chattr", "-i", str(queue)], capture_output=True, check=False)
        daemon.stop()
        daemon.close()
        server.close()


def _logged_at(line: str) -> float:
    """The time of a daemon log line (its first 23 characters: 2026-11-30 18:33:01,123)."""
    from datetime import datetime

    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_the_systemd_unit_runs_this_installation_and_verifies(home: Path, tmp_path: Path) -> None:
    """Issue 16 item 16: ExecStart is this bitscli, BITSCLI_HOME is passed on, and systemd accepts the unit."""
    import shlex
    import shutil
    import subprocess
    import sys

    from bitscli.daemon import process

    text = run_process("daemon", "unit").stdout
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [sys.executable, "-m", "bitscli", "daemon", "run"]
    assert f"Environment=BITSCLI_HOME={home}" in text
    assert "Nice=10" in text
    assert "IOSchedulingClass=idle" in text
    assert "network-online" not in text  # no effect in a user manager
    shipped = Path(__file__).parent.parent / "packaging" / "systemd" / "bitscli.service"
    assert shipped.read_text() == process.unit("%h/.local/bin/bitscli daemon run", None)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit's text was checked above")
    unit_file = tmp_path / "bitscli.service"
    unit_file.write_text(text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    checked = subprocess.run([analyze, "--user", "verify", str(unit_file)], capture_output=True, text=True,
                             env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)}, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "bitscli.service" not in checked.stderr, checked.stderr  # no warning about our unit


def test_transfer_shows_why_it_waits_and_sigterm_cancels_like_ctrl_c(
    daemon_process: DaemonProcess, home: Path, tmp_path: Path
) -> None:
    """Issue 16 item 12: a transient error shows its reason and the next try; SIGTERM (what `timeout` sends)
    ends the transfer as Ctrl-C does: the job is cancelled, exit 130."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nobody listens on: connection refused, a transient error
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon_process.start()
    child = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "transfer", "refused", f"http://127.0.0.1:{port}/f", str(tmp_path / "f")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "BITSCLI_HOME": str(home)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        waiting = ""
        for output_line in child.stdout:
            if output_line.startswith("TRANSIENT_ERROR"):
                waiting = output_line
                break
        assert re.search(r" - .+; next try \d\d:\d\d:\d\d$", waiting.rstrip()), waiting
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "was cancelled" in err
    assert state("refused") is JobState.CANCELLED
