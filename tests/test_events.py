"""The event log (issue 15): every transition once, in order, written with the change; --follow streams it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.daemonproc import FakeClock, run_once, state
from tests.faultserver import FaultServer


def _events(ok, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in ok("events", "--json", *args).stdout.splitlines()]


def test_a_job_that_retries_fails_is_resumed_and_completes(new_daemon, ok, tmp_path: Path) -> None:
    from bitscli.model import JobState

    server = FaultServer()
    try:
        server.put("/f", os.urandom(100_000))
        server.fault(path="/f", status=503)  # transient: retried after the delay
        server.fault(path="/f", status=404)  # then fatal
        job = ok("create", "--raw", "eventful").stdout.strip()
        ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
        ok("resume", job)
        clock = FakeClock()
        daemon = new_daemon(clock)
        run_once(daemon)
        assert state(job) is JobState.TRANSIENT_ERROR
        clock.advance(3600)
        run_once(daemon)  # back to QUEUED, then the 404
        run_once(daemon)
        assert state(job) is JobState.ERROR
        ok("resume", job)
        run_once(daemon)
        assert state(job) is JobState.TRANSFERRED
        ok("complete", job)
    finally:
        server.close()
    found = _events(ok, job)
    assert found[0]["event"] == "created"
    assert found[0]["to"] == "SUSPENDED"
    for before, after in itertools.pairwise(found):
        assert after["from"] == before["to"], (before, after)  # a chain: none missed, none twice
        assert after["seq"] > before["seq"]
    states = [e["to"] for e in found]
    wanted = ["SUSPENDED", "QUEUED", "TRANSIENT_ERROR", "QUEUED", "ERROR", "QUEUED", "TRANSFERRED", "ACKNOWLEDGED"]
    position = 0
    for name in states:
        if position < len(wanted) and name == wanted[position]:
            position += 1
    assert position == len(wanted), states  # in this order
    transient = next(e for e in found if e["to"] == "TRANSIENT_ERROR")
    assert transient["error"]["code"] == "0x801901f7"  # HTTP 503
    assert transient["retry_in"] > 0  # the retry's delay
    failed = next(e for e in found if e["to"] == "ERROR")
    assert failed["error"]["code"] == "0x80190194"  # HTTP 404
    assert {e["job"]["id"] for e in found} == {job}
    text = ok("events", job).stdout
    assert "STATE CONNECTING -> TRANSIENT_ERROR 0x801901f7" in text
    assert "next try in" in text


def test_notification_runs_are_events_with_their_exit_status(new_daemon, ok, tmp_path: Path) -> None:
    server = FaultServer()
    try:
        server.put("/f", b"n" * 1000)
        job = ok("create", "--raw", "notified").stdout.strip()
        ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
        ok("setnotifycmdline", job, "/bin/sh", "sh -c 'exit 3'")
        ok("resume", job)
        daemon = new_daemon()
        run_once(daemon)
        daemon.tick()
        for thread in list(daemon.notifying.values()):
            thread.join(60)
    finally:
        server.close()
    notes = [e for e in _events(ok, job) if e["event"] == "notify"]
    assert notes == [notes[0]]
    assert (notes[0]["to"], notes[0]["exit_status"]) == ("TRANSFERRED", 3)
    assert "TRANSFERRED command line exit 3" in ok("events", job).stdout


def test_since_and_bad_since(ok, cli) -> None:
    ok("create", "early")
    assert [e["job"]["name"] for e in _events(ok, "--since", "1h")] == ["early"]
    assert _events(ok, "--since", "2999-01-01T00:00:00+00:00") == []
    refused = cli("events", "--since", "yesterday-ish")
    assert refused.exit_code != 0
    assert "is not a time" in refused.stderr


def test_follow_streams_changes_as_json_lines(ok, home: Path) -> None:
    """`events --follow --json`: a script reads one object per line as changes are committed."""
    follower = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "events", "--follow", "--json"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "BITSCLI_HOME": str(home)},
    )  # fmt: skip
    lines: list[dict] = []
    arrived = threading.Event()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(json.loads(line))
            if lines[-1]["to"] == "CANCELLED":
                arrived.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        job = ok("create", "--raw", "followed").stdout.strip()
        ok("cancel", job)
        assert arrived.wait(30)  # a bound for a hang, not a timing: the note gives the measured delay
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    assert [(e["event"], e["to"]) for e in lines] == [("created", "SUSPENDED"), ("state", "CANCELLED")]


def _hooked(home: Path, tmp_path: Path, allow: bool = True) -> Path:
    """A config whose three hooks append their arguments to a file; the file they write to."""
    record = tmp_path / "hooks.txt"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys\nopen({str(record)!r}, 'a').write(' | '.join(sys.argv[1:]) + '\\n')\n")
    home.mkdir(exist_ok=True)
    lines = [] if allow else ["[notify]", "allow_notify_command_line = false"]
    for name in ("on_transferred", "on_error", "on_complete"):
        lines.append(
            f"{name} = {json.dumps([sys.executable, str(script), name, '{id}', '{name}', '{state}', '{error}'])}"
        )
    lines.insert(len(lines) - 3, "[hooks]")
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    return record


def _run_hooks(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.tick()
    if daemon.hooks.thread is not None:
        daemon.hooks.thread.join(60)


def test_hooks_run_for_every_job_with_its_placeholders(new_daemon, ok, home: Path, tmp_path: Path) -> None:
    record = _hooked(home, tmp_path)
    server = FaultServer()
    try:
        server.put("/f", b"h" * 1000)
        daemon = new_daemon()
        _run_hooks(daemon)  # sets the mark: what happened before the hooks were read is not replayed
        good = ok("create", "--raw", "good {job}").stdout.strip()
        ok("addfile", good, server.url("/f"), str(tmp_path / "good"))
        bad = ok("create", "--raw", "bad").stdout.strip()
        ok("addfile", bad, server.url("/missing"), str(tmp_path / "bad"))
        ok("resume", good)
        ok("resume", bad)
        run_once(daemon)
        _run_hooks(daemon)
        ok("complete", good)
        _run_hooks(daemon)
        _run_hooks(daemon)  # nothing new: nothing runs twice
    finally:
        server.close()
    lines = sorted(record.read_text().splitlines())
    assert f"on_complete | {good} | good {{job}} | ACKNOWLEDGED | " in lines  # other braces are left alone
    assert f"on_transferred | {good} | good {{job}} | TRANSFERRED | " in lines
    errors = [line for line in lines if line.startswith("on_error")]
    assert len(errors) == 1
    assert errors[0].startswith(f"on_error | {bad} | bad | ERROR | HTTP 404")
    assert len(lines) == 3
    hooks = [e for e in _events(ok) if e["event"] == "hook"]
    assert sorted(e["hook"] for e in hooks) == ["on_complete", "on_error", "on_transferred"]
    assert {e["exit_status"] for e in hooks} == {0}


def test_hooks_obey_the_command_line_policy(new_daemon, ok, home: Path, tmp_path: Path) -> None:
    record = _hooked(home, tmp_path, allow=False)
    daemon = new_daemon()
    _run_hooks(daemon)
    job = ok("create", "--raw", "policed").stdout.strip()
    ok("cancel", job)
    ok("create", "--raw", "another")
    _run_hooks(daemon)
    assert not record.exists()


def test_bad_hooks_are_config_errors(ok, cli, home: Path) -> None:
    home.mkdir(exist_ok=True)
    for text, message in (('[hooks]\non_done = ["/bin/true"]', "unknown hook hooks.on_done"),
                          ('[hooks]\non_error = "/bin/true {id}"', "must be a list of strings"),
                          ('[hooks]\non_error = ["true", "{id}"]', "must be a full path")):  # fmt: skip
        (home / "config.toml").write_text(text + "\n")
        result = cli("config", "check")
        assert result.exit_code != 0
        assert message in result.stderr


def test_the_daemons_log_has_every_processs_transitions(ok, home: Path, tmp_path: Path) -> None:
    """The daemon writes its own transitions and the CLI's (resume, complete) to its log, from the event log."""
    from tests.conftest import run_process
    from tests.daemonproc import DaemonProcess, wait_for

    source = tmp_path / "source.bin"
    source.write_bytes(b"l" * 10_000)
    daemon = DaemonProcess(home).start()
    try:
        wait_for(lambda: "daemon started" in run_process("daemon", "log").stdout)
        job = run_process("create", "--raw", "logged").stdout.strip()
        run_process("addfile", job, str(source), str(tmp_path / "copy.bin"))
        run_process("resume", job)
        wait_for(lambda: run_process("getstate", job).stdout.strip() == "TRANSFERRED")
        run_process("complete", job)
        wait_for(lambda: "-> ACKNOWLEDGED" in run_process("daemon", "log").stdout)
        log = run_process("daemon", "log").stdout
    finally:
        daemon.close()
    lines = [line for line in log.splitlines() if job in line and "'logged'" in line]
    wanted = ["created SUSPENDED", "state SUSPENDED -> QUEUED", "-> TRANSFERRED", "state TRANSFERRED -> ACKNOWLEDGED"]
    found = [next(i for i, line in enumerate(lines) if text in line) for text in wanted]
    assert found == sorted(found), lines  # each once, in order: CLI and daemon transitions alike
