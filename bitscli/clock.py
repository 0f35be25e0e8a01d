"""The Clock protocol (wall time, monotonic time, sleep, wait) and the real clock; tests inject a fake."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (for times shown to people)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for timers and deadlines)."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep up to ``seconds``, or less once ``event`` is set; True when it is (a paced read, stopped)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)
