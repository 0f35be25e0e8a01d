"""Long bodies written around the page cache (O_DIRECT), from page-aligned buffers the socket reads into."""

from __future__ import annotations

import contextlib
import errno
import functools
import mmap
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from bitscli.transfer.hashing import HashBehind
from bitscli.transfer.sink import PartWriter
from bitscli.transfer.types import Stopped

MIN_BYTES = 32 << 20  # a body at least this long goes this way; shorter ones gain little for 12 MiB of buffers
BUFFER = 4 << 20  # 1 MiB writes left the disk idle between them
BUFFERS = 3  # one filling, one queued, one being written
FLUSH_SECONDS = 0.25  # a buffer that fills slower than this (a slow link) is written as far as it is aligned
ALIGN = 4096  # O_DIRECT wants offsets, lengths and memory aligned to the logical block size: 4 KiB covers disks
# Bytes written this way are on the disk already: a checkpoint's fsync has only the disk's cache and the size
# to flush, and more of them cost more than the work a crash may redo. The one-second checkpoints still apply.
CHECKPOINT_BYTES = 128 << 20

_Chunk = tuple[mmap.mmap, int, int]  # a buffer, how many of its bytes to write, and where in the part file


def open_for(part: str) -> int | None:
    """A second descriptor on the part file for direct writes; None where the system or filesystem has none."""
    flag = getattr(os, "O_DIRECT", 0)  # Linux and the BSDs; macOS and Windows keep the page-cache path
    if not flag:
        return None
    try:
        return os.open(part, os.O_WRONLY | flag)
    except OSError:  # EINVAL: a filesystem without direct I/O (some FUSE and network filesystems)
        return None


class DirectPartWriter(PartWriter):
    """A PartWriter whose writer thread writes whole buffers with O_DIRECT at aligned offsets.

    Through the page cache every byte is copied once more and written back by the kernel, and the checkpoint
    fsyncs wait for that write-back; this way costs about half the CPU, and less time. The bytes before the first
    aligned offset, a last buffer's unaligned end, and everything after a filesystem refused a direct write
    (EINVAL) go through the page cache; fsync covers both, so checkpoints mean what they always mean.
    """

    def __init__(self, direct_fd: int, *args: Any) -> None:
        super().__init__(*args)
        self.direct_fd = direct_fd  # -1 once closed: a descriptor number is never closed twice
        self.syncer.every_bytes = CHECKPOINT_BYTES
        self.direct_bytes = 0  # how many bytes went around the page cache
        self._refused = False

    def pump_into(
        self, readinto1: Callable[[memoryview], int], stop_requested: Callable[[], bool],
        read_errors: tuple[type[BaseException], ...], read_error: Callable[[Any], Exception],
    ) -> int:  # fmt: skip
        """As pump(), with ``readinto1`` (at most one socket read into the view; 0 at the end) filling buffers."""
        pool: queue.Queue[mmap.mmap] = queue.Queue()
        if self.hashing is not None:
            self.hash_behind = HashBehind(self.hashing, depth=2)
        for _ in range(BUFFERS + 2 * (self.hash_behind is not None)):  # and two being hashed
            pool.put(mmap.mmap(-1, BUFFER))
        chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=BUFFERS)
        thread = threading.Thread(target=self._run_direct, args=(chunks, pool), name="part-writer", daemon=True)
        thread.start()
        self.behind = (chunks, thread)
        buffer, filled, position = pool.get(), 0, self.offset  # the buffer being filled, and where it goes

        def copy() -> None:
            nonlocal buffer, filled, position
            head = -position % ALIGN  # a resumed file: the first buffer ends at the first aligned offset
            while self.error is None:
                if stop_requested():
                    raise Stopped
                want = head or BUFFER
                started = time.monotonic()
                while filled < want:
                    got = readinto1(memoryview(buffer)[filled:want])
                    if not got:
                        return  # the body's end (or a cut: the caller compares the offset with the length)
                    filled += got
                    if time.monotonic() - started >= FLUSH_SECONDS:
                        break
                ready = filled if head and filled == head else filled - filled % ALIGN
                if not ready:
                    continue  # under one block so far: keep filling
                spare = pool.get()  # waits while the disk is behind: the socket's backlog is the read-ahead
                carried = filled - ready
                spare[:carried] = buffer[ready:filled]
                chunks.put((buffer, ready, position))
                buffer, filled, position = spare, carried, position + ready
                head = -position % ALIGN

        def flush() -> None:
            if filled:
                chunks.put((buffer, filled, position))

        return self.guarded(copy, flush, read_errors, read_error)

    def _run_direct(self, chunks: queue.Queue[_Chunk | None], pool: queue.Queue[mmap.mmap]) -> None:
        while (chunk := chunks.get()) is not None:
            if self.error is None:  # after an error, only drain: the reader stops at its next buffer
                self._capture(self._write_direct, *chunk)
            buffer = chunk[0]
            if self.hash_behind is not None and self.error is None:  # hashed, then back to the reader
                self.hash_behind.feed(memoryview(buffer)[: chunk[1]], functools.partial(pool.put, buffer))
            else:
                pool.put(buffer)  # back to the reader, error or not, so it never waits for a buffer in vain

    def _write_direct(self, buffer: mmap.mmap, length: int, position: int) -> None:
        view = memoryview(buffer)[:length]
        done = 0
        aligned = 0 if self._refused or position % ALIGN else length - length % ALIGN
        if aligned:
            try:
                done = os.pwrite(self.direct_fd, view[:aligned], position)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._refused = True  # this filesystem takes no direct writes after all: the page cache
            self.direct_bytes += done
        while done < length:  # the unaligned rest, or all of it, through the page cache
            done += os.pwrite(self.fd, view[done:], position + done)
        self.offset = position + length
        self.syncer.maybe_checkpoint(self.offset)

    def close(self) -> int:
        try:
            return super().close()
        finally:
            if self.direct_fd >= 0:
                fd, self.direct_fd = self.direct_fd, -1
                with contextlib.suppress(OSError):
                    os.close(fd)
