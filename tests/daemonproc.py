"""A real daemon process for tests: start, kill -9, restart, stop; never left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bitscli.daemon.loop import Daemon
from bitscli.model import JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job


class DaemonProcess:
    def __init__(self, home: Path, slice_seconds: float = 300.0, file_size_limit: int | None = None) -> None:
        self.home = home
        self.slice_seconds = slice_seconds
        self.file_size_limit = file_size_limit  # RLIMIT_FSIZE, as `ulimit -f` sets it
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        env = {**os.environ, "BITSCLI_HOME": str(self.home)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bitscli", "daemon", "run", "--slice", str(self.slice_seconds)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=self._limits if self.file_size_limit is not None else None,
        )
        deadline = time.monotonic() + 30
        pid_file = self.home / "daemon.pid"
        while time.monotonic() < deadline:
            if pid_file.exists() and pid_file.read_text().split()[:1] == [str(self.process.pid)]:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daemon exited: {self.process.stderr.read().decode() if self.process.stderr else ''}"
                )
            time.sleep(0.02)
        raise RuntimeError("daemon did not start")

    def _limits(self) -> None:
        import resource

        assert self.file_size_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, self.file_size_limit))

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: a graceful stop."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class FakeClock:
    """Injected time: tests move it forward instead of sleeping."""

    def __init__(self, start: float | None = None) -> None:
        # From the real time by default: jobs made through the CLI carry real timestamps, and a fixed
        # start would drift into the 90-day inactivity limit as the calendar moves on.
        self.wall = time.time() if start is None else start
        self.mono = 1000.0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.advance(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll a condition on real processes; the assertion never depends on how long it took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def settle(daemon: Daemon) -> None:
    """Let the workers the last tick started finish."""
    for worker in list(daemon.workers.values()):
        worker.join(60)


def run_once(daemon: Daemon) -> None:
    """One tick, then wait for the transfers it started."""
    daemon.tick()
    settle(daemon)


def state(ref: str) -> JobState:
    ctx = open_context()
    try:
        return get_job(ctx, ref).state
    finally:
        ctx.queue.close()
