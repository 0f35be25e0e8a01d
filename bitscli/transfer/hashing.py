"""A file's hashes, computed as its bytes are written; the saved part is read once when a transfer resumes."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable

READ = 1 << 20


class StreamHash:
    """The running hashes of one file's part: ``begin`` at the offset a body starts from (reading what is saved
    before it, once), ``update`` with each block as it is written, in order; ``result`` once it is whole.

    The algorithms are the expected hash's (addfile --sha256) and those of any digest the server sends with the
    body (``want``, before ``begin``); ``claims`` holds the server's digests, ``{"sha256": "HEX"}``, and where
    they came from.
    """

    def __init__(self, *algorithms: str) -> None:
        self.algorithms = list(dict.fromkeys(algorithms))
        self.offset = -1  # bytes hashed so far; -1: not begun
        self.claims: dict[str, str] = {}
        self.claimed_by = ""  # the header the claims came from
        self._hashes = [hashlib.new(a) for a in self.algorithms]

    def want(self, algorithm: str) -> None:
        if algorithm not in self.algorithms:
            self.algorithms.append(algorithm)

    def begin(self, fd: int, offset: int) -> None:
        self._hashes = [hashlib.new(a) for a in self.algorithms]
        self.offset = 0
        if not self._hashes:
            self.offset = offset
            return
        while self.offset < offset:
            block = os.pread(fd, min(READ, offset - self.offset), self.offset)
            if not block:
                raise OSError(f"the part file ends at byte {self.offset}, before {offset}")
            self.update(block)

    def update(self, data: bytes | memoryview) -> None:
        for running in self._hashes:
            running.update(data)
        self.offset += len(data)

    def ensure(self, path: str, size: int) -> None:
        """Hash the finished part from disk if the engine did not stream it (a local copy, a file already whole)."""
        if self.offset == size and len(self._hashes) == len(self.algorithms):
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            self.begin(fd, size)
        finally:
            os.close(fd)

    def result(self, algorithm: str | None = None) -> str:
        """``algo:hex`` of the given algorithm (the first one by default)."""
        index = self.algorithms.index(algorithm) if algorithm else 0
        return f"{self.algorithms[index]}:{self._hashes[index].hexdigest()}"


class HashBehind:
    """Hashes blocks on a thread of its own, behind the writer: on two cores SHA-256 (0.6 s a GiB here) no
    longer adds to each write; ``then`` runs after a block is hashed (a buffer goes back to its pool)."""

    def __init__(self, target: StreamHash, depth: int = 2) -> None:
        self.target = target
        self._blocks: queue.Queue[tuple[bytes | memoryview, Callable[[], None] | None] | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="part-hasher", daemon=True)
        self._thread.start()

    def feed(self, data: bytes | memoryview, then: Callable[[], None] | None = None) -> None:
        self._blocks.put((data, then))

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            data, then = block
            try:
                self.target.update(data)
            finally:
                if then is not None:
                    then()

    def close(self) -> None:
        """Every block fed so far is hashed when this returns."""
        self._blocks.put(None)
        self._thread.join()
