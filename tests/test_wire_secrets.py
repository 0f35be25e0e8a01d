"""The wire and secrets: credentials never follow a redirect to another origin, and a password never leaves."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.model import AuthScheme, JobState
from bitscli.transfer.auth import Login
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.transfer.http import download
from bitscli.transfer.types import Download

from .daemonproc import DaemonProcess, state, wait_for
from .faultserver import FaultServer
from .test_http_engine import Recorder
from .test_http_responses import serve

DATA = bytes(range(256)) * 64
SECRET_HEADERS = {"Authorization": "Bearer tok-SECRET1", "Cookie": "sid=SECRET2", "X-Api-Token": "SECRET3"}


@pytest.fixture
def origins() -> Iterator[tuple[FaultServer, FaultServer]]:
    first, second = FaultServer(), FaultServer()
    yield first, second
    first.close()
    second.close()


def _fetch(client: Client, url: str, part: Path) -> None:
    job = Download(
        url=url, part=str(part), headers={**SECRET_HEADERS, "X-Plain": "kept"},
        request_options={"logins": (Login(AuthScheme.BASIC, "alice", "pw-SECRET4"),)},
    )  # fmt: skip
    download(client, job, Recorder())


def test_a_redirect_to_another_origin_leaves_credentials_and_secret_headers_behind(
    client: Client, origins: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    """Issue 12, item 8: as curl, wget and requests do; a plain header still goes."""
    first, second = origins
    second.put("/f", DATA)
    first.fault(path="/r", status=302, headers={"Location": second.url("/f")})
    _fetch(client, first.url("/r"), tmp_path / "p")
    assert hashlib.sha256((tmp_path / "p").read_bytes()).digest() == hashlib.sha256(DATA).digest()
    (at_first,) = first.gets("/r")
    assert at_first.headers["Authorization"] == "Bearer tok-SECRET1"  # the origin the job named gets them
    (at_second,) = second.gets("/f")
    sent = {name.lower() for name in at_second.headers}
    assert not sent & {"authorization", "cookie", "x-api-token", "proxy-authorization"}
    assert at_second.headers["X-Plain"] == "kept"


def test_a_redirect_within_the_origin_keeps_them(client: Client, origins: tuple[FaultServer, FaultServer],
                                                tmp_path: Path) -> None:  # fmt: skip
    first, _ = origins
    first.put("/f", DATA)
    first.fault(path="/r", status=302, headers={"Location": "/f"})
    _fetch(client, first.url("/r"), tmp_path / "p")
    (at_target,) = first.gets("/f")
    assert at_target.headers["Authorization"] == "Bearer tok-SECRET1"
    assert at_target.headers["Cookie"] == "sid=SECRET2"


def test_a_redirect_to_another_port_of_the_same_host_is_another_origin(
    client: Client, origins: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    first, second = origins
    second.put("/f", DATA)
    first.fault(path="/r", status=307, headers={"Location": f"http://127.0.0.1:{second.port}/f"})
    job = Download(url=first.url("/r"), part=str(tmp_path / "p"),
                   request_options={"logins": (Login(AuthScheme.BASIC, "alice", "pw-SECRET4"),)})  # fmt: skip
    download(client, job, Recorder())
    (at_second,) = second.gets("/f")
    assert "authorization" not in {name.lower() for name in at_second.headers}


def test_a_header_section_over_the_limit_says_so(client: Client, tmp_path: Path) -> None:
    """Issue 12, item 14: not "connection lost"."""
    server = serve([b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\nContent-Length: 1\r\n\r\na"] * 2)
    try:
        with pytest.raises(TransferError) as caught:
            download(client, Download(url=server.url(), part=str(tmp_path / "p"), timeout=(5, 5)), Recorder())
    finally:
        server.close()
    assert "header section" in caught.value.message
    assert "connection lost" not in caught.value.message


def test_a_url_with_a_password_is_refused_with_a_hint(cli, ok) -> None:
    """Issue 12, item 9: it would never log in, and it would show in every listing."""
    job = ok("create", "--raw", "j").stdout
    result = cli("addfile", job, "http://alice:pw-SECRET5@127.0.0.1:1/f", "/tmp/x")
    assert result.exit_code == 2
    assert "pw-SECRET5" not in result.stdout + result.stderr
    assert "setcredentials" in result.stderr


def test_no_secret_reaches_any_output(ok, cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12, item 9: a password in a queued URL (from an older bitscli) and a secret header, through every
    output: info, list, --json, geterror, getcustomheaders, the daemon's log, and a traceback under --debug."""
    from bitscli.service import jobs as job_service
    from bitscli.service.context import open_context

    job = ok("create", "--raw", "j").stdout
    ok("addfile", job, "http://127.0.0.1:1/f", str(tmp_path / "f"))
    ok("setcustomheaders", job, "--from-file", "-", stdin="Authorization: Bearer tok-SECRET1\n")
    ok("setcredentials", job, "SERVER", "BASIC", "alice", "--password-file", "-", stdin="pw-SECRET4")
    leaked = "http://alice:pw-SECRET6@127.0.0.1:1/f"  # port 1: refused at once
    ctx = open_context()
    with ctx.queue.write() as tx:  # as an older bitscli stored it
        found = tx.job(job)
        assert found is not None
        tx.update_file(job, 0, dataclasses.replace(found.files[0], remote_name=leaked))
    ctx.queue.close()
    ok("resume", job)
    daemon = DaemonProcess(home).start()
    try:
        wait_for(lambda: state(job) is JobState.TRANSIENT_ERROR)  # the engine's error names the URL
    finally:
        daemon.stop()
        daemon.close()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"a bug that quotes {leaked}")

    outputs = [
        cli("info", job), cli("info", job, "--verbose"), cli("info", job, "--json"), cli("list", "--verbose"),
        cli("list", "--json"), cli("listfiles", job), cli("geterror", job), cli("geterror", job, "--json"),
        cli("getcustomheaders", job), cli("daemon", "log", "-n", "1000"),
    ]  # fmt: skip
    monkeypatch.setattr(job_service, "list_jobs", broken)
    debug = cli("--debug", "list")
    assert "Traceback" in debug.stderr
    for result in [*outputs, debug]:
        for secret in ("pw-SECRET6", "pw-SECRET4", "tok-SECRET1"):
            assert secret not in result.stdout + result.stderr
    assert "***@127.0.0.1" in outputs[6].stdout  # geterror still names the server
    assert "***@127.0.0.1" in outputs[-1].stdout  # and so does the log
