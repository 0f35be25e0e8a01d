"""Long bodies written around the page cache (O_DIRECT): the same bytes, stops, cuts and resumes as any other.

The thresholds are lowered so a 3 MiB file takes the path a 1 GiB download takes, in 256 KiB buffers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.transfer import direct
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.transfer.http import download
from bitscli.transfer.types import Download, Stopped

from .faultserver import FaultServer, serving
from .progress import Checkpoints

DATA = os.urandom(3 * 1024 * 1024 + 4321)  # not a whole number of blocks


@pytest.fixture
def writers(monkeypatch: pytest.MonkeyPatch) -> list[direct.DirectPartWriter]:
    """Every direct writer the engine makes, to see which path a body took."""
    made: list[direct.DirectPartWriter] = []

    class Seen(direct.DirectPartWriter):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            made.append(self)

    monkeypatch.setattr(direct, "MIN_BYTES", 1 << 20)
    monkeypatch.setattr(direct, "BUFFER", 256 << 10)
    monkeypatch.setattr(direct, "DirectPartWriter", Seen)
    return made


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", DATA)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(client: Client, server: FaultServer, part: Path, progress: Checkpoints, **kw: object) -> object:
    return download(client, Download(server.url("/f"), str(part), timeout=(5, 5), **kw), progress)  # type: ignore[arg-type]


def direct_written(writers: list[direct.DirectPartWriter]) -> int:
    return sum(w.direct_bytes for w in writers)


def test_a_long_body_goes_around_the_page_cache_whole(client, server, writers, tmp_path: Path) -> None:
    part, progress = tmp_path / "p", Checkpoints()
    fetch(client, server, part, progress)
    assert sha(part.read_bytes()) == sha(DATA)
    assert len(writers) == 1
    # Every whole block went direct; the last, partial one through the page cache. Where the filesystem
    # refuses O_DIRECT writes (EINVAL) it all goes the usual way, and the bytes are the same.
    assert direct_written(writers) in (len(DATA) - len(DATA) % direct.ALIGN, 0)


def test_a_short_body_keeps_only_what_came(client, server, writers, tmp_path: Path) -> None:
    part, progress = tmp_path / "p", Checkpoints()
    server.fault(truncate_after=1_500_001)
    with pytest.raises(TransferError) as caught:
        fetch(client, server, part, progress)
    assert caught.value.transient
    assert progress.offset == 1_500_001
    assert part.read_bytes() == DATA[:1_500_001]
    fetch(client, server, part, progress, offset=progress.offset, known=progress.version)
    assert sha(part.read_bytes()) == sha(DATA)
    assert len(writers) == 2  # the resumed 1.6 MiB went around the cache too, from an unaligned offset:
    assert writers[1].direct_bytes > 0 or writers[0].direct_bytes == 0  # its first whole block on


def test_a_reset_mid_body_saves_a_true_prefix_and_resumes(client, server, writers, tmp_path: Path) -> None:
    part, progress = tmp_path / "p", Checkpoints()
    server.fault(reset_after=1_000_003)
    with pytest.raises(TransferError) as caught:
        fetch(client, server, part, progress)
    assert caught.value.transient
    saved = progress.offset
    assert 0 < saved <= 1_000_003
    assert part.read_bytes()[:saved] == DATA[:saved]
    fetch(client, server, part, progress, offset=saved, known=progress.version)
    assert sha(part.read_bytes()) == sha(DATA)


def test_a_stop_saves_what_was_read_and_the_rest_follows(client, server, writers, tmp_path: Path) -> None:
    part = tmp_path / "p"
    stopping = Checkpoints(stop_at=3)  # the third buffer's check
    with pytest.raises(Stopped):
        fetch(client, server, part, stopping)
    saved = stopping.offset
    assert 0 < saved < len(DATA)
    assert part.read_bytes() == DATA[:saved]
    rest = Checkpoints()
    fetch(client, server, part, rest, offset=saved, known=stopping.version)
    assert sha(part.read_bytes()) == sha(DATA)


def test_a_slow_link_writes_buffers_as_far_as_they_are_aligned(
    client, server, writers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A buffer that fills slower than FLUSH_SECONDS is written up to its last whole block, and the rest is
    # carried into the next buffer: progress keeps coming on a slow link, and the bytes stay in order.
    monkeypatch.setattr(direct, "FLUSH_SECONDS", 0.0)  # every read is "slow"
    server.chunk_delay = 0.002
    part, progress = tmp_path / "p", Checkpoints()
    fetch(client, server, part, progress)
    assert sha(part.read_bytes()) == sha(DATA)


def test_short_bodies_and_unknown_lengths_keep_the_page_cache(client, server, writers, tmp_path: Path) -> None:
    server.put("/small", DATA[: 1 << 19])
    part = tmp_path / "small"
    download(client, Download(server.url("/small"), str(part), timeout=(5, 5)), Checkpoints())
    server.fault(chunked=True)
    fetch(client, server, tmp_path / "chunked", Checkpoints())
    assert part.read_bytes() == DATA[: 1 << 19]
    assert sha((tmp_path / "chunked").read_bytes()) == sha(DATA)
    assert writers == []


def test_https_bodies_go_around_the_page_cache_too(writers, tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = FaultServer(tls=context)
    server.put("/f", DATA)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    client = Client()
    try:
        job = Download(server.url("/f"), str(tmp_path / "p"), timeout=(5, 5), request_options={"verify": str(bundle)})
        download(client, job, Checkpoints())
    finally:
        client.close()
        server.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
    assert len(writers) == 1  # TLS records are read into the aligned buffers as plain bytes are
