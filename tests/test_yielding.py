"""Yielding to other traffic: the delay-based controller on scripted delays, and the kernel's delays for real."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.clock import SystemClock
from bitscli.daemon.yielding import INTERVAL, MIN_RATE, MIN_WINDOW, TARGET, Yielder
from bitscli.model import JobState
from bitscli.policy import Policy, allowed
from bitscli.transfer import tcpinfo
from bitscli.transfer.tcpinfo import Delay

from .daemonproc import FakeClock, settle, state
from .faultserver import FaultServer, serving

PEER = ("10.0.0.1", 80)
BASE = 0.020  # the path's own round trip in these scripts


class Path_:
    """A scripted path: the kernel's delays the controller reads, and the receive windows it sets."""

    def __init__(self, receiving: bool = True) -> None:
        self.clock = FakeClock()
        self.delay = BASE
        self.fresh = True
        self.windows: list[int | None] = []
        self._count = 0
        self.yielder = Yielder(self._sample, self.clock.monotonic, receiving, "job", self.windows.append)

    def _sample(self) -> tuple[object, Delay] | None:
        if self.fresh:
            self._count += 1  # a new measurement differs from the last, as the kernel's do
        value = self.delay + self._count * 1e-9
        return PEER, Delay(rtt=value, rcv_rtt=value, min_rtt=BASE)

    def run(self, seconds: float, rate: float = 10e6) -> None:
        """Move bytes at ``rate`` for ``seconds`` of fake time, one interval's worth at a time."""
        self.yielder.moved(0)
        for _ in range(round(seconds / INTERVAL)):
            self.clock.advance(INTERVAL * 1.001)  # a hair over: sums of 0.1 in floating point fall short
            self.yielder.moved(int(rate * INTERVAL))


def test_a_fast_idle_path_is_never_limited() -> None:
    path = Path_()
    path.delay = BASE + TARGET * 0.8  # some queue, under the target
    path.run(60)
    assert not path.yielder.limiting()
    assert path.windows == []
    assert path.yielder.measured > 500


def test_a_queue_past_the_target_shrinks_the_window_to_the_floor_and_an_empty_one_grows_it_back() -> None:
    path = Path_()
    path.run(1)
    path.delay = BASE + 0.2  # a competitor fills a 200 ms buffer
    path.run(0.3)
    assert path.yielder.limiting()
    first = path.yielder.window()
    path.run(2)
    assert first is not None
    assert path.yielder.window() == MIN_WINDOW < first
    path.delay = BASE  # the competitor left: the queue drained
    path.run(3)
    assert not path.yielder.limiting()  # grown back past what flows, then lifted
    assert path.windows[-1] is None  # the largest window again


def test_the_back_off_is_proportional_to_the_excess() -> None:
    slight, heavy = Path_(), Path_()
    for path, queue in ((slight, TARGET * 1.2), (heavy, TARGET * 4)):
        path.run(1)
        path.delay = BASE + queue
        path.run(0.5)
    assert slight.yielder.window() > heavy.yielder.window()  # type: ignore[operator]


def test_without_a_fresh_measurement_the_limit_holds() -> None:
    path = Path_()
    path.run(1)
    path.delay = BASE + 0.2
    path.run(0.2)
    held = path.yielder.window()
    path.fresh = False  # a paced read keeps the receive queue full: the kernel stops measuring
    path.run(5)
    assert path.yielder.window() == held


def test_the_base_is_the_lowest_delay_seen_so_the_queue_is_measured_above_it() -> None:
    path = Path_()
    path.delay = BASE + 0.004
    path.run(1)
    assert path.yielder.queueing == pytest.approx(0.004, abs=1e-6)  # the kernel's min_rtt bounds the base


def test_an_upload_paces_its_rate_instead() -> None:
    path = Path_(receiving=False)
    path.run(1)
    path.delay = BASE + 0.3
    path.run(3)
    assert path.yielder.rate() == MIN_RATE
    assert path.yielder.window() is None
    assert path.windows == []


def test_no_delay_from_the_kernel_means_no_yielding_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    yielder = Yielder(lambda: (PEER, Delay(0.0, 0.0, 0.0)), clock.monotonic, True, "{JOB}")
    with caplog.at_level(logging.WARNING, logger="bitscli.daemon"):
        yielder.moved(0)
        for _ in range(30):
            clock.advance(INTERVAL * 1.001)
            yielder.moved(1 << 20)
    assert not yielder.signal
    assert not yielder.limiting()
    assert [r.getMessage() for r in caplog.records if "not yielding" in r.getMessage()] == [
        "job {JOB}: the kernel reports no round-trip times for this connection: not yielding to other traffic"
    ]


def test_a_reset_lifts_the_window() -> None:
    path = Path_()
    path.run(1)
    path.delay = BASE + 0.2
    path.run(1)
    path.yielder.reset()
    assert path.windows[-1] is None
    assert not path.yielder.limiting()


def test_background_jobs_yield_and_foreground_jobs_do_not() -> None:
    from bitscli.model import Job, JobPriority, JobType

    def job(priority: JobPriority) -> Job:
        return Job(id="j", display_name="j", type=JobType.DOWNLOAD, owner="o", creation_time=0,
                   modification_time=0, priority=priority)  # fmt: skip

    on, off = Policy(), Policy(yield_to_others=False)
    assert allowed(on, job(JobPriority.LOW), 0).yields
    assert allowed(on, job(JobPriority.NORMAL), 0).yields
    assert not allowed(on, job(JobPriority.FOREGROUND), 0).yields
    assert not allowed(off, job(JobPriority.LOW), 0).yields


def _loopback_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def test_the_kernel_reports_the_delays_of_a_real_connection() -> None:
    listener, client, server = _loopback_pair()
    try:
        sender = threading.Thread(target=lambda: (server.sendall(b"x" * (32 << 20)), server.close()))
        sender.start()
        while client.recv(1 << 20):
            pass
        sender.join()
        delay = tcpinfo.read(client)
        assert delay is not None
        assert delay.rcv_rtt > 0  # the receiver's estimate, what a download yields on
        assert 0 < delay.min_rtt < 1
    finally:
        client.close()
        listener.close()


def test_no_socket_or_no_tcp_socket_gives_no_delay() -> None:
    assert tcpinfo.read(None) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert tcpinfo.read(udp) is None
    assert tcpinfo.supported()


def test_setting_the_receive_window_bounds_the_socket_buffer(client) -> None:  # type: ignore[no-untyped-def]
    server = FaultServer()
    server.put("/f", b"x" * 1000)
    try:
        with client.send("GET", server.url("/f"), {}, (5, 5), {}):
            client.set_receive_window(64 * 1024)
            sock = client._active.sock
            small = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            client.set_receive_window(None)
            large = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert small == 128 * 1024  # the kernel doubles what it is given, for its own overhead
        assert large > small
    finally:
        server.close()


@pytest.fixture
def big_server() -> Iterator[FaultServer]:
    yield from serving("/big", bytes(256 << 20))


def test_a_lone_background_download_on_loopback_is_measured_and_never_limited(
    ok, home: Path, big_server: FaultServer, tmp_path: Path
) -> None:
    """Issue 11: yielding must not throttle a fast, idle LAN or loopback; a lone background job fills the link."""
    from bitscli import paths
    from bitscli.daemon.loop import Daemon

    job = ok("create", "--raw", "lone").stdout
    ok("setpriority", job, "LOW")
    ok("addfile", job, big_server.url("/big"), str(tmp_path / "big"))
    ok("resume", job)
    daemon = Daemon(paths.queue_path(), SystemClock(), config_path=paths.config_file())
    try:
        daemon.tick()
        workers = list(daemon.workers.values())
        settle(daemon)
    finally:
        daemon.shutdown()
    assert state(job) is JobState.TRANSFERRED
    (worker,) = workers
    assert worker.yielder is not None
    assert worker.yielder.signal
    assert worker.yielder.measured > 0  # it did look at the delays
    assert not worker.yielder.limiting()
