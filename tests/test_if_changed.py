"""Download only if changed (issue 15): a conditional GET from byte 0 over the local file bitscli wrote; a 304
moves no body byte and leaves that file untouched; a resumed range is never made conditional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.daemonproc import run_once, state
from tests.faultserver import FaultServer


@pytest.fixture
def server() -> FaultServer:
    srv = FaultServer()
    srv.put("/f", b"version one " * 5000)
    yield srv  # type: ignore[misc]
    srv.close()


def _fetch(ok, new_daemon, server: FaultServer, target: Path, *flags: str) -> str:  # type: ignore[no-untyped-def]
    """A job for the one file, run by an in-process daemon until it is TRANSFERRED, then completed."""
    from bitscli.model import JobState

    job = ok("create", "--raw", target.name).stdout.strip()
    ok("addfile", job, server.url("/f"), str(target), *flags)
    ok("resume", job)
    run_once(new_daemon())
    assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
    return job


def test_unchanged_is_a_304_that_leaves_the_file_untouched(new_daemon, ok, server: FaultServer, tmp_path: Path):
    target = tmp_path / "f.bin"
    first = _fetch(ok, new_daemon, server, target)
    ok("complete", first)
    before = os.stat(target)
    job = _fetch(ok, new_daemon, server, target, "--if-changed")
    request = server.gets("/f")[-1]
    assert request.headers.get("If-None-Match") == server.etag("/f")  # the ETag saved when bitscli wrote it
    assert ok("getbytestransferred", job).stdout.strip() == "0"  # no body byte moved
    assert ok("listfiles", job, "--json").json["files"][0]["unchanged"] is True
    assert "UNCHANGED" in ok("listfiles", job).stdout
    ok("complete", job)
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no part file left behind


def test_changed_is_downloaded_and_replaces_the_file(new_daemon, ok, server: FaultServer, tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    ok("complete", _fetch(ok, new_daemon, server, target))
    server.put("/f", b"version two " * 6000)
    job = _fetch(ok, new_daemon, server, target, "--if-changed")
    assert server.gets("/f")[-1].headers.get("If-None-Match") is not None
    ok("complete", job)
    assert target.read_bytes() == b"version two " * 6000


def test_a_file_changed_locally_is_asked_about_by_its_own_time(
    new_daemon, ok, server: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    """Not the file bitscli wrote any more: its saved ETag no longer speaks for it; its mtime does."""
    target = tmp_path / "f.bin"
    ok("complete", _fetch(ok, new_daemon, server, target))
    target.write_bytes(b"edited by hand")
    os.utime(target, (1_600_000_000, 1_600_000_000))  # older than the server's copy
    job = _fetch(ok, new_daemon, server, target, "--if-changed")
    request = server.gets("/f")[-1]
    assert request.headers.get("If-None-Match") is None
    assert request.headers.get("If-Modified-Since") == "Sun, 13 Sep 2020 12:26:40 GMT"
    ok("complete", job)
    assert target.read_bytes() == b"version one " * 5000


def test_a_server_without_validators_gets_a_full_download(new_daemon, ok, server: FaultServer, tmp_path: Path):
    server.validators = False  # no ETag, no Last-Modified, conditional requests ignored
    target = tmp_path / "f.bin"
    ok("complete", _fetch(ok, new_daemon, server, target))
    job = _fetch(ok, new_daemon, server, target, "--if-changed")
    assert server.gets("/f")[-1].headers.get("If-Modified-Since") is not None  # from the file's mtime
    assert int(ok("getbytestransferred", job).stdout) == len(b"version one " * 5000)
    ok("complete", job)
    assert target.read_bytes() == b"version one " * 5000


def _cut_then_down(ok, new_daemon, server: FaultServer, target: Path, clock) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    """A --if-changed job whose first GET is cut after 1 MiB while the server then answers 503: it waits in
    TRANSIENT_ERROR with its part."""
    from bitscli.model import JobState

    server.fault(path="/f", reset_after=1 << 20)
    server.fault(path="/f", status=503, times=3)
    job = ok("create", "--raw", "resumed").stdout.strip()
    ok("addfile", job, server.url("/f"), str(target), "--if-changed")
    ok("resume", job)
    daemon = new_daemon(clock)
    run_once(daemon)
    assert state(job) is JobState.TRANSIENT_ERROR
    assert int(ok("getbytestransferred", job).stdout) > 0
    server.faults.clear()
    return job, daemon


def _until_transferred(job: str, daemon, clock) -> None:  # type: ignore[no-untyped-def]
    from bitscli.model import JobState

    for _ in range(3):
        clock.advance(3600)
        run_once(daemon)
        if state(job) is JobState.TRANSFERRED:
            return
    raise AssertionError(f"job {job} is {state(job).name}")


def test_a_resumed_file_is_never_asked_conditionally(new_daemon, ok, server: FaultServer, tmp_path: Path) -> None:
    """A part with bytes resumes with Range and If-Range, never with If-None-Match or If-Modified-Since."""
    from tests.daemonproc import FakeClock

    target, clock = tmp_path / "f.bin", FakeClock()
    ok("complete", _fetch(ok, new_daemon, server, target))
    data = os.urandom(3 << 20)
    server.put("/f", data)
    job, daemon = _cut_then_down(ok, new_daemon, server, target, clock)
    _until_transferred(job, daemon, clock)
    resumed = [seen.headers for seen in server.gets("/f") if seen.headers.get("Range")]
    assert resumed
    assert [h.get("If-Range") for h in resumed] == [server.etag("/f")] * len(resumed)
    assert not [h for h in resumed if "If-None-Match" in h or "If-Modified-Since" in h]
    ok("complete", job)
    assert target.read_bytes() == data


def test_a_resumed_file_whose_server_copy_changed_starts_over_whole(
    new_daemon, ok, server: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    from tests.daemonproc import FakeClock

    target, clock = tmp_path / "f.bin", FakeClock()
    ok("complete", _fetch(ok, new_daemon, server, target))
    server.put("/f", os.urandom(3 << 20))
    job, daemon = _cut_then_down(ok, new_daemon, server, target, clock)
    newest = os.urandom(3 << 20)
    server.put("/f", newest)  # changed while the part waited
    _until_transferred(job, daemon, clock)
    ok("complete", job)
    assert target.read_bytes() == newest  # never a mix of the two versions


def test_setifchanged_applies_to_every_file_and_transfer_takes_the_flag(
    new_daemon, ok, server: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    target = tmp_path / "f.bin"
    ok("complete", _fetch(ok, new_daemon, server, target))
    job = ok("create", "--raw", "jobwide").stdout.strip()
    ok("addfile", job, server.url("/f"), str(target))
    ok("setifchanged", job, "on")
    assert ok("getifchanged", job).stdout.strip() == "ON"
    ok("resume", job)
    run_once(new_daemon())
    assert ok("listfiles", job, "--json").json["files"][0]["unchanged"] is True
    refused = ok("create", "--raw", "--upload", "up").stdout.strip()
    (tmp_path / "u").write_text("x")
    from tests.conftest import run_process

    result = run_process("addfile", refused, server.url("/u"), str(tmp_path / "u"), "--if-changed")
    assert result.exit_code != 0
    assert "whole downloaded files" in result.stderr
