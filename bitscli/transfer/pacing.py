"""Reads paced by the daemon's limiter: after each read, Progress.pace says how much may come next, and when."""

from __future__ import annotations

from collections.abc import Callable

Pace = Callable[[int], int]  # the bytes just read -> the next read's size (sleeping first while they are early)


def paced_read(read: Callable[[int], bytes], pace: Pace) -> Callable[[], bytes]:
    """``read(size)`` as a pump's ``read()``, each read no larger than the pace allows."""
    size = pace(0)

    def next_read() -> bytes:
        nonlocal size
        data = read(size)
        size = pace(len(data))
        return data

    return next_read


def paced_into(readinto: Callable[[memoryview], int], pace: Pace) -> Callable[[memoryview], int]:
    """``readinto(view)`` with the view cut to the size the pace allows."""
    size = pace(0)

    def next_read(view: memoryview) -> int:
        nonlocal size
        got = readinto(view[:size])
        size = pace(got)
        return got

    return next_read
