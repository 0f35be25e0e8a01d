"""A disk that fills mid-download (a real 1 MiB tmpfs): a transient LOCAL_FILE error, then resumed intact."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.errors import HResult
from bitscli.model import ErrorContext, JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job
from bitscli.transfer import direct
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.transfer.http import download
from bitscli.transfer.types import Download

from .daemonproc import FakeClock, run_once, state
from .faultserver import FaultServer, serving
from .progress import Checkpoints

DATA = os.urandom(3 * 1024 * 1024 + 11)  # three times the disk


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Disk:
    """A tmpfs of a given size; grow() remounts it larger, as a user freeing space would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def grow(self, size: str = "16m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "small"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.decode().strip()}")
    yield Disk(path)
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", DATA)


@pytest.mark.parametrize("around_the_cache", [False, True], ids=["page cache", "O_DIRECT"])
def test_the_engine_reports_a_full_disk_and_resumes_after_space_is_freed(
    server, small_disk: Disk, around_the_cache: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if around_the_cache:  # the path of long bodies (bitscli/transfer/direct.py), for a 3 MiB one
        monkeypatch.setattr(direct, "MIN_BYTES", 1 << 20)
        monkeypatch.setattr(direct, "BUFFER", 256 << 10)
    part, progress = small_disk.path / ".part", Checkpoints()
    client = Client()
    with pytest.raises(TransferError) as caught:
        download(client, Download(server.url("/f"), str(part), timeout=(5, 5)), progress)
    assert caught.value.code == HResult.ERROR_DISK_FULL
    assert caught.value.context is ErrorContext.LOCAL_FILE
    assert caught.value.transient  # space can be freed
    written = part.read_bytes()
    assert 0 < len(written) <= 1 << 20
    assert written == DATA[: len(written)]  # what did fit is the true prefix
    assert progress.offset <= len(written)
    small_disk.grow()
    job = Download(server.url("/f"), str(part), offset=progress.offset, known=progress.version, timeout=(5, 5))
    download(client, job, progress)
    client.close()
    assert sha(part.read_bytes()) == sha(DATA)


@pytest.mark.parametrize("around_the_cache", [False, True], ids=["page cache", "O_DIRECT"])
def test_what_fit_before_a_full_disk_is_recorded(
    server, small_disk: Disk, around_the_cache: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 8: the bytes written before the disk filled are fsynced and checkpointed before the error,
    so a retry starts from them, not from the last periodic checkpoint (none, in the first second)."""
    if around_the_cache:
        monkeypatch.setattr(direct, "MIN_BYTES", 1 << 20)
        monkeypatch.setattr(direct, "BUFFER", 256 << 10)
    part, progress = small_disk.path / ".part", Checkpoints()
    client = Client()
    try:
        with pytest.raises(TransferError):
            download(client, Download(server.url("/f"), str(part), timeout=(5, 5)), progress)
    finally:
        client.close()
    assert progress.offset > 0
    assert part.read_bytes()[: progress.offset] == DATA[: progress.offset]


def test_a_job_waits_in_transient_error_and_completes_once_the_disk_has_room(
    new_daemon, ok, server, small_disk: Disk
) -> None:
    clock = FakeClock()
    target = small_disk.path / "f"
    job = ok("create", "--raw", "full").stdout
    ok("addfile", job, server.url("/f"), str(target))
    ok("setminretrydelay", job, "60")
    ok("resume", job)
    daemon = new_daemon(clock)
    run_once(daemon)
    found = get_job(open_context(), job)
    assert found.state is JobState.TRANSIENT_ERROR
    assert found.error is not None
    assert found.error.code == HResult.ERROR_DISK_FULL
    assert found.error.context is ErrorContext.LOCAL_FILE
    assert not target.exists()  # nothing under the final name
    small_disk.grow()
    clock.advance(75)  # the retry delay, and its spread (up to a quarter more)
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED
    ok("complete", job)
    assert sha(target.read_bytes()) == sha(DATA)


def test_a_local_copy_on_a_full_disk_is_transient_and_resumes(small_disk: Disk) -> None:
    from bitscli.transfer import local

    small_disk.grow("4m")
    source = small_disk.path / "source.bin"  # on the same filesystem: the kernel copies (copy_file_range)
    data = os.urandom(5 * 1024 * 1024 // 2)
    source.write_bytes(data)
    part, progress = small_disk.path / ".part", Checkpoints()
    with pytest.raises(TransferError) as caught:
        local.copy(Download(source.as_uri(), str(part)), progress)
    assert caught.value.code == HResult.ERROR_DISK_FULL
    assert caught.value.context is ErrorContext.LOCAL_FILE
    assert caught.value.transient
    assert part.read_bytes() == data[: part.stat().st_size]
    small_disk.grow()
    local.copy(Download(source.as_uri(), str(part), offset=progress.offset, known=progress.version), progress)
    assert sha(part.read_bytes()) == sha(data)


def test_a_file_size_limit_is_its_own_error(ok, home: Path, tmp_path: Path) -> None:
    """Issue 13, item 7: EFBIG (`ulimit -f`, or a file system's largest file) is not a full disk, and no retry
    makes the file fit: ERROR_FILE_TOO_LARGE, and ERROR at once."""
    from .daemonproc import DaemonProcess, wait_for

    server = FaultServer()
    server.put("/big", os.urandom(3 << 20))
    daemon = DaemonProcess(home, file_size_limit=1 << 20).start()
    try:
        job = ok("create", "--raw", "big").stdout
        ok("addfile", job, server.url("/big"), str(tmp_path / "big"))
        ok("resume", job)
        wait_for(lambda: state(job) is JobState.ERROR)
        error = ok("geterror", job, "--json").json["value"]
        assert error["code"] == "0x800700df"
        assert "ERROR_FILE_TOO_LARGE" in ok("geterror", job).stdout
    finally:
        daemon.stop()
        daemon.close()
        server.close()


def test_a_directory_removed_mid_job_is_never_counted_as_progress(new_daemon, ok, cli, tmp_path: Path) -> None:
    """Issue 13, item 6: `rm -rf` the destination and make it again; the bytes written into the unlinked part
    file are on no disk: no checkpoint counts them, the error is transient, and the file starts over."""
    import shutil

    from .daemonproc import settle, wait_for

    data = os.urandom(4 << 20)
    server = FaultServer()
    server.put("/f", data)
    server.chunk_delay = 0.05  # 64 KiB each: about three seconds, time to pull the floor away
    target_dir = tmp_path / "dest"
    target_dir.mkdir()
    try:
        job = ok("create", "--raw", "j").stdout
        ok("addfile", job, server.url("/f"), str(target_dir / "f"))
        ok("setminretrydelay", job, "5")
        ok("resume", job)
        clock = FakeClock()
        daemon = new_daemon(clock)
        daemon.tick()
        wait_for(lambda: any(p.stat().st_size > 0 for p in target_dir.iterdir()))
        shutil.rmtree(target_dir)
        target_dir.mkdir()
        settle(daemon)
        found = get_job(open_context(), job)
        assert found.state is JobState.TRANSIENT_ERROR, found.error
        assert found.error is not None
        assert found.error.context is ErrorContext.LOCAL_FILE
        on_disk = sum(p.stat().st_size for p in target_dir.iterdir())
        assert found.bytes_transferred <= on_disk  # never progress that no disk holds
        server.chunk_delay = 0.0
        clock.advance(7)
        run_once(daemon)
        assert state(job) is JobState.TRANSFERRED
        ok("complete", job)
        assert hashlib.sha256((target_dir / "f").read_bytes()).digest() == hashlib.sha256(data).digest()
    finally:
        server.close()


def test_complete_that_keeps_nothing_is_not_a_success(ok, cli, tmp_path: Path) -> None:
    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, "http://127.0.0.1:1/f", str(tmp_path / "f"))
    result = cli("complete", job)
    assert result.exit_code == 10
    assert "nothing was kept" in result.stderr


def test_a_full_state_disk_does_not_stop_the_daemon(ok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13, item 3: the queue's file system fills up mid-job; the daemon keeps running, says why in its log
    (no traceback), waits, and finishes the job once there is room again, losing nothing."""
    from .daemonproc import DaemonProcess, wait_for

    home = tmp_path / "state"
    home.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(home)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.decode().strip()}")
    server = FaultServer()
    data = os.urandom(4 << 20)
    server.put("/f", data)
    server.chunk_delay = 0.02
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("BITSCLI_HOME", str(home))
    daemon = DaemonProcess(home)
    filler = home / "filler"
    try:
        job = ok("create", "--raw", "j").stdout
        ok("addfile", job, server.url("/f"), str(out / "f"))
        daemon.start()
        ok("resume", job)
        wait_for(lambda: any(p.stat().st_size > 0 for p in out.iterdir()))
        log = home / "daemon.log"
        # Room kept for the log alone (allocated past its end), so that it can say why once the disk is full.
        reserved = subprocess.run(["fallocate", "-n", "-o", str(log.stat().st_size), "-l", "262144", str(log)],
                                  capture_output=True, check=False)  # fmt: skip
        if reserved.returncode:
            pytest.skip(f"fallocate --keep-size is not available: {reserved.stderr.decode().strip()}")
        with open(filler, "wb") as fill, contextlib.suppress(OSError):  # the state disk is full now
            while True:
                fill.write(b"\0" * 65536)
                fill.flush()
        wait_for(lambda: "cannot" in log.read_text())
        assert daemon.process is not None
        assert daemon.process.poll() is None  # still running
        filler.unlink()  # room again
        server.chunk_delay = 0.0
        wait_for(lambda: ok("getstate", job).stdout == "TRANSFERRED\n", timeout=90)
        ok("complete", job)
        assert hashlib.sha256((out / "f").read_bytes()).digest() == hashlib.sha256(data).digest()
        assert "Traceback" not in log.read_text()
    finally:
        daemon.stop()
        daemon.close()
        server.close()
        subprocess.run(["umount", "-l", str(home)], check=False)
