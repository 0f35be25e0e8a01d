"""Part files beside their targets: their names, the atomic publish at complete, and removal at cancel."""

from __future__ import annotations

import contextlib
import os

from bitscli.model import Job, JobType

PART_SUFFIX = ".bitscli-part"
_MAX_BASE = 160  # leaves room for ".<guid>.<index>.bitscli-part" within NAME_MAX (255)


def part_path(local_name: str, job_id: str, index: int) -> str:
    """A hidden name in the target's directory (same filesystem, so the final rename is atomic).

    The job GUID and file index make it unique: two jobs for one target never share a part file.
    """
    directory, base = os.path.split(local_name)
    guid = job_id.strip("{}").replace("-", "").lower()
    return os.path.join(directory, f".{base[:_MAX_BASE]}.{guid}.{index}{PART_SUFFIX}")


REPLY_INDEX = 1  # an upload job has one file (index 0); its reply's part file takes the next index


def reply_name(job: Job) -> str:
    """The reply file of an upload-reply job: the one set with setreplyfilename, else beside the upload."""
    if job.reply_file_name:
        return job.reply_file_name
    upload = job.files[0].local_name if job.files else ""
    guid = job.id.strip("{}").split("-")[0].lower()
    return f"{upload}.{guid}.reply"  # BITS also auto-names it in the upload file's directory (bits.md §2.4)


def reply_part(job: Job) -> str:
    return part_path(reply_name(job), job.id, REPLY_INDEX)


def fsync_directory(path: str) -> None:
    """Make a rename in ``path`` durable; a no-op where directories cannot be opened (Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(part: str, final: str, sync_directory: bool = True, synced: bool = False) -> bool:
    """Rename a finished part file to its final name; False when there was no part file.

    With ``sync_directory=False`` the caller fsyncs the directory afterwards (once for many files). With
    ``synced=True`` the caller knows the bytes are on disk already (the daemon records a file as done only
    after its fsync), and the fsync here is skipped: a second fsync of every file of a big job is pure cost.
    """
    try:
        if not synced:
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(part, final)
    except FileNotFoundError:
        return False
    if sync_directory:
        fsync_directory(os.path.dirname(final))
    return True


def discard_all(job: Job) -> None:
    """Delete every part file of a cancelled or abandoned job; one that cannot go now is left hidden."""
    parts = [part_path(f.local_name, job.id, index) for index, f in enumerate(job.files)]
    if job.type is JobType.UPLOAD_REPLY and job.files:
        parts.append(reply_part(job))
    for part in parts:
        with contextlib.suppress(OSError):
            discard(part)


def discard(part: str) -> bool:
    """Delete a part file; False when it did not exist."""
    try:
        os.unlink(part)
    except FileNotFoundError:
        return False
    return True
