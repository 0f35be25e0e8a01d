"""The engine's side of part files: opened at the durable offset, made ahead, restarted, written in full."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


def open_part(part: str, offset: int) -> tuple[int, int]:
    """Open the part file for writing at the durable offset; returns (fd, offset).

    Bytes past the recorded offset were never acknowledged (the daemon may have died before the fsync),
    so they are cut off; a part file shorter than the offset (lost, or the disk lied) restarts lower.
    """
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        start = min(size, offset)
        if size != start:
            os.ftruncate(fd, start)
        os.lseek(fd, start, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd, start


class Precreator:
    """Creates the part files of the next files on a thread of its own, while the current one downloads.

    Creating a file (the inode, not the bytes) costs as much system time as fetching a small file over
    loopback; opening an existing one costs next to nothing. Made ahead, it overlaps the requests instead of
    adding to them. Batches of several files leave the thread time to get the GIL and the CPU (one file ahead
    was often late). A failure is left for open_part to meet and report in its turn.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None  # started by the first batch
        self.until = -1  # the highest file index asked for

    def create(self, parts: list[str], until: int) -> None:
        self.until = until
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor  # deferred: complete and cancel import this module

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-files")
        self._executor.submit(_create_empty, parts)

    def close(self) -> None:
        """Wait for the creations in flight, so none lands after the job's part files were cleaned up."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _create_empty(parts: list[str]) -> None:
    for part in parts:
        with contextlib.suppress(OSError):
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT, 0o644))


def restart(fd: int) -> None:
    """Throw the part file's content away: the remote changed or ignored our range."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
