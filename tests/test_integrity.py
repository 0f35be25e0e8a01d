"""Sure it is the right file (issue 15): an expected hash is checked as the bytes are written, a mismatch is
fetched once more from zero, a second one is an ERROR with both hashes, and nothing wrong is ever published."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import run_process
from tests.daemonproc import DaemonProcess, run_once, state, wait_for
from tests.faultserver import FaultServer

HASH_VALUE = "0x80091007"  # CRYPT_E_HASH_VALUE


@pytest.fixture
def server() -> FaultServer:
    srv = FaultServer()
    yield srv  # type: ignore[misc]
    srv.close()


def _job(ok, server: FaultServer, target: Path, data: bytes, *flags: str) -> str:  # type: ignore[no-untyped-def]
    server.put("/f", data)
    job = ok("create", "--raw", "sure").stdout.strip()
    ok("addfile", job, server.url("/f"), str(target), *flags)
    ok("resume", job)
    return job


@pytest.mark.parametrize("size", [300_000, 33 << 20], ids=["page-cache", "o-direct"])
def test_bytes_corrupted_once_are_fetched_again_and_verified(
    new_daemon, ok, server: FaultServer, tmp_path: Path, size: int
) -> None:  # fmt: skip
    from bitscli.model import JobState

    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    server.fault(path="/f", corrupt=True)  # one GET serves a flipped byte
    target = tmp_path / "f.bin"
    job = _job(ok, server, target, data, "--sha256", digest)
    run_once(new_daemon())
    assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
    files = ok("listfiles", job, "--json").json["files"]
    assert files[0]["verified_hash"] == f"sha256:{digest}"
    assert files[0]["hash_mismatches"] == 1
    assert len(server.gets("/f")) == 2  # once corrupted, once right: from zero, not resumed on the bad bytes
    assert "VERIFIED" in ok("info", "--verbose", job).stdout
    ok("complete", job)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


def test_bytes_corrupted_every_time_end_in_error_with_both_hashes(
    new_daemon, ok, server: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    from bitscli.model import JobState

    data = os.urandom(200_000)
    digest = hashlib.sha512(data).hexdigest()
    server.fault(path="/f", corrupt=True, times=100)
    target = tmp_path / "f.bin"
    job = _job(ok, server, target, data, "--hash", f"SHA512:{digest.upper()}")
    run_once(new_daemon())
    assert state(job) is JobState.ERROR
    error = ok("geterror", "--json", job).json["value"]
    assert error["code"] == HASH_VALUE
    assert f"expected sha512:{digest}" in error["message"]
    bad = bytes([data[0] ^ 0xFF]) + data[1:]
    assert f"got sha512:{hashlib.sha512(bad).hexdigest()}" in error["message"]
    assert len(server.gets("/f")) == 2
    assert not target.exists()
    assert run_process("complete", job).exit_code != 0  # an ERROR job publishes nothing
    assert not target.exists()


def test_a_right_hash_is_verified_on_the_first_fetch(new_daemon, ok, server: FaultServer, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    job = _job(ok, server, tmp_path / "f.bin", data, "--hash", f"md5:{hashlib.md5(data).hexdigest()}")  # noqa: S324
    run_once(new_daemon())
    files = ok("listfiles", job, "--json").json["files"]
    assert files[0]["verified_hash"] == files[0]["expected_hash"]
    assert files[0]["hash_mismatches"] == 0
    assert len(server.gets("/f")) == 1


def test_a_local_copy_is_verified_too(new_daemon, ok, tmp_path: Path) -> None:
    from bitscli.model import JobState

    source = tmp_path / "source.bin"
    source.write_bytes(b"local bytes" * 1000)
    job = ok("create", "--raw", "local").stdout.strip()
    ok("addfile", job, str(source), str(tmp_path / "copy.bin"), "--sha256", "0" * 64)
    ok("resume", job)
    run_once(new_daemon())
    assert state(job) is JobState.ERROR  # a local source that does not match is as wrong as a remote one
    assert "expected sha256:" + "0" * 64 in ok("geterror", "--json", job).json["value"]["message"]


def test_the_hash_survives_a_daemon_kill_9_mid_file(ok, home: Path, server: FaultServer, tmp_path: Path) -> None:
    """The part saved before the kill is hashed once when the file resumes; the result is still right."""
    data = os.urandom(6 << 20)
    digest = hashlib.sha256(data).hexdigest()
    server.chunk_delay = 0.05  # about 1.3 MB/s: the first checkpoint (1 s) comes long before the end
    target = tmp_path / "f.bin"
    job = _job(ok, server, target, data, "--sha256", digest)
    daemon = DaemonProcess(home).start()
    try:
        wait_for(lambda: ok("getbytestransferred", job).stdout.strip() not in ("0", ""))
        daemon.kill9()
        server.chunk_delay = 0
        daemon.start()
        wait_for(lambda: ok("getstate", job).stdout.strip() == "TRANSFERRED", timeout=120)
    finally:
        daemon.close()
    files = ok("listfiles", job, "--json").json["files"]
    assert files[0]["verified_hash"] == f"sha256:{digest}"
    assert any(s.headers.get("Range") for s in server.gets("/f")), "the kill landed before any checkpoint"
    ok("complete", job)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


def test_addfileset_takes_a_third_column_and_transfer_takes_sha256(ok, home: Path, server: FaultServer,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    data = b"listed" * 1000
    server.put("/a", data)
    job = ok("create", "--raw", "set").stdout.strip()
    listing = tmp_path / "files.txt"
    good = hashlib.sha256(data).hexdigest()
    listing.write_text(f"{server.url('/a')} {tmp_path / 'a'} sha256:{good}\n{server.url('/a')} {tmp_path / 'b'}\n")
    ok("addfileset", job, str(listing))
    files = ok("listfiles", job, "--json").json["files"]
    assert [f["expected_hash"] for f in files] == [f"sha256:{good}", None]
    daemon = DaemonProcess(home).start()
    try:
        wrong = run_process("transfer", "t", server.url("/a"), str(tmp_path / "t"), "--sha256", "1" * 64)
        assert wrong.exit_code == 10
        assert "expected sha256:" + "1" * 64 in wrong.stderr
        assert not (tmp_path / "t").exists()
        right = run_process("transfer", "t2", server.url("/a"), str(tmp_path / "t2"), "--sha256", good)
        assert right.exit_code == 0, right.stderr
        assert (tmp_path / "t2").read_bytes() == data
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sha256", "abc"], "is not a sha256 hash"),
        (["--hash", "crc32:1234abcd"], "unknown hash algorithm"),
        (["--sha256", "g" * 64], "is not a sha256 hash"),
        (["--sha256", "a" * 64, "--hash", "md5:" + "a" * 32], "not both"),
    ],
)
def test_bad_hashes_are_clear_errors(cli, ok, tmp_path: Path, flags: list[str], message: str) -> None:
    job = ok("create", "--raw", "bad").stdout.strip()
    result = cli("addfile", job, "http://127.0.0.1:9/f", str(tmp_path / "f"), *flags)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    upload = ok("create", "--raw", "--upload", "up").stdout.strip()
    (tmp_path / "u").write_text("x")
    refused = cli("addfile", upload, "http://127.0.0.1:9/u", str(tmp_path / "u"), "--sha256", "a" * 64)
    assert "a whole downloaded file" in refused.stderr


@pytest.mark.parametrize(("header", "algorithm"), [("Repr-Digest", "sha256"), ("Digest", "sha512"),
                                                   ("Content-MD5", "md5")])  # fmt: skip
def test_the_servers_digest_is_checked_without_an_expected_hash(
    new_daemon, ok, server: FaultServer, tmp_path: Path, header: str, algorithm: str
) -> None:  # fmt: skip
    from bitscli.model import JobState

    data = os.urandom(400_000)
    server.digest = header
    server.fault(path="/f", corrupt=True)
    target = tmp_path / "f.bin"
    job = _job(ok, server, target, data)  # no --sha256: the server's word is the check
    run_once(new_daemon())
    assert state(job) is JobState.TRANSFERRED
    files = ok("listfiles", job, "--json").json["files"]
    assert files[0]["verified_hash"] == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert files[0]["hash_mismatches"] == 1
    server.fault(path="/f", corrupt=True, times=100)
    again = _job(ok, server, tmp_path / "g.bin", data)
    run_once(new_daemon())
    assert state(again) is JobState.ERROR
    assert f"the server's {header} says {algorithm}:" in ok("geterror", "--json", again).json["value"]["message"]


def test_a_resumed_file_is_checked_against_the_servers_digest(
    new_daemon, ok, server: FaultServer, tmp_path: Path
) -> None:  # fmt: skip
    """A 206 carries Repr-Digest of the whole file: the saved part is hashed once, then the rest as it comes."""
    from bitscli.model import JobState

    data = os.urandom(3 << 20)
    server.digest = "Repr-Digest"
    server.fault(path="/f", reset_after=2 << 20)  # cut mid-body: the rest comes as a ranged GET
    job = _job(ok, server, tmp_path / "f.bin", data)
    daemon = new_daemon()
    for _ in range(3):
        run_once(daemon)
        if state(job) is JobState.TRANSFERRED:
            break
    assert state(job) is JobState.TRANSFERRED
    assert any(s.headers.get("Range") for s in server.gets("/f"))
    assert (
        ok("listfiles", job, "--json").json["files"][0]["verified_hash"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
    )


def test_no_digest_and_no_hash_means_no_hashing(new_daemon, ok, server: FaultServer, tmp_path: Path) -> None:
    job = _job(ok, server, tmp_path / "f.bin", os.urandom(50_000))
    run_once(new_daemon())
    assert ok("listfiles", job, "--json").json["files"][0]["verified_hash"] is None
