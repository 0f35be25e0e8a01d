"""Single key presses on a terminal, heard between redraws: how `monitor` quits on q."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any


class Keys:
    """Waits that end early when a key is pressed; without a terminal on stdin they are plain sleeps."""

    def __init__(self) -> None:
        self._saved: list[Any] | None = None
        self._fd = -1
        if sys.platform == "win32" or not sys.stdin.isatty():
            return
        import termios
        import tty

        self._fd = sys.stdin.fileno()
        try:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)  # one key at a time, no echo; Ctrl-C still interrupts
        except termios.error:
            self._saved = None

    def wait(self, seconds: float) -> str:
        """Sleep up to ``seconds``; the key pressed meanwhile ("" if none)."""
        if sys.platform == "win32" and sys.stdin.isatty():
            import msvcrt

            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if msvcrt.kbhit():
                    return msvcrt.getwch()
                time.sleep(0.05)
            return ""
        if self._saved is None:
            time.sleep(seconds)
            return ""
        import select

        ready, _, _ = select.select([self._fd], [], [], seconds)
        return os.read(self._fd, 1).decode(errors="replace") if ready else ""

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None


@contextlib.contextmanager
def listening() -> Iterator[Keys]:
    keys = Keys()
    try:
        yield keys
    finally:
        keys.close()
