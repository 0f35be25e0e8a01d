"""One daemon per queue: the lock that proves it runs, its pid file, its log file and its signals."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bitscli import paths

LOG_BYTES = 1 << 20  # rotate the log at 1 MiB, keeping three old files
LOG_BACKUPS = 3


def lock_path() -> Path:
    return paths.state_dir() / "daemon.lock"


def pid_path() -> Path:
    return paths.state_dir() / "daemon.pid"


def log_path() -> Path:
    return paths.state_dir() / "daemon.log"


@dataclass(frozen=True)
class Running:
    pid: int
    started: float  # wall-clock start time


def running() -> Running | None:
    """The running daemon, found by trying its lock: a lock held means a live process (no stale pid files)."""
    from filelock import FileLock, Timeout

    paths.ensure_private_dir(paths.state_dir())
    lock = FileLock(lock_path(), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _read_pid() or Running(-1, time.time())
    lock.release()
    return None


def _read_pid() -> Running | None:
    try:
        pid_text, started_text = pid_path().read_text().split()[:2]
        return Running(int(pid_text), float(started_text))
    except (OSError, ValueError):
        return None


def write_pid() -> None:
    path = pid_path()
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{os.getpid()} {time.time()}\n")
    os.replace(temporary, path)


def remove_pid() -> None:
    with contextlib.suppress(FileNotFoundError):
        pid_path().unlink()


def setup_logging(to_stderr: bool) -> None:
    import logging.handlers  # only the daemon logs to a file: 11 ms the CLI's `transfer` and `resume` skip

    paths.ensure_private_dir(paths.state_dir())
    handler: logging.Handler = logging.handlers.RotatingFileHandler(
        log_path(), maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    os.chmod(log_path(), 0o600)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(formatter)
    logger = logging.getLogger("bitscli")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    if to_stderr:
        console = logging.StreamHandler()
        console.setFormatter(formatter)
        logger.addHandler(console)


def on_termination(callback: object) -> None:
    """SIGTERM, SIGINT and SIGHUP only set a flag; the loop does the work (huey's rule)."""
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: callback())  # type: ignore[operator]
