"""Progress means new bytes: restarts from zero are no progress and are bounded; cuts after new bytes resume."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.daemon import retries
from bitscli.model import JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job

from .daemonproc import FakeClock, run_once, state
from .faultserver import FaultServer, serving

BIG = os.urandom(8 * 1000 * 1000)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", BIG)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retries, "QUICK_BACKOFF", 0.01)  # the rule is tested, not the pause


def test_cuts_after_new_bytes_resume_at_once_however_often(new_daemon, ok, server, tmp_path: Path) -> None:
    """Issue 12, item 7: 8 MB from a server that resets every 2 MB finishes in one go (4 cuts, no retry delay)."""
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("resume", job)
    server.fault(path="/f", reset_after=2 * 1000 * 1000, times=4)
    run_once(new_daemon())
    assert state(job) is JobState.TRANSFERRED
    assert ok("geterrorcount", job).stdout == "0\n"
    ok("complete", job)
    assert hashlib.sha256((tmp_path / "f").read_bytes()).digest() == hashlib.sha256(BIG).digest()


def test_a_server_that_ignores_range_and_always_cuts_ends_in_error(new_daemon, ok, server, tmp_path: Path) -> None:
    """Issue 12, item 6: restarts from zero are no progress; a bounded number of them puts the job in ERROR with
    BG_E_INSUFFICIENT_RANGE_SUPPORT, long before the no-progress timeout (14 days by default)."""
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setminretrydelay", job, "60")
    ok("resume", job)
    server.fault(path="/f", ignore_range=True, truncate_after=1_000_000, times=1000)
    daemon = new_daemon(clock)
    seen = []
    for _ in range(6):
        run_once(daemon)
        seen.append(state(job))
        if seen[-1] is JobState.ERROR:
            break
        assert seen[-1] is JobState.TRANSIENT_ERROR
        clock.advance(75)  # the retry delay and its spread
    assert seen[-1] is JobState.ERROR, seen
    found = get_job(open_context(), job)
    assert found.error is not None
    assert found.error.code == 0x80200013  # BG_E_INSUFFICIENT_RANGE_SUPPORT
    assert "started over" in found.error.message
    assert found.files[0].high_water == 1_000_000


def test_bytes_fetched_again_do_not_reset_the_no_progress_timer(new_daemon, ok, server, tmp_path: Path) -> None:
    clock = FakeClock()
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, server.url("/f"), str(tmp_path / "f"))
    ok("setminretrydelay", job, "60")
    ok("setnoprogresstimeout", job, "100")
    ok("resume", job)
    server.fault(path="/f", ignore_range=True, truncate_after=1_000_000, times=1000)
    daemon = new_daemon(clock)
    run_once(daemon)  # t=0: 1 MB new, then restarts that only fetch it again
    first = get_job(open_context(), job)
    assert first.state is JobState.TRANSIENT_ERROR
    clock.advance(75)
    run_once(daemon)  # t=75: more restarts, no new byte
    clock.advance(75)
    daemon.tick()  # t=150: past the no-progress timeout counted from the first error, whatever was re-fetched
    assert state(job) is JobState.ERROR
