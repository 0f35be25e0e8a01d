"""A running job as its reporters see it: its id, its stop event, its abort slot, its pace, and the clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from bitscli.clock import Clock
from bitscli.transfer.types import CHUNK


@dataclass
class JobControl:
    """Shared by a job's worker thread, the daemon loop that may stop it, and whatever records its progress."""

    job_id: str
    clock: Clock
    stopping: threading.Event = field(default_factory=threading.Event)
    abort: Callable[[], None] | None = None  # breaks the blocked read or send of the transfer in flight
    pace: Callable[[int], int] = field(default=lambda nbytes: CHUNK)  # the job's pacer (bandwidth.py): unpaced

    def stop(self) -> None:
        """Ask the transfer to stop; a blocked read is broken so this takes effect within a second."""
        self.stopping.set()
        abort = self.abort
        if abort is not None:
            abort()

    def transferring(self, abort: Callable[[], None]) -> None:
        """A transfer started that ``abort()`` breaks; a stop asked for meanwhile breaks it at once."""
        self.abort = abort
        if self.stopping.is_set():
            abort()

    def stop_requested(self) -> bool:
        return self.stopping.is_set()
