"""The glibc helpers: malloc tuning really stops page faults on reused I/O buffers; syncfs is found."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bitscli import libc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# h11's receive buffer: each 256 KiB read is appended to a bytearray, sliced out (twice) and copied into
# bytes, so three buffers of that size are alive at once and freed together. Prints the page faults taken.
FAULTS = """
import resource, sys
from bitscli import libc
if sys.argv[1] == "tuned":
    assert libc.keep_io_buffers()
chunk = bytes(256 << 10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def receive():
    buffer = bytearray()
    buffer += chunk
    checked, body = buffer[: len(chunk)], buffer[: len(chunk)]
    del buffer[: len(chunk)]
    return bytes(body)
for _ in range(200):
    receive()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


def test_tuned_malloc_reuses_large_buffers_instead_of_faulting_them_in() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    assert default > 200 * 100  # about 200 faults a round: the freed buffers are trimmed off the heap each time
    assert tuned < 2_000


def test_syncfs_is_found_on_linux() -> None:
    assert libc.syncfs() is not None
