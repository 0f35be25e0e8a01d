"""What an upload job keeps between runs: its BITS session, where packets go, and its reply (bits.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

from bitscli.model import UNKNOWN


@dataclass(frozen=True)
class UploadState:
    session_id: str | None = None  # echoed byte for byte: not always a GUID
    session_url: str | None = None  # where the session's packets go: the job URL, or its BITS-Host-Id variant
    host_fallback: float | None = None  # BITS-Host-Id-Fallback-Timeout in seconds; None waits for ever
    host_failing_since: float | None = None  # when the host-id server first could not be reached
    local_stamp: str | None = None  # size, mtime and inode of the local file when the upload began
    reply_url: str | None = None  # BITS-Reply-URL from the last fragment's Ack
    reply_total: int = UNKNOWN
    reply_transferred: int = 0
    reply_etag: str | None = None
    reply_last_modified: str | None = None
    reply_done: bool = False
    closed: bool = False  # Close-Session (or Cancel-Session) was answered: nothing left on the server

    @property
    def needs_cancel(self) -> bool:
        """A cancelled job still holding a session: tell the server so it frees it (Cancel-Session)."""
        return self.session_id is not None and not self.closed


UPLOAD_COLUMNS = (
    "session_id", "session_url", "host_fallback", "host_failing_since", "local_stamp", "reply_url", "reply_total",
    "reply_transferred", "reply_etag", "reply_last_modified", "reply_done", "closed",
)  # fmt: skip


def encode(state: UploadState) -> tuple[object, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in (getattr(state, c) for c in UPLOAD_COLUMNS))


def decode(row: tuple[object, ...] | None) -> UploadState:
    if row is None:
        return UploadState()
    values = dict(zip(UPLOAD_COLUMNS, row, strict=True))
    values["reply_done"] = bool(values["reply_done"])
    values["closed"] = bool(values["closed"])
    return UploadState(**values)  # type: ignore[arg-type]
