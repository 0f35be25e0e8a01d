"""The part file's writer thread: the disk write overlaps the next network read; checkpoints follow fsyncs."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bitscli import libc
from bitscli.transfer import files
from bitscli.transfer.classify import local_error, part_file_error
from bitscli.transfer.hashing import HashBehind, StreamHash
from bitscli.transfer.types import Stopped

if TYPE_CHECKING:
    from bitscli.transfer.types import Progress, Version


CHECKPOINT_BYTES = 32 << 20  # fsync and record progress at least this often...
CHECKPOINT_SECONDS = 1.0  # ...or this often, whichever comes first
INLINE_BYTES = 1 << 20  # small files are written by the reading thread itself
# Read-ahead while the disk is busy, in 1 MiB reads. Two are as fast as eight, and keep the memory of many
# concurrent foreground downloads down (README: Why it is built this way).
QUEUED_CHUNKS = 2


class PartWriter:
    """Writes chunks at the end of the part file, past the first MiB in a thread of its own.

    The socket and the page cache each cost about as much copying: with the write on its own thread the two
    overlap instead of taking turns on one core (README: Why it is built this way).
    """

    def __init__(self, fd: int, offset: int, progress: Progress, version: Version, url: str) -> None:
        self.fd, self.offset = fd, offset  # bytes written so far; read it only after close()
        self.syncer = Syncer(fd, progress, version, url)
        self.error: BaseException | None = None  # the first disk error; the reader stops when it sees it
        # The writer thread and its queue, made once INLINE_BYTES are written (most files need neither).
        self.behind: tuple[queue.Queue[Any], threading.Thread] | None = None  # close() sends it None, then joins
        self.start, self.closed = offset, False
        self.hashing: StreamHash | None = None  # updated with each block once it is written
        self.hash_behind: HashBehind | None = None  # the thread that hashes behind the writer thread

    def pump(
        self, read: Callable[[], bytes], stop_requested: Callable[[], bool],
        read_errors: tuple[type[BaseException], ...], read_error: Callable[[Any], Exception],
    ) -> int:  # fmt: skip
        """Write what ``read()`` returns until it returns nothing; the offset written, every byte on its way to disk.

        A stop, or one of ``read_errors`` (raised as ``read_error(exc)``), first saves what was written; a
        disk error stops the reading and close() raises it; anything else leaves no writer thread behind.
        """

        def copy() -> None:
            while self.error is None:
                if stop_requested():
                    raise Stopped
                chunk = read()
                if not chunk:
                    return
                self.write(chunk)

        return self.guarded(copy, lambda: None, read_errors, read_error)

    def guarded(
        self, copy: Callable[[], None], flush: Callable[[], None],
        read_errors: tuple[type[BaseException], ...], read_error: Callable[[Any], Exception],
    ) -> int:  # fmt: skip
        """Run a pump's ``copy`` loop under pump()'s rules; ``flush`` hands the writer what the loop still holds."""
        try:
            copy()
            flush()
        except Stopped:
            flush()
            self.save()
            raise
        except read_errors as exc:
            flush()
            self.save()
            raise read_error(exc) from None
        except BaseException:
            with contextlib.suppress(BaseException):
                self.close()
            raise
        return self.close()

    def write(self, chunk: bytes) -> None:
        if self.behind is None:
            if self.offset - self.start < INLINE_BYTES:
                # The first MiB is written here: a thread costs more than a small file's few short reads.
                self._capture(self._write, chunk)
                return
            chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUED_CHUNKS)
            if self.hashing is not None:
                self.hash_behind = HashBehind(self.hashing)
            thread = threading.Thread(target=self._run, args=(chunks,), name="part-writer", daemon=True)
            thread.start()
            self.behind = (chunks, thread)
        self.behind[0].put(chunk)

    def close(self) -> int:
        """Wait for every queued byte and the checkpoint in flight; the offset written. Raises a disk error."""
        if not self.closed:
            self.closed = True
            if self.behind is not None:
                chunks, thread = self.behind
                chunks.put(None)
                thread.join()
            if self.hash_behind is not None:
                self.hash_behind.close()
            if self.error is None:
                self._capture(self.syncer.finish)
        if self.error is not None:
            error, self.error = self.error, None
            if isinstance(error, OSError):
                # A full disk (say) stops the writes, but the bytes before the failing one are written: made
                # durable and recorded now, the retry starts from them instead of from the last checkpoint.
                with contextlib.suppress(Exception):
                    self.syncer.save(self.offset)
                raise local_error(error, "part file") from None
            raise error
        return self.offset

    def save(self) -> int:
        """Close, then fsync and checkpoint what was written (a stop, or a body cut short); the offset."""
        offset = self.close()
        self.syncer.save(offset)
        return offset

    def _run(self, chunks: queue.Queue[bytes | None]) -> None:
        while (chunk := chunks.get()) is not None:
            if self.error is None:  # after an error, only drain: the reader stops at its next chunk
                self._capture(self._write, chunk)

    def _write(self, chunk: bytes) -> None:
        files.write_all(self.fd, chunk)
        if self.hash_behind is not None:
            self.hash_behind.feed(chunk)
        elif self.hashing is not None:  # the first MiB, written by the reading thread itself
            self.hashing.update(chunk)
        self.offset += len(chunk)
        self.syncer.maybe_checkpoint(self.offset)

    def _capture(self, call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
        except BaseException as exc:  # handed to the reading thread by close()
            self.error = exc


class Syncer:
    """At most one fsync-then-checkpoint in flight, started every CHECKPOINT_BYTES or CHECKPOINT_SECONDS.

    It runs behind the writes, so the disk's write-back overlaps the network instead of stalling it.
    """

    def __init__(self, fd: int, progress: Progress, version: Version, url: str) -> None:
        self.fd, self.progress, self.version, self.url = fd, progress, version, url
        self.synced_at = time.monotonic()
        self.synced_offset: int | None = None  # None until the first background checkpoint
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.dropped_offset = 0  # the part file's pages below this were fsynced and let go from the cache
        self.every_bytes = CHECKPOINT_BYTES

    def maybe_checkpoint(self, offset: int) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self._raise_pending()
        # Small files finish before the first interval and are saved once, at the end, with no thread.
        due_bytes = offset - (self.synced_offset or 0) >= self.every_bytes
        if due_bytes or time.monotonic() - self.synced_at >= CHECKPOINT_SECONDS:
            self.synced_at, self.synced_offset = time.monotonic(), offset
            self.thread = threading.Thread(target=self._sync, args=(offset,), daemon=True)
            self.thread.start()

    def _sync(self, offset: int) -> None:
        try:
            os.fsync(self.fd)  # every byte below `offset` was written before this started
            _still_linked(self.fd)
            libc.write_back_and_drop(self.fd, self.dropped_offset, offset)
            self.dropped_offset = offset
            self.progress.checkpoint(offset, self.version, self.url)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
        self._raise_pending()

    def save(self, offset: int) -> None:
        """Wait for the checkpoint in flight, then fsync and checkpoint ``offset`` (every byte below it written)."""
        self.finish()
        try:
            os.fsync(self.fd)
            _still_linked(self.fd)
        except OSError as exc:
            raise part_file_error(exc, "part file") from None
        self.progress.checkpoint(offset, self.version, self.url)

    def _raise_pending(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            if isinstance(error, OSError):
                raise part_file_error(error, "part file")
            raise error


def _still_linked(fd: int) -> None:
    """Bytes written to a part file that was unlinked (its directory removed, say) are on no disk anyone will
    read: no checkpoint may count them. Raises ENOENT then."""
    if os.fstat(fd).st_nlink == 0:
        raise FileNotFoundError(errno.ENOENT, "the part file was removed while it was written")
