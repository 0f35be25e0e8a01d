"""The download engine against a real local server that misbehaves on request."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.model import UNKNOWN, ErrorContext
from bitscli.transfer.classify import TransferError, parse_retry_after, status_is_transient
from bitscli.transfer.client import Client
from bitscli.transfer.http import download, parse_content_range
from bitscli.transfer.types import Download, Stopped, Version

from .daemonproc import wait_for
from .faultserver import FaultServer, serving
from .progress import Checkpoints

DATA = os.urandom(3 * 1024 * 1024 + 123)


class Recorder:
    """Progress that remembers checkpoints, and can ask the engine to stop."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.checkpoints: list[tuple[int, Version]] = []
        self.transferring_calls = 0
        self.stop_after = stop_after

    def transferring(self, abort, url) -> None:
        self.transferring_calls += 1
        self.abort = abort

    def checkpoint(self, offset: int, version: Version, url: str) -> None:
        self.checkpoints.append((offset, version))

    def stop_requested(self) -> bool:
        return self.stop_after is not None and bool(self.checkpoints) and self.checkpoints[-1][0] >= self.stop_after

    def pace(self, nbytes: int) -> int:
        return 1 << 20  # unpaced: the engine's largest read

    @property
    def offset(self) -> int:
        return self.checkpoints[-1][0]

    @property
    def version(self) -> Version:
        return self.checkpoints[-1][1]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", DATA)


@pytest.fixture
def session() -> Iterator[Client]:
    client = Client()
    yield client
    client.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(session, server, part: Path, recorder: Recorder, **kw) -> Version:
    job = Download(url=server.url(kw.pop("path", "/f")), part=str(part), timeout=(5, 5), **kw)
    return download(session, job, recorder)


def resume_from(recorder: Recorder) -> dict:
    return {"offset": recorder.offset, "known": recorder.version}


def test_whole_file(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    version = fetch(session, server, part, rec)
    assert sha(part.read_bytes()) == sha(DATA)
    assert version.size == len(DATA)
    assert version.etag == server.etag("/f")
    assert all(offset <= len(DATA) for offset, _ in rec.checkpoints)  # completion is the caller's to record
    assert server.gets("/f")[0].headers.get("Accept-Encoding") == "identity"


def test_resume_after_reset_mid_body_uses_range_and_if_range(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(reset_after=1_000_000)
    with pytest.raises(TransferError) as caught:
        fetch(session, server, part, rec)
    assert caught.value.transient
    assert caught.value.context is ErrorContext.GENERAL_TRANSPORT
    saved = rec.offset
    assert 0 < saved <= 1_000_000
    assert part.read_bytes() == DATA[:saved]  # only bytes that really arrived
    fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(DATA)
    last = server.gets("/f")[-1].headers
    assert last["Range"] == f"bytes={saved}-"
    assert last["If-Range"] == server.etag("/f")


def test_truncated_body_is_resumed_not_accepted(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=500_000)
    with pytest.raises(TransferError) as caught:
        fetch(session, server, part, rec)
    assert caught.value.transient
    assert rec.offset == 500_000
    fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(DATA)


def test_a_200_to_a_range_request_restarts_the_file(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=700_000)
    with pytest.raises(TransferError):
        fetch(session, server, part, rec)
    server.fault(ignore_range=True)
    fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(DATA)
    assert (0, Version()) in rec.checkpoints  # the restart was recorded before new bytes


def test_a_wrong_content_range_is_never_spliced(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=600_000)
    with pytest.raises(TransferError):
        fetch(session, server, part, rec)
    server.fault(wrong_range=True)
    with pytest.raises(TransferError) as caught:
        fetch(session, server, part, rec, **resume_from(rec))
    assert caught.value.transient
    assert caught.value.code == 0x80200013
    assert part.read_bytes() == DATA[:600_000]
    fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(DATA)


def test_a_changed_remote_restarts_with_the_new_content(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=800_000)
    with pytest.raises(TransferError):
        fetch(session, server, part, rec)
    new = os.urandom(len(DATA))  # same size, new content: only the validators tell
    server.put("/f", new)
    version = fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(new)
    assert version.etag == server.etag("/f")


def test_a_changed_remote_without_head_is_caught_by_if_range(server, session, tmp_path: Path) -> None:
    server.head_allowed = False
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=800_000)
    with pytest.raises(TransferError):
        fetch(session, server, part, rec)
    new = os.urandom(len(DATA) + 5)
    server.put("/f", new)
    fetch(session, server, part, rec, **resume_from(rec))
    assert sha(part.read_bytes()) == sha(new)


def test_503_with_retry_after(server, session, tmp_path: Path) -> None:
    server.fault(status=503, headers={"Retry-After": "120"}, times=2)
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "p", Recorder())
    assert caught.value.transient
    assert caught.value.code == 0x801901F7
    assert caught.value.retry_after == 120


@pytest.mark.parametrize(
    ("status", "transient"), [(404, False), (403, False), (500, True), (501, False), (408, True), (429, True)]
)
def test_http_statuses(server, session, tmp_path: Path, status: int, transient: bool) -> None:
    server.fault(status=status, times=2)  # HEAD and GET both see it
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "p", Recorder())
    assert caught.value.transient is transient
    assert caught.value.code == 0x80190000 + status
    assert caught.value.context is ErrorContext.REMOTE_FILE


def test_missing_file_is_fatal_at_head(server, session, tmp_path: Path) -> None:
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "p", Recorder(), path="/nope")
    assert not caught.value.transient
    assert caught.value.code == 0x80190194


def test_connection_refused_is_transient(session, tmp_path: Path) -> None:
    with socket_on_closed_port() as port:
        job = Download(url=f"http://127.0.0.1:{port}/x", part=str(tmp_path / "p"), timeout=(2, 2))
        with pytest.raises(TransferError) as caught:
            download(session, job, Recorder())
    assert caught.value.transient
    assert caught.value.code == 0x80072EFD


def test_the_files_of_a_job_share_one_kept_alive_connection(server, session, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        server.put(f"/{name}", name.encode() * 1000)
        fetch(session, server, tmp_path / name, Recorder(), path=f"/{name}")
        assert (tmp_path / name).read_bytes() == name.encode() * 1000
    assert len({s.port for s in server.seen}) == 1


@pytest.mark.parametrize("fault", [{"close_after": True}, {"drop": True}], ids=["closed-while-idle", "closed-as-used"])
def test_a_kept_alive_connection_the_server_closed_is_replaced(server, session, tmp_path: Path, fault: dict) -> None:
    # A server's idle timeout: noticed before the request (closed-while-idle), or only when the GET meets a
    # closed socket (closed-as-used), which is then sent again on a new connection instead of failing the file.
    server.put("/g", b"g" * 5000)
    fault_path = "/f" if "close_after" in fault else "/g"
    server.fault(path=fault_path, **fault)
    fetch(session, server, tmp_path / "f", Recorder())
    fetch(session, server, tmp_path / "g", Recorder(), path="/g")
    assert sha((tmp_path / "f").read_bytes()) == sha(DATA)
    assert (tmp_path / "g").read_bytes() == b"g" * 5000
    assert len({s.port for s in server.seen}) == 2


def test_a_request_broken_by_a_stop_is_not_sent_again(server, session, tmp_path: Path) -> None:
    server.put("/g", b"g")
    fetch(session, server, tmp_path / "f", Recorder())  # a kept-alive connection, reused by the next GET
    server.fault(path="/g", delay=30)  # the answer is late: the worker waits for its status line
    stopper = threading.Thread(target=lambda: wait_for(lambda: server.gets("/g")) and session.abort())
    stopper.start()
    with pytest.raises(TransferError):
        fetch(session, server, tmp_path / "g", Recorder(), path="/g")
    stopper.join()
    assert len(server.gets("/g")) == 1  # the broken GET was not retried on a new connection


def test_characters_http_forbids_in_a_path_are_percent_encoded(server, session, tmp_path: Path) -> None:
    server.put("/a%20b%C3%A9", b"spaced")
    fetch(session, server, tmp_path / "p", Recorder(), path="/a bé")
    assert (tmp_path / "p").read_bytes() == b"spaced"


def test_a_chunked_body_of_unknown_length_downloads_whole(server, session, tmp_path: Path) -> None:
    server.fault(chunked=True)
    version = fetch(session, server, tmp_path / "p", Recorder())
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
    assert version.size == len(DATA)


def test_a_chunked_body_cut_short_is_a_transient_error_with_a_true_prefix(server, session, tmp_path: Path) -> None:
    server.fault(chunked=True, truncate_after=300_000)  # inside the fifth 64 KiB chunk
    recorder = Recorder()
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "p", recorder)
    assert caught.value.transient
    kept = (tmp_path / "p").read_bytes()[: resume_from(recorder)["offset"]]
    assert 0 < len(kept) < 300_000
    assert kept == DATA[: len(kept)]


def test_stop_request_saves_progress(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    rec = Recorder(stop_after=1)
    server.fault(trickle=0.001)
    with pytest.raises(Stopped):
        fetch(session, server, part, rec)
    assert 0 < rec.offset < len(DATA)
    assert part.stat().st_size == rec.offset


def test_abort_breaks_a_stalled_read(server, session, tmp_path: Path) -> None:
    import threading

    rec = Recorder()
    server.fault(trickle=0.5)  # a byte every half second: reads block
    timer = threading.Timer(1.0, lambda: rec.abort())
    timer.start()
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "p", rec)
    timer.join()
    assert caught.value.transient
    assert rec.offset == (tmp_path / "p").stat().st_size


def test_dynamic_content_skips_head_and_starts_over(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    part.write_bytes(b"stale bytes")
    rec = Recorder()
    fetch(session, server, part, rec, offset=11, dynamic=True)
    assert sha(part.read_bytes()) == sha(DATA)
    assert [s.method for s in server.seen] == ["GET"]
    assert "Range" not in server.seen[0].headers


def test_bytes_past_the_durable_offset_are_cut(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    part.write_bytes(DATA[:1000] + b"garbage written after the last fsync")
    fetch(session, server, part, Recorder(), offset=1000, known=Version(len(DATA), server.etag("/f"), None))
    assert sha(part.read_bytes()) == sha(DATA)


def test_already_complete(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    part.write_bytes(DATA)
    fetch(session, server, part, Recorder(), offset=len(DATA), known=Version(len(DATA), server.etag("/f"), None))
    assert server.gets("/f") == []  # HEAD told us we had it all


def test_redirect_policies(server, session, tmp_path: Path) -> None:
    server.fault(path="/r", status=302, headers={"Location": "/f"}, times=2)  # for HEAD and GET
    fetch(session, server, tmp_path / "a", Recorder(), path="/r")
    assert sha((tmp_path / "a").read_bytes()) == sha(DATA)
    server.fault(path="/r", status=302, headers={"Location": "/f"})
    with pytest.raises(TransferError) as caught:
        fetch(session, server, tmp_path / "b", Recorder(), path="/r", security_flags=0x200)
    assert not caught.value.transient
    assert "disallow" in caught.value.message


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-9/10", (0, 9, 10)),
        ("bytes 5-9/*", (5, 9, UNKNOWN)),
        ("BYTES 1-1/2", (1, 1, 2)),
    ],
)
def test_parse_content_range(value: str, parsed: tuple[int, int, int]) -> None:
    assert parse_content_range(value) == parsed


@pytest.mark.parametrize("value", ["", "bytes 9-5/10", "bytes 0-10/10", "items 0-1/2", "bytes */10"])
def test_parse_content_range_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="Content-Range"):
        parse_content_range(value)


def test_version_comparison_and_if_range() -> None:
    assert Version(10, '"a"', None).differs_from(Version(10, '"b"', None))
    assert Version(10, None, None).differs_from(Version(11, None, None))
    assert not Version(10, '"a"', None).differs_from(Version(UNKNOWN, None, None))
    assert Version(1, 'W/"weak"', "Tue, 01 Jan 2030 00:00:00 GMT").if_range() == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert Version(1, '"strong"', "x").if_range() == '"strong"'


def test_bits_status_table() -> None:
    assert [s for s in range(300, 310) if status_is_transient(s)] == [306, 308, 309]
    assert [s for s in range(400, 420) if status_is_transient(s)] == [408, 409]
    assert [s for s in range(500, 506) if not status_is_transient(s)] == [501, 505]


def test_retry_after_forms() -> None:
    assert parse_retry_after("30", 0) == 30
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", 0) == 60
    assert parse_retry_after("soon", 0) is None


class socket_on_closed_port:
    """A port that was just free: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


def ranged(session, server, part: Path, text: str, rec: Recorder | None = None, **kw) -> Version:
    from bitscli.inputs.names import parse_ranges
    from bitscli.transfer import ranges

    job = Download(url=server.url("/f"), part=str(part), timeout=(5, 5), **kw)
    return ranges.download(session, job, parse_ranges(text, 500), rec or Recorder())


def test_ranges_are_written_in_the_order_given(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    version = ranged(session, server, part, "100:100,900:100,400:100")
    assert part.read_bytes() == DATA[100:200] + DATA[900:1000] + DATA[400:500]  # BITS' own example
    assert version.size == 300


def test_a_range_to_eof(server, session, tmp_path: Path) -> None:
    part = tmp_path / "p"
    ranged(session, server, part, "0:10,3000000:eof")
    assert part.read_bytes() == DATA[:10] + DATA[3000000:]


def test_a_range_past_the_end_is_fatal(server, session, tmp_path: Path) -> None:
    with pytest.raises(TransferError) as caught:
        ranged(session, server, tmp_path / "p", f"{len(DATA) - 5}:10")
    assert not caught.value.transient
    assert caught.value.code == 0x8020002B


def test_a_server_that_ignores_ranges_is_fatal_for_ranged_files(server, session, tmp_path: Path) -> None:
    server.fault(ignore_range=True)
    with pytest.raises(TransferError) as caught:
        ranged(session, server, tmp_path / "p", "10:10")
    assert not caught.value.transient
    assert caught.value.code == 0x80200013


def test_ranges_resume_inside_a_range(server, session, tmp_path: Path) -> None:
    part, rec = tmp_path / "p", Recorder()
    server.fault(truncate_after=300_000)  # cuts the first range
    expected = DATA[:500_000] + DATA[1_000_000:2_000_000]
    with pytest.raises(TransferError):
        ranged(session, server, part, "0:500000,1000000:1000000", rec)
    assert rec.offset == 300_000
    ranged(session, server, part, "0:500000,1000000:1000000", rec, offset=rec.offset, known=rec.version)
    assert part.read_bytes() == expected


@pytest.mark.parametrize(
    ("flags", "source", "target", "allowed"),
    [
        (0, "https://a/x", "http://a/x", False),  # a downgrade needs 0x800
        (0x800, "https://a/x", "http://a/x", True),
        (0x100 | 0x800, "https://a/x", "http://b/x", True),
        (0, "http://a/x", "https://b/x", True),
        (0x200, "http://a/x", "http://a/y", False),  # DISALLOW
        (0, "http://a/x", "ftp://a/x", False),
        (0, "http://a/x", "file:///etc/passwd", False),
    ],
)
def test_redirect_policy_table(flags: int, source: str, target: str, allowed: bool) -> None:
    from bitscli.transfer.http import _check_redirect

    if allowed:
        _check_redirect(flags, source, target, 302)
    else:
        with pytest.raises(TransferError) as caught:
            _check_redirect(flags, source, target, 302)
        assert not caught.value.transient
        assert caught.value.code == 0x80190000 + 302


def test_https_with_a_trusted_ca_and_refusal_of_an_untrusted_one(tmp_path: Path, monkeypatch) -> None:
    import ssl

    import trustme

    from bitscli.transfer import job_request

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = FaultServer(tls=context)
    server.put("/f", DATA)
    client = Client()
    try:
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        verify = {"verify": job_request._ca_bundle()}
        job = Download(url=server.url("/f"), part=str(tmp_path / "p"), request_options=verify)
        download(client, job, Recorder())
        assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
        untrusted = Download(url=server.url("/f"), part=str(tmp_path / "q"))  # default roots: not our CA
        with pytest.raises(TransferError) as caught:
            download(Client(), untrusted, Recorder())
        assert not caught.value.transient
        assert caught.value.code == 0x80072F8F
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(
    ("path", "stop_at", "stopped_at"),
    [("kernel", 3, 16 << 20), ("read-write", 4, 3 << 20)],  # two 8 MiB copy_file_range calls, or three 1 MiB reads
)
def test_a_local_copy_stops_with_its_bytes_saved_and_resumes(
    tmp_path: Path, monkeypatch, path: str, stop_at: int, stopped_at: int
) -> None:
    from bitscli.transfer import local

    if path == "read-write":
        monkeypatch.delattr(os, "copy_file_range", raising=False)  # as on macOS and Windows
    source = tmp_path / "source.bin"
    data = os.urandom(20 * 1024 * 1024 + 1)
    source.write_bytes(data)
    part = tmp_path / "p"
    progress = Checkpoints(stop_at=stop_at)
    with pytest.raises(Stopped):
        local.copy(Download(url=source.as_uri(), part=str(part)), progress)
    assert progress.offset == stopped_at  # the checkpoint names every byte written, all fsynced
    assert part.read_bytes() == data[: progress.offset]
    resumed = Checkpoints()
    job = Download(url=source.as_uri(), part=str(part), offset=progress.offset, known=progress.version)
    version = local.copy(job, resumed)
    assert version.size == len(data)
    assert sha(part.read_bytes()) == sha(data)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem is Linux's")
def test_a_local_source_that_cannot_be_read_is_a_remote_file_error(tmp_path: Path) -> None:
    from bitscli.transfer import local

    part = tmp_path / "p"
    with pytest.raises(TransferError) as caught:  # /proc/self/mem opens, and reading its byte 0 fails (EIO)
        local.copy(Download(url="/proc/self/mem", part=str(part)), Checkpoints())
    assert caught.value.context is ErrorContext.REMOTE_FILE  # the source, not our part file
    assert "Input/output error" in caught.value.message
    assert part.read_bytes() == b""
