"""One test per documented exit code (README: Exit codes)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitscli.errors import ExitCode
from bitscli.service import jobs as job_service

from .conftest import run_process


def test_every_exit_code_is_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in readme, code


def test_ok(cli) -> None:
    assert cli("create", "x").exit_code == ExitCode.OK == 0


def test_failure_is_an_internal_error_without_a_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("password=hunter2 in a bug's message")

    monkeypatch.setattr(job_service, "list_jobs", broken)  # a stand-in bug; the mapping is what is tested
    result = cli("list")
    assert result.exit_code == ExitCode.FAILURE == 1
    assert result.stderr.startswith("error: internal error: RuntimeError")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr
    assert "--debug" in result.stderr
    debug = cli("--debug", "list")
    assert "Traceback" in debug.stderr


def test_usage(cli) -> None:
    assert cli("create").exit_code == ExitCode.USAGE == 2


def test_not_found(cli) -> None:
    assert cli("getstate", "nothing").exit_code == ExitCode.NOT_FOUND == 3


def test_ambiguous(cli, ok) -> None:
    ok("create", "twin")
    ok("create", "twin")
    assert cli("getstate", "twin").exit_code == ExitCode.AMBIGUOUS == 4


def test_invalid_state(cli, ok) -> None:
    ok("create", "empty")
    assert cli("resume", "empty").exit_code == ExitCode.INVALID_STATE == 5


def test_limit(cli, ok, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[limits]\nmax_jobs_per_user = 1\n")
    ok("create", "one")
    assert cli("create", "two").exit_code == ExitCode.LIMIT == 6


def test_queue(cli, home: Path) -> None:
    home.mkdir()
    (home / "queue.db").write_bytes(b"\x00garbage" * 512)
    assert cli("list").exit_code == ExitCode.QUEUE == 7


def test_config(cli, home: Path) -> None:
    home.mkdir()
    (home / "config.toml").write_text("not toml at all [")
    assert cli("list").exit_code == ExitCode.CONFIG == 8


def test_not_supported(cli) -> None:
    assert cli("/CACHE", "/LIST").exit_code == ExitCode.NOT_SUPPORTED == 9


def test_interrupted_by_ctrl_c(home: Path, tmp_path: Path) -> None:
    assert run_process("create", "waits").exit_code == 0
    # addfileset reading a stdin that never ends: the process is really blocked when SIGINT arrives.
    child = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "addfileset", "waits", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    _wait_until_reading_stdin(child.pid)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == ExitCode.INTERRUPTED == 130
    assert b"Traceback" not in err
    assert run_process("getfilestotal", "waits").stdout == "0\n"


def _wait_until_reading_stdin(pid: int, timeout: float = 60.0) -> None:
    """Block until the process sits in read(0, ...): /proc/PID/syscall starts with the read number and fd 0."""
    deadline = time.monotonic() + timeout
    read_syscall = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            fields = []
        if read_syscall is None or (fields[:2] == [read_syscall, "0x0"]):
            if read_syscall is None:
                time.sleep(2.0)  # an unknown architecture: fall back to a generous pause
            return
        time.sleep(0.02)
    raise AssertionError("the child never started reading stdin")


def test_a_command_that_exits_quickly_still_delivers_its_output(home: Path) -> None:
    # run() skips the interpreter's teardown (os._exit); what sits in stdout's buffer must be written first.
    assert run_process("create", "quick").exit_code == 0
    state = run_process("getstate", "quick", env={"PYTHONUNBUFFERED": ""})  # block-buffered, as by default
    assert (state.exit_code, state.stdout) == (0, "SUSPENDED\n")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_an_error_not_a_silent_success(home: Path) -> None:
    assert run_process("create", "full").exit_code == 0
    env = {**os.environ, "PYTHONUNBUFFERED": ""}  # the write fails only at the final flush
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "bitscli", "getstate", "full"], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert done.returncode == ExitCode.FAILURE
    assert "error: could not write the output: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_command_exits_with_its_change_committed_and_the_wal_left_for_the_next(home: Path) -> None:
    # run() leaves the queue open at exit, so SQLite does not copy the WAL into the database then (three
    # fsyncs): the change is durable in the WAL, which any other connection reads.
    assert run_process("create", "kept").exit_code == 0
    assert (home / "queue.db-wal").stat().st_size > 0
    with contextlib.closing(sqlite3.connect(f"file:{home / 'queue.db'}?mode=ro", uri=True)) as conn:
        names = [row[0] for row in conn.execute("SELECT display_name FROM jobs")]
    assert names == ["kept"]
    assert run_process("getstate", "kept").stdout == "SUSPENDED\n"
