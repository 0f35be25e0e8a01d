"""A Progress for engine tests: keeps the last checkpoint, and can ask for a stop at the n-th check."""

from __future__ import annotations

from bitscli.transfer.types import CHUNK, Version


class Checkpoints:
    """The daemon's side of the engine: the copy and the download check for a stop before each read."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.checks, self.stop_at = 0, stop_at
        self.offset, self.version = 0, Version()

    def transferring(self, abort, url) -> None:  # type: ignore[no-untyped-def]
        pass

    def checkpoint(self, offset: int, version: Version, url: str) -> None:
        self.offset, self.version = offset, version

    def stop_requested(self) -> bool:
        self.checks += 1
        return self.stop_at is not None and self.checks >= self.stop_at

    def pace(self, nbytes: int) -> int:
        return CHUNK  # unpaced
