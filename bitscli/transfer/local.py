"""file:// and local-path downloads: the same part files, offsets and restart rules as HTTP."""

from __future__ import annotations

import os
import time
from urllib.parse import unquote, urlsplit

from bitscli.model import ErrorContext
from bitscli.transfer import files
from bitscli.transfer.classify import TransferError, local_error
from bitscli.transfer.http import CHUNK, Download, Progress, Stopped, Version
from bitscli.transfer.sink import CHECKPOINT_BYTES, CHECKPOINT_SECONDS

E_FILE_NOT_FOUND = 0x80070002


def source_path(remote: str) -> str:
    return unquote(urlsplit(remote).path) if remote.lower().startswith("file:") else remote


def copy(job: Download, progress: Progress) -> Version:
    """Copy a local source; its size and modification time stand in for HTTP validators."""
    source = source_path(job.url)
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise TransferError(
            f"cannot read the source {source}: {exc.strerror}", code=E_FILE_NOT_FOUND,
            context=ErrorContext.REMOTE_FILE, transient=False,
        ) from None  # fmt: skip
    try:
        stat = os.fstat(src.fileno())
        version = Version(stat.st_size, None, str(stat.st_mtime_ns))
        try:
            fd, offset = files.open_part(job.part, job.offset)
        except OSError as exc:
            raise local_error(exc, job.part) from None
        try:
            if offset and version.differs_from(job.known):
                files.restart(fd)
                offset = 0
            progress.transferring(lambda: None, job.url)
            return _copy(src, fd, offset, version, progress, job.url)
        finally:
            os.close(fd)
    finally:
        src.close()


def _copy(src, fd: int, offset: int, version: Version, progress: Progress, url: str) -> Version:  # type: ignore[no-untyped-def]
    src.seek(offset)
    synced_at, synced_offset = time.monotonic(), offset
    try:
        while True:
            if progress.stop_requested():
                os.fsync(fd)
                progress.checkpoint(offset, version, url)
                raise Stopped
            chunk = src.read(CHUNK)
            if not chunk:
                break
            files.write_all(fd, chunk)
            offset += len(chunk)
            if offset - synced_offset >= CHECKPOINT_BYTES or time.monotonic() - synced_at >= CHECKPOINT_SECONDS:
                os.fsync(fd)
                progress.checkpoint(offset, version, url)
                synced_at, synced_offset = time.monotonic(), offset
    except OSError as exc:
        raise local_error(exc, "part file") from None
    return Version(offset, None, version.last_modified)
