"""Upload and upload-reply jobs against a real `bitscli serve`: the daemon's side of the BITS upload protocol."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.model import ErrorContext, JobState
from bitscli.service.context import open_context
from bitscli.service.jobs import get_job

from .daemonproc import FakeClock, run_once, state, wait_for
from .serveproc import ServeProcess


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    root = tmp_path / "served"
    root.mkdir()
    process = ServeProcess(root, "--uploads", "/", "--max-fragment-size", "300000").start()
    yield process
    process.stop()


def upload_job(ok, url: str, source: Path, kind: str = "--upload") -> str:  # type: ignore[no-untyped-def]
    job = ok("create", "--raw", kind, f"up-{source.name}").stdout
    ok("addfile", job, url, str(source))
    ok("resume", job)
    return job


def application_server(tmp_path: Path, script: str) -> ServeProcess:
    """`bitscli serve` whose upload-reply application (by value: stdin to stdout) is this shell script."""
    root = tmp_path / "served"
    root.mkdir()
    application = tmp_path / "app.sh"
    application.write_text("#!/bin/sh\n" + script)
    application.chmod(0o755)
    options = ("--uploads", "/", "--notification-type", "2", "--notification-command", str(application))
    return ServeProcess(root, *options).start()


def ask_question(ok, server: ServeProcess, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """An upload-reply job sending the word "question" to ``server``; resumed."""
    source = tmp_path / "q.txt"
    source.write_bytes(b"question")
    return upload_job(ok, f"{server.url}/q.txt", source, "--upload-reply")


def upload_state(job: str):  # type: ignore[no-untyped-def]
    ctx = open_context()
    try:
        with ctx.queue.read() as tx:
            return tx.upload_state(job)
    finally:
        ctx.queue.close()


def test_an_upload_arrives_whole_and_the_job_completes(new_daemon, ok, served: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5_000_000))  # many fragments: the server takes at most 300,000 bytes each
    job = upload_job(ok, f"{served.url}/big.bin", source)
    run_once(new_daemon())
    assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
    assert sha(served.root / "big.bin") == sha(source)
    assert ok("getbytestransferred", "--raw", job).stdout == "5000000"
    assert upload_state(job).closed  # Close-Session was answered
    assert not list((served.root / ".bitscli-sessions").glob("*.json"))  # and the server freed the session
    ok("complete", job)
    assert state(job) is JobState.ACKNOWLEDGED
    assert source.exists()  # the source stays where it was


def test_upload_reply_fetches_the_reply(new_daemon, ok, tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    server = ServeProcess(root, "--uploads", "/", "--notification-type", "2", "--notification-command", "rev").start()
    try:
        source = tmp_path / "question.txt"
        source.write_bytes(b"hello\nworld\n")
        job = upload_job(ok, f"{server.url}/question.txt", source, "--upload-reply")
        assert ok("getreplyprogress", job).stdout.strip() == "0 / UNKNOWN"
        run_once(new_daemon())
        assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
        assert ok("getreplydata", "--raw", job).stdout == b"olleh\ndlrow\n".hex()
        assert ok("getreplyprogress", "--json", job).json["value"] == {"bytes_transferred": 12, "bytes_total": 12}
        reply = Path(ok("getreplyfilename", "--raw", job).stdout)
        assert reply.parent == tmp_path
        assert not reply.exists()  # usable only after complete (bits.md §4)
        ok("complete", job)
        assert reply.read_bytes() == b"olleh\ndlrow\n"
        assert not (root / "question.txt").exists()  # the application got it; nothing asked to store it
    finally:
        server.stop()


def test_getreplydata_needs_a_finished_upload_reply_job(ok, cli, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("x")
    job = upload_job(ok, "http://127.0.0.1:9/a.txt", source, "--upload-reply")
    early = cli("getreplydata", job)
    assert early.exit_code == 5
    assert "no reply yet" in early.stderr
    plain = upload_job(ok, "http://127.0.0.1:9/b.txt", source)
    wrong = cli("getreplydata", plain)
    assert wrong.exit_code == 2
    assert "only upload-reply jobs" in wrong.stderr


def test_empty_files_cannot_be_uploaded(ok, cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    job = ok("create", "--raw", "--upload", "e").stdout
    result = cli("addfile", job, "http://127.0.0.1:9/e", str(empty))
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_a_changed_local_file_puts_the_job_in_error(new_daemon, ok, served: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "moving.bin"
    source.write_bytes(os.urandom(1_000_000))
    job = upload_job(ok, f"{served.url}/moving.bin", source)
    ok("suspend", job)
    daemon = new_daemon()
    with daemon.queue.write() as tx:  # an upload that began with this version of the file
        from bitscli.model import UploadState
        from bitscli.transfer.upload import local_stamp

        tx.save_upload_state(job, UploadState(local_stamp=local_stamp(str(source))[0]))
    source.write_bytes(os.urandom(1_000_000))  # then the file changes
    ok("resume", job)
    run_once(daemon)
    assert state(job) is JobState.ERROR
    error = ok("geterror", "--json", job).json["value"]
    assert error["code"] == "0x8020001d"  # BG_E_LOCAL_FILE_CHANGED
    assert error["context"] == ErrorContext.LOCAL_FILE.name
    assert not (served.root / "moving.bin").exists()


@pytest.mark.parametrize("change", ["emptied", "grown", "shrunk"])
def test_a_file_changed_before_its_first_byte_left_is_an_error_never_a_phantom_upload(
    new_daemon, ok, served: ServeProcess, tmp_path: Path, change: str
) -> None:
    """Issue 14 item 1: emptied after addfile, the upload went out as Create-Session, Close-Session and no
    Fragment, and `complete` said "Job completed." with no file on the server."""
    source = tmp_path / "phantom.bin"
    source.write_bytes(os.urandom(4096))
    job = upload_job(ok, f"{served.url}/phantom.bin", source)
    ok("suspend", job)
    source.write_bytes({"emptied": b"", "grown": os.urandom(8192), "shrunk": os.urandom(100)}[change])
    ok("resume", job, "--no-daemon-start")
    run_once(new_daemon())
    assert state(job) is JobState.ERROR
    assert ok("geterror", "--json", job).json["value"]["code"] == "0x8020001d"  # BG_E_LOCAL_FILE_CHANGED
    assert not (served.root / "phantom.bin").exists()
    assert ok("getbytestransferred", job).stdout == "0\n"


def test_server_errors_map_to_bits_states(new_daemon, ok, served: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"payload")
    (served.root / "taken.bin").write_bytes(b"old")
    conflict = upload_job(ok, f"{served.url}/taken.bin", source)  # overwrite is off: 409
    missing_dir = upload_job(ok, f"{served.url}/no/such/dir/x.bin", source)  # 404
    daemon = new_daemon()
    run_once(daemon)  # one background job at a time: the second runs on the next tick
    run_once(daemon)
    assert state(conflict) is JobState.ERROR
    assert ok("geterror", "--json", conflict).json["value"]["context"] == "REMOTE_FILE"
    assert (served.root / "taken.bin").read_bytes() == b"old"
    assert state(missing_dir) is JobState.ERROR


def test_a_lost_session_starts_a_new_one(new_daemon, ok, served: ServeProcess, tmp_path: Path) -> None:
    source = tmp_path / "s.bin"
    source.write_bytes(os.urandom(2_000_000))
    job = upload_job(ok, f"{served.url}/s.bin", source)
    ok("suspend", job)
    daemon = new_daemon()
    with daemon.queue.write() as tx:  # a session the server has never heard of (or cleaned up)
        from bitscli.model import UploadState

        tx.save_upload_state(job, UploadState(session_id="{00000000-dead-beef-0000-000000000000}"))
    ok("resume", job)
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
    assert upload_state(job).session_id != "{00000000-dead-beef-0000-000000000000}"
    assert sha(served.root / "s.bin") == sha(source)


def test_cancel_sends_cancel_session(new_daemon, ok, served: ServeProcess, tmp_path: Path) -> None:
    from bitscli.model import UploadState

    from .serveproc import create_session, fragment

    source = tmp_path / "c.bin"
    source.write_bytes(os.urandom(1_000_000))
    job = upload_job(ok, f"{served.url}/c.bin", source)
    ok("suspend", job)
    session = create_session(served.port, "/c.bin").header("BITS-Session-Id")
    assert fragment(served.port, "/c.bin", session, source.read_bytes()[:1000], 0, 1_000_000).status == 200
    daemon = new_daemon()
    with daemon.queue.write() as tx:  # a job halfway through its upload, holding an open session
        tx.save_upload_state(job, UploadState(session_id=session, session_url=f"{served.url}/c.bin"))
    sessions = served.root / ".bitscli-sessions"
    assert list(sessions.glob("*.json"))
    ok("cancel", job)
    daemon.tick()
    for thread in list(daemon.cancelling.values()):
        thread.join(60)
    assert upload_state(job).closed
    assert not list(sessions.glob("*.json"))  # the server freed the session and its data
    assert not list(served.root.glob(".c.bin.*"))


def test_uploads_use_the_job_credentials(new_daemon, ok, cli, tmp_path: Path) -> None:
    users = tmp_path / "users"
    ok("serve-passwd", str(users), "alice", stdin="pw-for-alice\n")
    root = tmp_path / "served"
    root.mkdir()
    server = ServeProcess(root, "--uploads", "/", "--password-file", str(users)).start()
    try:
        source = tmp_path / "a.bin"
        source.write_bytes(b"authenticated upload")
        anonymous = upload_job(ok, f"{server.url}/anon.bin", source)
        with_login = ok("create", "--raw", "--upload", "login").stdout
        ok("addfile", with_login, f"{server.url}/a.bin", str(source))
        ok("setcredentials", with_login, "SERVER", "BASIC", "alice", "--password-file", "-", stdin="pw-for-alice\n")
        ok("resume", with_login)
        daemon = new_daemon()
        run_once(daemon)
        run_once(daemon)
        assert state(with_login) is JobState.TRANSFERRED, ok("info", "--verbose", with_login).stdout
        assert (root / "a.bin").read_bytes() == b"authenticated upload"
        assert state(anonymous) is JobState.ERROR  # 401 is not retried
        assert "401" in ok("geterror", anonymous).stdout
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_host_id_is_honoured_and_falls_back_after_its_timeout(new_daemon, ok, tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    port = _free_port()
    server = ServeProcess(root, "--uploads", "/", "--host-id", f"localhost:{port}")
    server.port = port
    server.start()
    try:
        source = tmp_path / "h.bin"
        source.write_bytes(os.urandom(100_000))
        job = upload_job(ok, f"{server.url}/h.bin", source)
        run_once(new_daemon())
        assert state(job) is JobState.TRANSFERRED
        assert upload_state(job).session_url == f"http://localhost:{port}/h.bin"  # later packets went to the host id
    finally:
        server.stop()
    dead_port = _free_port()  # nothing listens there: the host id is unreachable
    server = ServeProcess(root, "--uploads", "/", "--host-id", f"127.0.0.1:{dead_port}", "--host-id-fallback", "60")
    server.start()
    try:
        source = tmp_path / "g.bin"
        source.write_bytes(os.urandom(100_000))
        job = upload_job(ok, f"{server.url}/g.bin", source)
        ok("setminretrydelay", job, "5")
        clock = FakeClock()
        daemon = new_daemon(clock)
        run_once(daemon)
        assert state(job) is JobState.TRANSIENT_ERROR
        first = upload_state(job)
        assert first.host_failing_since is not None
        assert first.session_id is not None
        clock.advance(61)  # past the fallback timeout: the session is dropped, back to the original server
        run_once(daemon)
        after = upload_state(job)
        assert after.session_id != first.session_id
    finally:
        server.stop()


def test_transfer_upload_reply_with_a_real_daemon(home: Path, tmp_path: Path) -> None:
    from .conftest import run_process
    from .daemonproc import DaemonProcess

    root = tmp_path / "served"
    root.mkdir()
    server = ServeProcess(root, "--uploads", "/").start()
    application = ServeProcess(root, "--uploads", "/", "--notification-type", "1", "--notification-command", "true")
    application.start()
    daemon = DaemonProcess(home).start()
    try:
        source = tmp_path / "report.csv"
        source.write_bytes(os.urandom(3_000_000))
        upload = run_process("transfer", "--upload", "up", f"{server.url}/stored.csv", str(source))
        assert upload.exit_code == 0, upload.stderr
        assert sha(root / "stored.csv") == sha(source)
        reply = run_process("transfer", "--upload-reply", "ask", f"{application.url}/asked.csv", str(source))
        assert reply.exit_code == 0, reply.stderr
        saved = reply.stdout.strip().splitlines()[-1].removeprefix("Reply saved to ").rstrip(".")
        assert Path(saved).read_bytes() == b""  # the application wrote no reply: an empty reply file
        refused = run_process("transfer", "--upload", "again", f"{server.url}/stored.csv", str(source))
        assert refused.exit_code == 10  # 409: the server does not overwrite
        assert "409" in refused.stderr
    finally:
        daemon.close()
        server.stop()
        application.stop()


def test_uploads_and_ranged_downloads_over_tls(new_daemon, ok, tmp_path: Path, monkeypatch) -> None:
    import subprocess

    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    certfile, keyfile, bundle = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    issued.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(bundle))
    root = tmp_path / "served"
    root.mkdir()
    server = ServeProcess(root, "--uploads", "/", "--certfile", str(certfile), "--keyfile", str(keyfile)).start()
    try:
        assert server.url.startswith("https://")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        source = tmp_path / "secure.bin"
        source.write_bytes(os.urandom(700_000))
        job = upload_job(ok, f"{server.url}/secure.bin", source)
        run_once(new_daemon())
        assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
        assert sha(root / "secure.bin") == sha(source)
        part = subprocess.run(
            ["curl", "-sf", "--cacert", str(bundle), "-r", "1000-1999", f"{server.url}/secure.bin"],
            capture_output=True, check=True, env={**os.environ, "no_proxy": "*"},
        )  # fmt: skip
        assert part.stdout == source.read_bytes()[1000:2000]
    finally:
        server.stop()


def test_a_416_sends_the_client_back_to_the_servers_offset(
    new_daemon, ok, served: ServeProcess, tmp_path: Path
) -> None:
    import dataclasses

    from .serveproc import create_session, fragment

    source = tmp_path / "gap.bin"
    source.write_bytes(os.urandom(900_000))
    job = upload_job(ok, f"{served.url}/gap.bin", source)
    ok("suspend", job)
    session = create_session(served.port, "/gap.bin").header("BITS-Session-Id")
    assert fragment(served.port, "/gap.bin", session, source.read_bytes()[:1000], 0, 900_000).status == 200
    daemon = new_daemon()
    with daemon.queue.write() as tx:  # the client believes it got further than the server did
        from bitscli.model import UploadState

        tx.save_upload_state(job, UploadState(session_id=session, session_url=f"{served.url}/gap.bin"))
        tx.update_file(job, 0, dataclasses.replace(tx.file(job, 0), bytes_transferred=600_000))
    ok("resume", job)
    run_once(daemon)
    assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
    assert upload_state(job).session_id == session  # resumed in the same session, from byte 1000
    assert sha(served.root / "gap.bin") == sha(source)


def test_a_failing_server_application_is_a_transient_remote_application_error(
    new_daemon, ok, tmp_path: Path
) -> None:  # fmt: skip
    flag = tmp_path / "app-is-up"
    server = application_server(tmp_path, f'test -e "{flag}" || exit 1\ncat\n')  # fails until the flag exists
    try:
        job = ask_question(ok, server, tmp_path)
        ok("setminretrydelay", job, "5")
        clock = FakeClock()
        daemon = new_daemon(clock)
        run_once(daemon)
        assert state(job) is JobState.TRANSIENT_ERROR
        error = ok("geterror", "--json", job).json["value"]
        assert error["context"] == "REMOTE_APPLICATION"
        assert error["code"] == "0x801901f4"  # the application's 500, as BG_E_HTTP_ERROR_500
        flag.touch()  # the application recovers; the retry sends the last fragment again
        clock.advance(7)  # the retry delay, 5 s, and its spread (up to a quarter more)
        run_once(daemon)
        run_once(daemon)
        assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
        assert ok("getreplydata", "--raw", job).stdout == b"question".hex()
    finally:
        server.stop()


def test_a_stop_inside_a_fragment_keeps_the_servers_bytes_and_resumes(tmp_path: Path) -> None:
    from bitscli.model import UploadState
    from bitscli.transfer import upload
    from bitscli.transfer.client import Client
    from bitscli.transfer.types import Stopped

    class Events:
        def __init__(self, stop_after: int | None) -> None:
            self.checks, self.stop_after = 0, stop_after
            self.saved: list[tuple[UploadState, int | None]] = []

        def save(self, state: UploadState, offset: int | None = None, size: int | None = None) -> None:
            self.saved.append((state, offset))

        def stop_requested(self) -> bool:
            self.checks += 1
            return self.stop_after is not None and self.checks > self.stop_after

        def now(self) -> float:
            return 0.0

        def pace(self, nbytes: int) -> int:
            return 1 << 20

    source = tmp_path / "stop.bin"
    source.write_bytes(os.urandom(3_000_000))
    root = tmp_path / "served"
    root.mkdir()
    served = ServeProcess(root, "--uploads", "/").start()
    up = upload.Upload(url=f"{served.url}/stop.bin", local=str(source), reply=False)
    client = Client()
    try:
        first = Events(stop_after=3)  # the first fragment (1 MiB, four reads of 256 KiB) is cut off after two
        with pytest.raises(Stopped):
            upload.send_file(client, up, UploadState(), 0, first)
        state, offset = first.saved[-1]
        assert offset == 0  # no fragment was acknowledged...
        session = state.session_id
        data = next((served.root).glob(".stop.bin.*"))
        kept = wait_for(lambda: data.stat().st_size, timeout=10)  # the server sees the disconnect a moment later
        assert 0 < kept < 1 << 20  # ...but the server kept the bytes that arrived
        done = upload.send_file(client, up, state, 0, Events(stop_after=None))
        assert done.session_id == session  # the same session, resumed
        assert sha(root / "stop.bin") == sha(source)
    finally:
        client.close()
        served.stop()


def test_a_server_without_bits_uploads_is_a_clear_fatal_error(new_daemon, ok, tmp_path: Path) -> None:
    from .faultserver import FaultServer

    plain = FaultServer()  # a web server that knows GET and HEAD only
    try:
        source = tmp_path / "p.bin"
        source.write_bytes(b"payload")
        job = upload_job(ok, plain.url("/p.bin"), source)
        run_once(new_daemon())
        assert state(job) is JobState.ERROR
        error = ok("geterror", "--json", job).json["value"]
        assert error["code"] == "0x801901f5"  # HTTP 501: BITS_POST is not implemented there
        assert error["context"] == "REMOTE_FILE"
    finally:
        plain.close()


def test_suspend_while_the_server_application_holds_the_last_ack(new_daemon, ok, tmp_path: Path) -> None:
    started = tmp_path / "application-started"
    server = application_server(tmp_path, f'touch "{started}"\nsleep 60\ncat\n')  # takes a minute to answer
    try:
        job = ask_question(ok, server, tmp_path)
        daemon = new_daemon()
        daemon.tick()
        worker = daemon.workers[job]
        wait_for(started.exists)  # every byte is sent; the worker waits for the last fragment's Ack
        ok("suspend", job)
        daemon.tick()
        worker.join(20)
        assert not worker.is_alive()  # it did not wait the application's minute
        found = get_job(open_context(), job)
        assert found.state is JobState.SUSPENDED
        assert found.error is None
        assert upload_state(job).session_id  # the session is kept for the resume
    finally:
        server.stop()


class _SessionLosingServer:
    """A BITS upload server that restarts after each session's first fragment: the next fragment's connection is
    cut, and the session is gone (SESSION_NOT_FOUND) when the client tries it again; a new one starts at byte 0."""

    def __init__(self, lost: dict[str, str] | None = None, sessions_lost: int = 10**9) -> None:
        import http.server
        import threading

        outer = self
        lost = {"BITS_Error_Code": "0x8020001f", "BITS_Error_Context": "0x5"} if lost is None else lost
        self.creates = 0
        self.sessions: dict[str, int] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _ack(self, status: int, **headers: str) -> None:
                self.send_response(status)
                self.send_header("BITS-Packet-Type", "Ack")
                self.send_header("Content-Length", "0")
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()

            def do_BITS_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                packet = (self.headers.get("BITS-Packet-Type") or "").lower()
                if packet == "create-session":
                    outer.creates += 1
                    session = f"{{{outer.creates:08d}-0000-0000-0000-000000000000}}"
                    outer.sessions[session] = 0
                    self._ack(200, BITS_Protocol="{7df0354d-249b-430f-820d-3d2a9bef4931}", BITS_Session_Id=session)
                elif packet == "fragment":
                    session = self.headers.get("BITS-Session-Id") or ""
                    taken = outer.sessions.get(session, 2)
                    if taken == 1 and outer.creates > sessions_lost:
                        taken = 0  # this server has stopped losing sessions
                    if taken == 1:  # its one fragment was taken: the server "restarts" under this request
                        outer.sessions[session] = 2
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if taken >= 2:  # and after the restart, it knows the session no more
                        self._ack(500, **lost)
                        return
                    outer.sessions[session] = max(1, taken)
                    first = int(self.headers["Content-Range"].split()[1].split("-")[0])
                    self._ack(200, BITS_Received_Content_Range=str(first + len(body)), BITS_Session_Id=session)
                else:
                    self._ack(200, BITS_Session_Id=self.headers.get("BITS-Session-Id") or "")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_that_keeps_losing_sessions_ends_in_error_not_endless_restarts(new_daemon, ok, tmp_path: Path) -> None:
    """Issue 14 item 2: each new session restarted at byte 0 and counted as progress (37 Create-Sessions in
    150 s, still TRANSFERRING). Progress is the high-water mark the server acknowledged; restarts are bounded."""
    from .daemonproc import FakeClock

    server = _SessionLosingServer()
    try:
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(4_000_000))
        job = upload_job(ok, f"{server.url}/big.bin", source)
        clock = FakeClock()
        daemon = new_daemon(clock)
        for _ in range(40):  # ticks, each past any retry delay: what days of a daemon would do
            run_once(daemon)
            if state(job) is JobState.ERROR:
                break
            clock.advance(3600)
        assert state(job) is JobState.ERROR
        error = ok("geterror", "--json", job).json["value"]
        assert "lost the upload session" in error["message"], error
        assert server.creates <= 12, server.creates
        assert int(ok("getbytestransferred", job).stdout) < 4_000_000
    finally:
        server.close()


@pytest.mark.parametrize("lost", [{}, {"BITS_Error_Code": "0x1", "BITS_Error_Context": "0x5"}], ids=["none", "0x1"])
def test_a_session_lost_without_its_code_after_a_broken_connection_is_started_again(
    new_daemon, ok, tmp_path: Path, lost: dict[str, str]
) -> None:  # fmt: skip
    """Issue 14 item 3: a server that answers a lost session with a plain 500 kept the job in TRANSIENT_ERROR
    for the whole no-progress timeout (14 days). After a broken connection, the second such answer in a row is
    taken as a lost session, and one new session is made; the error between says so."""
    from .daemonproc import FakeClock

    server = _SessionLosingServer(lost, sessions_lost=1)
    try:
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(3_000_000))
        job = upload_job(ok, f"{server.url}/big.bin", source)
        clock = FakeClock()
        daemon = new_daemon(clock)
        run_once(daemon)
        assert state(job) is JobState.TRANSIENT_ERROR
        assert "after a broken connection" in ok("geterror", "--json", job).json["value"]["message"]
        for _ in range(5):
            clock.advance(3600)
            run_once(daemon)
            if state(job) is JobState.TRANSFERRED:
                break
        assert state(job) is JobState.TRANSFERRED, ok("info", "--verbose", job).stdout
        assert server.creates == 2
    finally:
        server.close()
