"""A file's hash, computed as its bytes are written; the saved part is read once when a transfer resumes."""

from __future__ import annotations

import hashlib
import os

READ = 1 << 20


class StreamHash:
    """The running hash of one file's part: ``begin`` at the offset a body starts from (reading what is saved
    before it, once), ``update`` with each block as it is written, in order; ``result`` once it is whole."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.offset = -1  # bytes hashed so far; -1: not begun
        self._hash = hashlib.new(algorithm)

    def begin(self, fd: int, offset: int) -> None:
        self._hash = hashlib.new(self.algorithm)
        self.offset = 0
        while self.offset < offset:
            block = os.pread(fd, min(READ, offset - self.offset), self.offset)
            if not block:
                raise OSError(f"the part file ends at byte {self.offset}, before {offset}")
            self._hash.update(block)
            self.offset += len(block)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.offset += len(data)

    def ensure(self, path: str, size: int) -> None:
        """Hash the finished part from disk if the engine did not stream it (a local copy, a file already whole)."""
        if self.offset == size:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            self.begin(fd, size)
        finally:
            os.close(fd)

    def result(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"
