"""The daemon's process: the lock that proves it runs (one per queue), its pid file, log, signals and start-up."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitscli import paths
from bitscli.errors import DaemonError

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
    taken = _take_lock()
    if isinstance(taken, Running):
        return taken
    taken.release()
    return None


@contextlib.contextmanager
def stopped() -> Iterator[None]:
    """Hold the daemon's lock: no daemon runs while the block does (queue recover replaces the queue file)."""
    taken = _take_lock()
    if isinstance(taken, Running):
        raise DaemonError(
            f"the daemon is running{f' (pid {taken.pid})' if taken.pid > 0 else ''} and has the queue open",
            hint="stop it first: bitscli daemon stop (a command that needs it starts it again afterwards)",
        )
    try:
        yield
    finally:
        taken.release()


def _take_lock() -> Any:
    """The daemon's lock, taken without waiting (a filelock.FileLock to release), or the daemon that holds it."""
    from filelock import FileLock, Timeout

    paths.ensure_private_dir(paths.state_dir())
    lock = FileLock(lock_path(), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _read_pid() or Running(-1, time.time())
    except OSError as exc:
        raise _unwritable(exc) from None
    return lock


def _unwritable(exc: OSError) -> DaemonError:
    return DaemonError(
        f"cannot use the daemon's files in {paths.state_dir()}: {exc.strerror or exc}",
        hint="the state directory must be writable (look for a read-only mount or chattr +i)",
    )


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
    with contextlib.suppress(OSError):  # gone already, or a directory made read-only under us
        pid_path().unlink()


UNIT = """\
# systemd user unit for the bitscli daemon: jobs go on after a reboot, and after a crash.
# Install:  bitscli daemon unit > ~/.config/systemd/user/bitscli.service
#           systemctl --user daemon-reload && systemctl --user enable --now bitscli
#           loginctl enable-linger "$USER"   # run even when you are not logged in
[Unit]
Description=bitscli background transfer daemon
Documentation=https://pypi.org/project/bitscli/

[Service]
Type=simple
ExecStart={exec_start}
{environment}# A background service, as BITS is: low CPU and I/O priority for every transfer.
Nice=10
IOSchedulingClass=idle
# SIGTERM makes the daemon stop its transfers with their progress saved; SIGHUP rereads the config file.
KillSignal=SIGTERM
ExecReload=/bin/kill -HUP $MAINPID
TimeoutStopSec=60
# A daemon that `resume` started first makes this one exit 11; it is started again, and takes over once that
# one stops.
Restart=on-failure
RestartSec=5

[Install]
WantedBy=default.target
"""


def unit(exec_start: str, home: Path | None) -> str:
    """The user unit for this installation: ``exec_start`` runs `daemon run`; ``home`` is BITSCLI_HOME if set."""
    environment = f"Environment=BITSCLI_HOME={home}\n" if home is not None else ""
    return UNIT.format(exec_start=exec_start, environment=environment)


def setup_logging(to_stderr: bool) -> None:
    import logging.handlers  # only the daemon logs to a file: the CLI's `transfer` and `resume` skip the import

    paths.ensure_private_dir(paths.state_dir())
    handler: logging.Handler = logging.handlers.RotatingFileHandler(
        log_path(), maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    os.chmod(log_path(), 0o600)
    formatter = _RedactingFormatter("%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(formatter)
    logger = logging.getLogger("bitscli")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    if to_stderr:
        console = logging.StreamHandler()
        console.setFormatter(formatter)
        logger.addHandler(console)


class _RedactingFormatter(logging.Formatter):
    """The log is output too: a URL's password never reaches it, not even inside a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        from bitscli.inputs.names import redact_text

        return redact_text(super().format(record))


def on_termination(callback: Callable[[], None], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT stop the daemon, SIGHUP reloads its config; the handlers only set flags, the loop does
    the work (huey's rule)."""
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: callback())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reload())


def run_foreground(slice_seconds: float) -> Running | None:
    """Run the daemon in this process until a signal stops it; the daemon already running, if there is one."""
    from filelock import FileLock, Timeout

    from bitscli import config, libc
    from bitscli.clock import SystemClock
    from bitscli.daemon import wakeup
    from bitscli.daemon.loop import Daemon

    paths.ensure_private_dir(paths.state_dir())
    lock = FileLock(lock_path(), mode=0o600)
    try:
        lock.acquire(timeout=2)  # a short wait: `daemon status` may be probing the lock right now
    except Timeout:
        return running() or Running(-1, time.time())
    except OSError as exc:
        raise _unwritable(exc) from None
    # The signals are caught before the pid file says the daemon runs: a SIGHUP from a service manager that
    # read it must not find the default action (which ends the process) still in place.
    stop, reload = threading.Event(), threading.Event()

    def on_stop() -> None:
        stop.set()
        wakeup.nudge()  # the loop may be waiting for a nudge: this is one

    def on_reload() -> None:
        reload.set()
        wakeup.nudge()

    on_termination(on_stop, on_reload)
    wake: wakeup.Listener | None = None
    try:
        try:
            write_pid()
            # systemd sets JOURNAL_STREAM for a service whose stderr goes to the journal: log there too.
            setup_logging(to_stderr=sys.stderr.isatty() or bool(os.environ.get("JOURNAL_STREAM")))
        except OSError as exc:
            raise _unwritable(exc) from None
        libc.keep_io_buffers()
        # Load the transfer engine now, so the first job does not wait for it.
        from bitscli.daemon import downloads, uploads  # noqa: F401

        settings = config.load()
        wake = wakeup.Listener()
        daemon = Daemon(
            paths.queue_path(), SystemClock(), slice_seconds, settings.job_inactivity_days * 86_400,
            settings.allow_notify_command_line, wake, settings.bandwidth, paths.config_file(),
        )  # fmt: skip
        daemon.stop_event, daemon.reload_requested = stop, reload
        daemon.background_threads = settings.background_threads
        daemon.hook_commands = settings.hooks
        logging.getLogger("bitscli.daemon").info("daemon started, pid %s, queue %s", os.getpid(), paths.queue_path())
        daemon.run()
    finally:
        if wake is not None:
            wake.close()
        remove_pid()
        lock.release()
    return None
