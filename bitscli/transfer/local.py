"""file:// and local-path downloads: the same part files, offsets and restart rules as HTTP."""

from __future__ import annotations

import errno
import os
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from bitscli.errors import HResult
from bitscli.model import UNKNOWN, ErrorContext
from bitscli.transfer import files, sink
from bitscli.transfer.classify import TransferError, local_error, part_file_error
from bitscli.transfer.pacing import paced_read
from bitscli.transfer.types import CHUNK, Download, Progress, Stopped, Version

KERNEL_CHUNK = 8 << 20  # bytes per copy_file_range call: a stop is seen between calls


def source_path(remote: str) -> str:
    return unquote(urlsplit(remote).path) if remote.lower().startswith("file:") else remote


def copy(job: Download, progress: Progress) -> Version:
    """Copy a local source; its size and modification time stand in for HTTP validators."""
    source = source_path(job.url)
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise TransferError(
            f"cannot read the source {source}: {exc.strerror}", code=HResult.ERROR_FILE_NOT_FOUND,
            context=ErrorContext.REMOTE_FILE, transient=False,
        ) from None  # fmt: skip
    try:
        stat = os.fstat(src.fileno())
        version = Version(stat.st_size, None, str(stat.st_mtime_ns))
        try:
            fd, offset = files.open_part(job.part, job.offset)
        except OSError as exc:
            raise part_file_error(exc, job.part) from None
        try:
            if offset and version.differs_from(job.known):
                files.restart(fd)
                offset = 0
            progress.transferring(lambda: None, job.url)
            offset = _copy_in_kernel(src.fileno(), fd, offset, version, progress, job.url)
            return _copy(src, fd, offset, version, progress, job.url)  # the rest, if the kernel left any
        finally:
            os.close(fd)
    finally:
        src.close()


def _copy_in_kernel(src_fd: int, fd: int, offset: int, version: Version, progress: Progress, url: str) -> int:
    """copy_file_range(2): the kernel copies, no byte passes through Python; returns where it stopped.

    It stops early wherever the kernel cannot go on, and the read/write path takes over from there:
    - on other platforms;
    - across filesystems (EXDEV since Linux 5.19);
    - on files whose size lies (procfs says 0);
    - on errors it cannot attribute (an EIO may be either side's).
    """
    if not hasattr(os, "copy_file_range") or version.size in (UNKNOWN, 0):
        return offset
    syncer = sink.Syncer(fd, progress, version, url)
    allowed = _kernel_step(progress.pace(0))
    try:
        while offset < version.size:
            if progress.stop_requested():
                syncer.save(offset)
                raise Stopped
            try:
                size = min(KERNEL_CHUNK, version.size - offset, allowed)
                copied = os.copy_file_range(src_fd, fd, size, offset, offset)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise local_error(exc, "part file") from None  # only the part file grows
                break
            if not copied:  # the source shrank: the read path finds the end
                break
            offset += copied
            allowed = _kernel_step(progress.pace(copied))
            syncer.maybe_checkpoint(offset)
    finally:
        syncer.finish()
    return offset


def _kernel_step(paced: int) -> int:
    """How much one copy_file_range may move: the pace's size for a paced job, else KERNEL_CHUNK."""
    return KERNEL_CHUNK if paced >= CHUNK else paced


def _copy(src: BinaryIO, fd: int, offset: int, version: Version, progress: Progress, url: str) -> Version:
    """This thread reads the source; a PartWriter writes, fsyncs and checkpoints behind it, as for HTTP."""
    src.seek(offset)
    os.lseek(fd, offset, os.SEEK_SET)  # copy_file_range wrote at explicit offsets and left the position alone
    writer = sink.PartWriter(fd, offset, progress, version, url)
    read = paced_read(src.read, progress.pace)
    offset = writer.pump(read, progress.stop_requested, (OSError,), lambda exc: _source_error(exc, url))
    return Version(offset, None, version.last_modified)


def _source_error(exc: OSError, url: str) -> TransferError:
    """A failing read of the source: for a file:// download that is the remote side, not our part file."""
    error = local_error(exc, url)
    return TransferError(error.message, code=error.code, context=ErrorContext.REMOTE_FILE, transient=error.transient)
