"""The transfer engine's shared terms: a remote file's Version, a Download to run, its Progress, and Stopped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bitscli.model import UNKNOWN
from bitscli.transfer.hashing import StreamHash

CHUNK = 1 << 20  # large reads and os.write: no per-byte Python (design.md)


class Stopped(Exception):
    """The daemon asked the transfer to stop (suspend, cancel, pre-emption); progress is saved."""


class Unchanged(Exception):
    """A conditional GET was answered 304 Not Modified: the local file is the server's current version."""


@dataclass(frozen=True)
class Version:
    """What identifies one version of a remote file: its size and validators (bits.md §2.7)."""

    size: int = UNKNOWN
    etag: str | None = None
    last_modified: str | None = None

    def differs_from(self, other: Version) -> bool:
        """True when both sides know a value and the values disagree."""
        pairs = ((self.size, other.size, UNKNOWN), (self.etag, other.etag, None))
        if any(a != b for a, b, unknown in pairs if a != unknown and b != unknown):
            return True
        return bool(self.last_modified and other.last_modified and self.last_modified != other.last_modified)

    def if_range(self) -> str | None:
        """The validator for If-Range: a strong ETag, else Last-Modified (RFC 9110 §13.1.5 forbids weak ETags)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


@dataclass
class Download:
    """One file to fetch: where from, into which part file, and what is already there."""

    url: str
    part: str
    offset: int = 0  # durable bytes already in the part file
    known: Version = field(default_factory=Version)
    headers: Mapping[str, str] = field(default_factory=dict)
    security_flags: int = 0
    dynamic: bool = False
    timeout: tuple[float, float] = (30.0, 60.0)  # connect, read
    request_options: Mapping[str, Any] = field(default_factory=dict)  # auth, proxies, verify
    hashing: StreamHash | None = None  # the file's hash, updated as its bytes are written (addfile --sha256)
    conditional: Mapping[str, str] = field(default_factory=dict)  # If-None-Match or If-Modified-Since, from byte 0


class Progress(Protocol):
    """How the engine reports to the daemon; every checkpoint follows an fsync of the part file."""

    def transferring(self, abort: Callable[[], None], url: str) -> None:
        """Bytes are about to flow from ``url`` (after redirects); ``abort()`` breaks a blocked read."""
        ...

    def checkpoint(self, offset: int, version: Version, url: str) -> None: ...

    def stop_requested(self) -> bool: ...

    def pace(self, nbytes: int) -> int:
        """``nbytes`` were just read: wait while they are ahead of the job's rate; the next read's largest size."""
        ...
