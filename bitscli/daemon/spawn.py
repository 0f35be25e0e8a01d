"""Start the daemon detached (POSIX: a new session; Windows: creation flags) and stop it gracefully."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from bitscli.daemon import process, wakeup
from bitscli.errors import DaemonError


def start(wait: float = 15.0) -> process.Running:
    """Start a daemon for this queue unless one runs; returns it once it holds the lock."""
    current = process.running()
    if current is not None:
        return current
    flags = 0
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
    child = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "daemon", "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=os.name != "nt",  # setsid: no controlling terminal, survives the shell
        creationflags=flags,
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        current = process.running()
        if current is not None and current.pid > 0:
            return current
        if child.poll() is not None and process.running() is None:
            raise DaemonError(
                f"the daemon exited at start (status {child.returncode})",
                hint=f"run 'bitscli daemon run' to see why, or read {process.log_path()}",
            )
        time.sleep(0.05)
    raise DaemonError("the daemon did not start in time", hint=f"see {process.log_path()}")


def ensure_running() -> None:
    """Start the daemon for `resume` and `transfer`, unless BITSCLI_NO_AUTOSTART is set or one runs.

    A daemon that takes the nudge is running: that answer skips the lock probe, and the filelock import with it.
    """
    if not os.environ.get("BITSCLI_NO_AUTOSTART") and not wakeup.nudge():
        start()


def stop(wait: float = 60.0) -> bool:
    """Ask the daemon to stop (SIGTERM) and wait until it has saved its progress; False if none ran."""
    current = process.running()
    if current is None:
        return False
    if current.pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.running() is None:
            return True
        time.sleep(0.1)
    raise DaemonError(
        f"the daemon (pid {current.pid}) did not stop within {wait:.0f} s", hint="kill it with: kill -9 PID"
    )
