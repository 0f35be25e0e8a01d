"""Part files beside the target: their names, the atomic publish at complete, and removal at cancel."""

from __future__ import annotations

import os

PART_SUFFIX = ".bitscli-part"
_MAX_BASE = 160  # leaves room for ".<guid>.<index>.bitscli-part" within NAME_MAX (255)


def part_path(local_name: str, job_id: str, index: int) -> str:
    """A hidden name in the target's directory (same filesystem, so the final rename is atomic).

    The job GUID and file index make it unique: two jobs for one target never share a part file.
    """
    directory, base = os.path.split(local_name)
    guid = job_id.strip("{}").replace("-", "").lower()
    return os.path.join(directory, f".{base[:_MAX_BASE]}.{guid}.{index}{PART_SUFFIX}")


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


def publish(part: str, final: str) -> bool:
    """Rename a finished part file to its final name, durably; False when there was no part file."""
    try:
        fd = os.open(part, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, final)
    fsync_directory(os.path.dirname(final))
    return True


def discard(part: str) -> bool:
    """Delete a part file; False when it did not exist."""
    try:
        os.unlink(part)
    except FileNotFoundError:
        return False
    return True
