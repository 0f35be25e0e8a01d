"""The CLI's nudge to the daemon after it changed the queue: a datagram, so a job starts now, not at the next poll."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from pathlib import Path

from bitscli import paths


def socket_path() -> Path:
    return paths.state_dir() / "daemon.wake"


class Listener:
    """The daemon's end: a datagram socket in the private state directory, waited on between polls.

    Where it cannot be made (no AF_UNIX, as on Windows, or a state directory whose path is longer than a
    socket address allows), the daemon only polls the queue, as it does anyway for changes nobody announced.
    """

    def __init__(self, bind: bool = True) -> None:
        self._sock: socket.socket | None = None
        family = getattr(socket, "AF_UNIX", None)
        if not bind or family is None:
            return
        path = socket_path()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a dead daemon's: the caller holds the instance lock, so none other listens
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self._sock = sock

    @property
    def listening(self) -> bool:
        return self._sock is not None

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Return when nudged, once ``stop`` is set (whoever sets it nudges too), or after ``timeout`` seconds;
        True when a nudge came."""
        if self._sock is None:
            stop.wait(timeout)
            return False
        if not stop.is_set():
            select.select([self._sock], [], [], timeout)
        nudged = False
        with contextlib.suppress(OSError):  # BlockingIOError once every queued nudge is read
            while self._sock.recv(64):
                nudged = True
        return nudged

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                socket_path().unlink()


def nudge() -> bool:
    """Wake this queue's daemon now; True when one received the nudge, so it is running.

    False says nothing either way: no daemon, a platform without the socket, or a full socket buffer (then
    the daemon is due to wake anyway). Callers that must know fall back to instance.running().
    """
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        return False
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"!", str(socket_path()))
    except OSError:  # no socket file, or nobody bound to it (a daemon that died): ENOENT, ECONNREFUSED
        return False
    return True
