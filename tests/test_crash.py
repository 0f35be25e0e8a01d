"""kill -9 of the daemon at random moments: every file completes intact; nothing partial under a final name."""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

from bitscli.model import JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job

from .daemonproc import DaemonProcess
from .faultserver import FaultServer

FILES = 20
KILLS = 12


def test_kill_9_during_20_downloads(ok, home: Path, tmp_path: Path) -> None:
    rng = random.Random(20261122)  # fixed seed: a failure can be replayed
    server = FaultServer()
    server.chunk_delay = 0.04  # about 1.6 MB/s per connection: each file spans checkpoints and kills
    daemon = DaemonProcess(home, slice_seconds=1.0)  # short slices: background jobs rotate, more states to kill
    try:
        sources = {}
        jobs = []
        for i in range(FILES):
            data = os.urandom(rng.randint(1_000_000, 3_000_000))
            server.put(f"/f{i}", data)
            target = tmp_path / f"out{i}.bin"
            sources[target] = hashlib.sha256(data).hexdigest()
            job = ok("create", "--raw", "--priority", "FOREGROUND" if i % 4 == 0 else "NORMAL", f"crash{i}").stdout
            ok("addfile", job, server.url(f"/f{i}"), str(target))
            ok("resume", job)
            jobs.append(job)

        kills = 0
        daemon.start()
        while kills < KILLS and not all_transferred(jobs):
            time.sleep(rng.uniform(0.3, 1.5))
            daemon.kill9()
            kills += 1
            assert not any(target.exists() for target in sources), "a partial file appeared under its final name"
            daemon.start()
        deadline = time.monotonic() + 240
        while not all_transferred(jobs):
            assert time.monotonic() < deadline, states(jobs)
            time.sleep(0.1)
        assert kills > 0
        assert not any(target.exists() for target in sources)
        for job in jobs:
            ok("complete", job)
        for target, digest in sources.items():
            assert hashlib.sha256(target.read_bytes()).hexdigest() == digest, target
        assert not list(tmp_path.glob(".*.bitscli-part"))  # no part file left behind
        resumed = [s for s in server.seen if s.method == "GET" and s.headers.get("Range")]
        assert resumed, "no transfer was resumed with Range: the kills missed every transfer"
    finally:
        daemon.close()
        server.close()


def test_kill_9_during_a_download_that_goes_around_the_page_cache(ok, home: Path, tmp_path: Path) -> None:
    # 33 MiB: past direct.MIN_BYTES, so the daemon writes it with O_DIRECT in 4 MiB buffers (flushed early on
    # this slowed link) and checkpoints every 128 MiB or second. Kills land between and during those writes.
    rng = random.Random(33)
    data = os.urandom(33 << 20)
    server = FaultServer()
    server.put("/big", data)
    server.chunk_delay = 0.01  # 64 KiB chunks: about 6 MB/s, so the file spans several kills
    daemon = DaemonProcess(home)
    target = tmp_path / "big.bin"
    try:
        job = ok("create", "--raw", "--priority", "FOREGROUND", "big").stdout
        ok("addfile", job, server.url("/big"), str(target))
        ok("resume", job)
        daemon.start()
        for _ in range(3):
            time.sleep(rng.uniform(1.3, 2.0))  # past the first checkpoint, one second into the transfer
            daemon.kill9()
            assert not target.exists()
            daemon.start()
        deadline = time.monotonic() + 240
        while not all_transferred([job]):
            assert time.monotonic() < deadline, states([job])
            time.sleep(0.1)
        ok("complete", job)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
        assert any(s.headers.get("Range") for s in server.gets("/big")), "no kill landed after a checkpoint"
    finally:
        daemon.close()
        server.close()


def all_transferred(jobs: list[str]) -> bool:
    ctx = open_context()
    try:
        return all(get_job(ctx, job).state is JobState.TRANSFERRED for job in jobs)
    finally:
        ctx.queue.close()


def states(jobs: list[str]) -> list[str]:
    ctx = open_context()
    try:
        return [get_job(ctx, job).state.name for job in jobs]
    finally:
        ctx.queue.close()
