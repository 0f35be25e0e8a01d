"""The one rate limiter: its accuracy on an injected clock, the rate syntax, and a capped job through the worker."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.daemon.bandwidth import BURST_SECONDS, Bandwidth, Pacer
from bitscli.inputs.fields import parse_rate
from bitscli.model import JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job

from .daemonproc import FakeClock, run_once, state
from .faultserver import FaultServer, serving


class Reader:
    """A transfer on a fake clock: reads as big as the pacer allows (capped by what the socket would hold)."""

    def __init__(self, rate: float, socket_bytes: int = 1 << 20) -> None:
        self.clock = FakeClock()
        self.rate = rate
        self.stop = threading.Event()
        self.pacer = Pacer(lambda: self.rate, self.clock.monotonic, lambda s: self.clock.wait(self.stop, s))
        self.socket_bytes = socket_bytes
        self.moved = 0
        self.samples: list[tuple[float, int]] = []  # (fake time, bytes so far)

    def run(self, total: int) -> float:
        start = self.clock.monotonic()
        size = self.pacer.take(0)
        while self.moved < total:
            got = min(size, self.socket_bytes, total - self.moved)
            self.moved += got
            size = self.pacer.take(got)
            self.samples.append((self.clock.monotonic() - start, self.moved))
        return self.clock.monotonic() - start


@pytest.mark.parametrize("rate", [8 * 1024, 64 * 1024, 20_000_000, 1 << 30])
def test_the_average_rate_is_the_cap(rate: int) -> None:
    """Issue 11: accurate from 8 KiB/s up to link speed."""
    total = int(rate * 20)
    reader = Reader(rate)
    elapsed = reader.run(total)
    assert abs(total / elapsed - rate) / rate < 0.01


@pytest.mark.parametrize("rate", [8 * 1024, 20_000_000])
def test_no_window_runs_ahead_of_the_cap_by_more_than_a_burst(rate: int) -> None:
    reader = Reader(rate)
    reader.run(int(rate * 10))
    for elapsed, moved in reader.samples:
        assert moved <= rate * elapsed + rate * BURST_SECONDS + 4096


def test_a_rate_change_applies_to_the_next_read() -> None:
    reader = Reader(100_000)
    reader.run(1_000_000)  # 10 s
    before = reader.clock.monotonic()
    reader.rate = 400_000
    reader.run(2_000_000)  # 1,000,000 more at 400 kB/s: 2.5 s
    assert abs(reader.clock.monotonic() - before - 2.5) < 0.2


def test_no_cap_means_no_wait() -> None:
    reader = Reader(0)
    assert reader.run(1 << 30) == 0.0


def test_a_stop_breaks_the_wait() -> None:
    reader = Reader(1000)
    reader.stop.set()
    reader.run(1_000_000)  # the fake wait returns at once with the stop set: the engine then sees it
    assert reader.moved == 1_000_000


def test_the_receive_buffer_fits_the_rate() -> None:
    bandwidth = Bandwidth()
    bandwidth.set_rates({"a": 64 * 1024, "b": 0, "c": 1 << 30})
    assert bandwidth.receive_buffer("a") == 16 * 1024  # a quarter of a second
    assert bandwidth.receive_buffer("b") is None  # no cap: the kernel tunes it
    assert bandwidth.receive_buffer("c") is None  # too fast to matter


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20MB", 20_000_000), ("512KiB", 524_288), ("1.5M", 1_572_864), ("8K", 8192), ("1000", 1000), ("2GB/s", 2e9),
     ("0", 0), ("none", 0)],
)  # fmt: skip
def test_rates_as_people_write_them(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5", "1.5.5M", "20 XB", "1e9", "0.1"])
def test_bad_rates_are_refused(cli, ok, text: str) -> None:
    job = ok("create", "--raw", "j").stdout
    result = cli("setmaxbandwidth", job, text)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_the_cap_is_shown_everywhere(ok) -> None:
    job = ok("create", "--raw", "j").stdout
    assert ok("setmaxbandwidth", job, "2MiB").stdout == "Maximum bandwidth set to 2 MiB/s.\n"
    assert ok("getmaxbandwidth", job).stdout == "2 MiB/s\n"
    assert ok("getmaxbandwidth", job, "--json").json["value"] == 2 * 1024 * 1024
    assert "MAX BANDWIDTH: 2 MiB/s" in ok("info", job, "--verbose").stdout
    assert ok("info", job, "--json").json["job"]["properties"]["max_bandwidth"] == 2 * 1024 * 1024
    ok("setmaxbandwidth", job, "none")
    assert ok("getmaxbandwidth", job).stdout == "NONE\n"


DATA = os.urandom(1_000_000)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", DATA)


@pytest.mark.parametrize("priority", ["FOREGROUND", "LOW"])
def test_a_capped_job_takes_as_long_as_its_cap_says_on_the_daemons_clock(
    new_daemon, ok, server: FaultServer, tmp_path: Path, priority: str
) -> None:
    """The worker's reads pass the daemon's limiter, whatever the priority: 1 MB at 100 kB/s is 10 s of the
    injected clock (and a fraction of a real second)."""
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setpriority", job, priority)
    ok("setmaxbandwidth", job, "100KB")
    ok("resume", job)
    daemon = new_daemon(clock)
    start = clock.monotonic()
    run_once(daemon)
    elapsed = clock.monotonic() - start
    assert state(job) is JobState.TRANSFERRED
    assert 9.5 <= elapsed <= 10.5
    ok("complete", job)
    assert hashlib.sha256((tmp_path / "f").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert get_job(open_context(), job).max_bandwidth == 100_000
