"""Calls only some platforms have: syncfs, malloc tuning, page-cache advice, background CPU and I/O priority."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable

# mallopt(3) parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Buffers below this come from the heap, which keeps this much free memory before giving it back.
MMAP_THRESHOLD_BYTES = 8 << 20
TRIM_THRESHOLD_BYTES = 32 << 20
DROP_WINDOW = 128 << 20  # write-back lags the writes by tens of MiB here


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)  # the C library this interpreter already uses
    except OSError:
        return None


def syncfs() -> Callable[[int], int] | None:
    """syncfs(2), or None where the C library has no such call."""
    return getattr(_libc(), "syncfs", None)


def keep_io_buffers() -> bool:
    """Let the heap reuse 256 KiB-4 MiB socket and file buffers instead of mapping fresh pages for each.

    By default glibc serves these sizes with mmap, or trims them off the heap's top as soon as they are
    freed; either way every buffer is page-faulted in anew, and a long transfer spends most of its time in
    those faults (README: Why it is built this way). A fixed mmap threshold also stops
    glibc's dynamic adjustment (mallopt(3)). Returns False where there is no glibc mallopt (musl, macOS).
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or not hasattr(_libc(), "gnu_get_libc_version"):
        return False  # musl's mallopt accepts and ignores everything
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def write_back_and_drop(fd: int, start: int, end: int) -> None:
    """Start writing bytes ``start``-``end`` back to disk, and drop the clean pages up to DROP_WINDOW before them.

    Linux starts asynchronous write-back for POSIX_FADV_DONTNEED and frees the pages that are clean; pages
    still being written stay, so the window catches them on later calls. A transfer that does this behind
    itself reuses a few hot pages instead of filling the page cache with fresh ones, leaves other
    programs' cached files alone, and finds little left for its final fsync; with no window the cache fills
    with first-touch pages instead. A no-op without fadvise (macOS, Windows).
    """
    if hasattr(os, "posix_fadvise") and end > start:
        first = max(0, start - DROP_WINDOW)
        os.posix_fadvise(fd, first, end - first, os.POSIX_FADV_DONTNEED)


# ioprio_set(2): no C library wrapper, so the raw system call; its number differs by architecture.
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 314}
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread
_IOPRIO_CLASS_IDLE = 3  # gets the disk only when nobody else wants it
_IOPRIO_CLASS_SHIFT = 13
BACKGROUND_NICE = 10


def be_background() -> bool:
    """Lower the calling thread: nice 10, and the idle I/O class (Linux); False where either is not possible.

    Both are per thread on Linux and passed on to the threads it starts (its part writer, its fsyncs).
    """
    lowered = False
    tid = threading.get_native_id()
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
            lowered = True
        except OSError:
            pass
    number = _SYS_IOPRIO_SET.get(os.uname().machine) if hasattr(os, "uname") else None
    libc = _libc()
    if number is not None and libc is not None:
        value = _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT
        lowered = libc.syscall(number, _IOPRIO_WHO_PROCESS, tid, value) == 0 and lowered
    return lowered
