"""bitscli on a real terminal (a pseudo-terminal): monitor quits on q, the bar speaks binary units and ends
without `?`, piped monitor lines keep their fields (issue 16 item 18)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemonproc import DaemonProcess
from tests.faultserver import FaultServer, serving

WAIT = 60.0
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def on_terminal(args: list[str], press: tuple[bytes, bytes] | None = None) -> tuple[int, str, list[int]]:
    """Run bitscli with a pseudo-terminal, 150 columns wide, as stdin and stdout; ``press`` = (when this text
    has appeared, type these keys). Returns the exit status, the screen text without escapes, and the
    terminal's local flags before and after."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
    before = termios.tcgetattr(terminal)[3]
    process = subprocess.Popen(
        [sys.executable, "-m", "bitscli", *args], stdin=terminal, stdout=terminal, stderr=terminal,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "150"}, start_new_session=True,
    )  # fmt: skip
    received = b""
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the child closed its side
                    break
                received += chunk
                if press is not None and press[0] in ESCAPES.sub(b"", received):
                    os.write(controller, press[1])
                    press = None
            elif process.poll() is not None:
                break
        status = process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
        after = termios.tcgetattr(terminal)[3]
        os.close(controller)
        os.close(terminal)
    return status, ESCAPES.sub(b"", received).decode(errors="replace"), [before, after]


@pytest.fixture
def daemon(home: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(home).start()
    yield process
    process.close()


@pytest.fixture
def served_file() -> Iterator[FaultServer]:
    yield from serving("/f.bin", os.urandom(6 << 20))


def test_monitor_quits_on_q_and_gives_the_terminal_back(ok, home: Path) -> None:
    ok("create", "watched")
    status, screen, (before, after) = on_terminal(["monitor", "--refresh", "30"], press=(b"q quits", b"q"))
    assert status == 0  # q, not the 30-second redraw nor the test's timeout
    assert "watched" in screen
    assert after == before  # the terminal's echo and line mode are restored


def test_the_transfer_bar_uses_binary_units_and_ends_without_question_marks(
    ok, home: Path, daemon: DaemonProcess, served_file: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    status, screen, _ = on_terminal(["transfer", "bar", served_file.url("/f.bin"), str(tmp_path / "f.bin")])
    assert status == 0, screen
    final = screen[screen.rindex("bar TRANSFERRED") :].splitlines()[0]  # the last frame (frames share a line)
    assert "6.0/6.0 MiB" in final
    assert re.search(r"\d MiB/s|\d KiB/s|\d GiB/s|\d B/s", final), final  # the average rate, in binary units
    assert "?" not in final
    assert " MB/s" not in screen  # one unit system: no decimal rates anywhere


def test_piped_monitor_lines_keep_the_same_fields(ok, home: Path, tmp_path: Path) -> None:
    job = ok("create", "--raw", "piped").stdout.strip()
    ok("addfile", job, "http://127.0.0.1:9/a", str(tmp_path / "a"))
    ok("create", "idle")
    out = ok("monitor", "--refresh", "0.1", "--count", "2").stdout
    lines = [line for line in out.splitlines()[1:] if line]
    assert len(lines) == 4
    for line in lines:
        fields = line.split(" | ")
        assert len(fields) == 3, line  # the /LIST line, the rate, the bandwidth policy
        assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)/s", fields[1]), line
        assert fields[2] == "-"  # suspended jobs: no work for the daemon, so no policy


def test_the_monitors_rate_is_averaged_over_a_few_seconds(monkeypatch) -> None:
    """The daemon records bytes at checkpoints: a job capped at 10 MiB/s that records 20 MiB every 2 s showed
    0 and 20 MiB/s on alternate one-second redraws (and 12 MiB/s against its 10 MiB/s cap in a tmux capture)."""
    import dataclasses

    from bitscli import liveview
    from bitscli.model import Job, JobFile, JobState, JobType

    now = [0.0]
    monkeypatch.setattr(liveview.time, "monotonic", lambda: now[0])
    monitor = liveview.Monitor(1.0)
    job = Job("{J}", "j", JobType.DOWNLOAD, "me", 0.0, 0.0, state=JobState.TRANSFERRING)
    seen = []
    for second in range(12):
        now[0] = float(second)
        done = JobFile("http://h/f", "/tmp/f", bytes_total=1 << 30, bytes_transferred=(second // 2) * (20 << 20))
        recorded = dataclasses.replace(job, files=(done,))
        seen.append(monitor._rates([recorded]).get("{J}", 0.0) / (1 << 20))
    assert all(8 <= rate <= 12.5 for rate in seen[6:]), seen  # one redraw's rate would be 0 or 20
