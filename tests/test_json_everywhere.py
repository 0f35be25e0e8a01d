"""JSON for scripts everywhere (issue 16 item 10): errors, the daemon's status, wait, transfer, a monitor stream."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bitscli.errors import ExitCode

from .conftest import run_process
from .daemonproc import DaemonProcess
from .faultserver import FaultServer

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def test_errors_are_one_json_object_on_stderr_when_json_was_asked_for(cli) -> None:
    missing = cli("info", "nosuch", "--json")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stdout == ""
    (error,) = [json.loads(line)["error"] for line in missing.stderr.splitlines()]
    assert error == {"code": "0x80200001", "name": "BG_E_NOT_FOUND", "message": "no job is named 'nosuch'",
                     "hint": "list your jobs with: bitscli list", "exit_status": 3}  # fmt: skip
    usage = cli("list", "--json", "--bogus")
    assert usage.exit_code == ExitCode.USAGE
    assert json.loads(usage.stderr)["error"]["exit_status"] == 2
    assert cli("info", "nosuch").stderr.startswith("error: ")  # without --json, the usual lines


def test_timestamps_are_rfc3339(ok) -> None:
    ok("create", "t")
    job = ok("info", "t", "--json").json["job"]
    assert RFC3339.fullmatch(job["creation_time"]), job["creation_time"]
    assert RFC3339.fullmatch(job["modification_time"])
    assert RFC3339.fullmatch(ok("getcreationtime", "t", "--json").json["value"])


def test_daemon_status_json_running_or_not(home: Path) -> None:
    stopped = run_process("daemon", "status", "--json")
    assert stopped.exit_code == ExitCode.DAEMON
    assert stopped.json["running"] is False
    assert stopped.json["pid"] is None
    daemon = DaemonProcess(home).start()
    try:
        running = run_process("daemon", "status", "--json")
        assert running.exit_code == 0
        assert running.json["running"] is True
        assert running.json["pid"] == daemon.process.pid  # type: ignore[union-attr]
        assert RFC3339.fullmatch(running.json["started"])
    finally:
        daemon.close()


def test_monitor_json_is_a_stream_of_changes(ok) -> None:
    ok("create", "a")
    ok("create", "b")
    stream = ok("monitor", "--json", "--count", "3", "--refresh", "0.1").stdout.splitlines()
    assert [json.loads(line)["job"]["name"] for line in stream] == ["a", "b"]  # the later looks saw no change


def test_wait_and_transfer_print_the_final_document(home: Path, tmp_path: Path) -> None:
    server = FaultServer()
    server.put("/f", b"x" * 100_000)
    daemon = DaemonProcess(home).start()
    try:
        done = run_process("transfer", "--json", "t", server.url("/f"), str(tmp_path / "t"))
        assert done.exit_code == 0, done.stderr
        assert done.json["job"]["state"] == "ACKNOWLEDGED"
        run_process("create", "w")
        run_process("addfile", "w", server.url("/f"), str(tmp_path / "w"))
        run_process("resume", "w")
        waited = run_process("wait", "w", "--json")
        assert waited.exit_code == 0, waited.stderr
        assert waited.json["job"]["state"] == "TRANSFERRED"
        assert waited.json["job"]["bytes_transferred"] == 100_000
    finally:
        daemon.close()
        server.close()


def test_wait_for_several_jobs_all_or_any(home: Path, tmp_path: Path) -> None:
    """Issue 16 item 11: `wait A B` with --all (the default) and --any; a failure among them is exit 10."""
    server = FaultServer()
    server.put("/f", b"y" * 50_000)
    daemon = DaemonProcess(home).start()
    try:
        for name, url in (("a", server.url("/f")), ("b", server.url("/f")), ("bad", server.url("/missing")),
                          ("never", "http://127.0.0.1:9/refused")):  # fmt: skip
            run_process("create", name)
            run_process("addfile", name, url, str(tmp_path / name))
            run_process("resume", name)
        both = run_process("wait", "a", "b", "--json", "--timeout", "60")
        assert both.exit_code == 0, both.stderr
        assert [j["state"] for j in both.json["jobs"]] == ["TRANSFERRED", "TRANSFERRED"]
        assert [j["name"] for j in both.json["jobs"]] == ["a", "b"]
        failed = run_process("wait", "a", "bad", "--timeout", "60")
        assert failed.exit_code == 10
        assert "ended in ERROR" in failed.stderr
        assert "bad" in failed.stderr or "missing" in failed.stderr
        first = run_process("wait", "never", "a", "--any", "--timeout", "60")  # 'never' retries for days
        assert first.exit_code == 0, first.stderr
        assert "(a) transferred." in first.stdout
        assert "(never)" not in first.stdout  # its progress lines are there; no final line: it has not ended
        still = run_process("wait", "never", "a", "--timeout", "1")
        assert still.exit_code == 12
        assert "1 of 2 jobs still unfinished" in still.stderr
    finally:
        daemon.close()
        server.close()
