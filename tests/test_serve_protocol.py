"""`bitscli serve` spoken to with raw HTTP requests, not our client: every packet and rule of [MC-BUP]."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.server.sessions import SessionStore
from tests.conftest import run_process
from tests.serveproc import PROTOCOL, ServeProcess, bits_post, create_session, fragment, upload

SESSION_NOT_FOUND = "0x8020001f"
INVALIDARG = "0x80070057"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("root")
    (root / "in").mkdir()
    (root / "closed").mkdir()
    process = ServeProcess(root, "--uploads", "/in", "--max-fragment-size", "100000", "--max-upload-size", "1000000")
    yield process.start()
    process.stop()


@pytest.fixture
def root(server: ServeProcess) -> Path:
    return server.root


def name(request: pytest.FixtureRequest) -> str:
    return f"/in/{request.node.name}.bin"


def test_ping_is_acked(server: ServeProcess) -> None:
    answer = bits_post(server.port, "/in/x", "Ping")
    assert (answer.status, answer.header("BITS-Packet-Type"), answer.header("Content-Length")) == (200, "Ack", "0")


def test_create_session_offers_the_protocol_and_identity(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    answer = create_session(server.port, name(request))
    assert answer.status == 200
    assert answer.header("BITS-Protocol") == PROTOCOL
    assert answer.header("Accept-Encoding").lower() == "identity"
    assert answer.header("BITS-Session-Id").startswith("{")


def test_packet_types_are_compared_without_case(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    answer = bits_post(server.port, name(request), "CREATE-SESSION", {"BITS-Supported-Protocols": PROTOCOL.upper()})
    assert answer.status == 200
    assert answer.header("BITS-Session-Id")


def test_fragments_arrive_whole_and_appear_only_when_complete(
    server: ServeProcess, root: Path, request: pytest.FixtureRequest
) -> None:  # fmt: skip
    data = os.urandom(250_000)
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    target = root / path.lstrip("/")
    for first in range(0, len(data), 100_000):
        assert not target.exists()  # nothing under the final name before the last byte
        answer = fragment(server.port, path, session, data[first : first + 100_000], first, len(data))
        assert answer.status == 200
        assert answer.header("BITS-Received-Content-Range") == str(min(first + 100_000, len(data)))
        assert answer.header("BITS-Session-Id") == session
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert bits_post(server.port, path, "Close-Session", {"BITS-Session-Id": session}).status == 200
    assert not [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}")]  # no leftovers


def test_a_gap_gets_416_with_the_received_offset(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    assert fragment(server.port, path, session, b"a" * 100, 0, 1000).status == 200
    answer = fragment(server.port, path, session, b"b" * 100, 500, 1000)
    assert answer.status == 416
    assert answer.header("BITS-Received-Content-Range") == "100"
    assert answer.header("BITS-Packet-Type") == "Ack"


def test_overlapping_bytes_never_overwrite_stored_ones(
    server: ServeProcess, root: Path, request: pytest.FixtureRequest
) -> None:  # fmt: skip
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    assert fragment(server.port, path, session, b"A" * 10, 0, 15).status == 200
    answer = fragment(server.port, path, session, b"XXXXXBBBBB", 5, 15)  # bytes 5-9 were already stored
    assert (answer.status, answer.header("BITS-Received-Content-Range")) == (200, "15")
    assert (root / path.lstrip("/")).read_bytes() == b"A" * 10 + b"B" * 5


@pytest.mark.parametrize("packet", ["Teleport", "Ack"])
def test_unknown_packet_types_get_a_400_ack(server: ServeProcess, packet: str) -> None:
    answer = bits_post(server.port, "/in/x", packet)
    assert (answer.status, answer.header("BITS-Packet-Type")) == (400, "Ack")
    assert answer.header("BITS-Error-Code") == INVALIDARG
    assert answer.header("BITS-Error-Context") == "0x5"


def test_missing_headers_get_400_not_500(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    path = name(request)
    assert bits_post(server.port, path, "", {}).status == 400  # no packet type at all
    unknown = {"BITS-Supported-Protocols": "{00000000-0000-0000-0000-000000000000}"}
    assert create_session(server.port, path, unknown).status == 400
    assert bits_post(server.port, path, "Create-Session").status == 400  # no protocol offered
    assert bits_post(server.port, path, "Fragment", body=b"x").status == 400  # no session id
    session = create_session(server.port, path).header("BITS-Session-Id")
    no_range = bits_post(server.port, path, "Fragment", {"BITS-Session-Id": session}, b"xyz")
    assert (no_range.status, no_range.header("BITS-Error-Code")) == (400, INVALIDARG)
    bad_range = bits_post(server.port, path, "Fragment", {"BITS-Session-Id": session, "Content-Range": "bytes 9-2/5"})
    assert bad_range.status == 400
    short = fragment(server.port, path, session, b"abc", 0, 10, {"Content-Range": "bytes 0-4/10"})
    assert short.status == 400  # Content-Length and Content-Range disagree
    gzip = fragment(server.port, path, session, b"abc", 0, 10, {"Content-Encoding": "gzip"})
    assert gzip.status == 400


def test_unknown_session_is_session_not_found(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    path = name(request)
    for packet in ("Fragment", "Close-Session", "Cancel-Session"):
        answer = bits_post(
            server.port, path, packet, {"BITS-Session-Id": "{no-such-session}", "Content-Range": "bytes 0-0/1"}, b"x"
        )
        assert (answer.status, answer.header("BITS-Error-Code")) == (500, SESSION_NOT_FOUND)
    session = create_session(server.port, path).header("BITS-Session-Id")
    elsewhere = fragment(server.port, "/in/other-target.bin", session, b"x", 0, 1)  # a session belongs to its URL
    assert (elsewhere.status, elsewhere.header("BITS-Error-Code")) == (500, SESSION_NOT_FOUND)


def test_oversize_fragment_is_413_and_oversize_upload_too_large(
    server: ServeProcess, request: pytest.FixtureRequest
) -> None:  # fmt: skip
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    big_fragment = fragment(server.port, path, session, b"x" * 100_001, 0, 200_000)
    assert big_fragment.status == 413
    assert big_fragment.header("BITS-Error-Code") is None
    over_limit = fragment(server.port, path, session, b"x" * 10, 0, 1_000_001)
    assert (over_limit.status, over_limit.header("BITS-Error-Code")) == (413, "0x80200020")  # BG_E_TOO_LARGE


def test_total_cannot_change_within_a_session(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    assert fragment(server.port, path, session, b"x" * 10, 0, 100).status == 200
    assert fragment(server.port, path, session, b"x" * 10, 10, 200).status == 400


@pytest.mark.parametrize(
    "path",
    ["/in/../escaped.bin", "/in/%2e%2e/escaped.bin", "/in/..%2fescaped.bin", "/%2e%2e/%2e%2e/escaped.bin",
     "/in/%252e%252e/escaped.bin", "/in/..\\escaped.bin", "/in/.bitscli-sessions/x.json", "/in/link/escaped.bin"],
)  # fmt: skip
def test_path_traversal_never_writes_outside_the_root(server: ServeProcess, root: Path, path: str) -> None:
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    link = root / "in" / "link"
    if not link.exists():
        link.symlink_to(outside)
    answer = create_session(server.port, path)
    assert answer.status in (403, 404), (path, answer.status)
    assert answer.header("BITS-Packet-Type") == "Ack"
    assert not (root.parent / "escaped.bin").exists()
    assert not (outside / "escaped.bin").exists()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path.replace("escaped.bin", "../../etc/passwd"))
    assert conn.getresponse().status == 404


def test_symlinked_target_is_refused(server: ServeProcess, root: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (root / "in" / "trap.bin").symlink_to(victim)
    assert create_session(server.port, "/in/trap.bin").status == 403
    assert victim.read_text() == "keep me"


def test_uploads_are_disabled_outside_enabled_directories(server: ServeProcess) -> None:
    answer = create_session(server.port, "/closed/x.bin")
    assert (answer.status, answer.header("BITS-Error-Code")) == (501, "0x80070005")


def test_existing_target_is_409_without_overwrite(server: ServeProcess, root: Path) -> None:
    (root / "in" / "exists.bin").write_bytes(b"old")
    answer = create_session(server.port, "/in/exists.bin")
    assert (answer.status, answer.header("BITS-Error-Code")) == (409, "0x80070005")
    assert (root / "in" / "exists.bin").read_bytes() == b"old"


def test_close_before_the_end_discards_and_cancel_after_keeps(
    server: ServeProcess, root: Path, request: pytest.FixtureRequest
) -> None:  # fmt: skip
    path = name(request)
    session = create_session(server.port, path).header("BITS-Session-Id")
    fragment(server.port, path, session, b"x" * 10, 0, 20)
    assert bits_post(server.port, path, "Close-Session", {"BITS-Session-Id": session}).status == 200
    assert not (root / path.lstrip("/")).exists()
    assert not [p for p in (root / "in").iterdir() if p.name.startswith(f".{request.node.name}")]
    done = upload(server.port, path, b"y" * 20)
    cancel = bits_post(server.port, path, "Cancel-Session", {"BITS-Session-Id": done.header("BITS-Session-Id")})
    assert cancel.status == 200
    assert (root / path.lstrip("/")).read_bytes() == b"y" * 20


def test_a_repeated_last_fragment_is_acked_and_not_stored_twice(
    server: ServeProcess, root: Path, request: pytest.FixtureRequest
) -> None:  # fmt: skip
    path = name(request)
    done = upload(server.port, path, b"z" * 30, size=10)
    again = fragment(server.port, path, done.header("BITS-Session-Id"), b"Q" * 10, 20, 30)
    assert (again.status, again.header("BITS-Received-Content-Range")) == (200, "30")
    assert (root / path.lstrip("/")).read_bytes() == b"z" * 30


def test_get_and_head_serve_ranges_and_hide_server_files(server: ServeProcess, root: Path) -> None:
    data = os.urandom(5000)
    (root / "plain.bin").write_bytes(data)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/plain.bin", headers={"Range": "bytes=1000-1999"})
    response = conn.getresponse()
    assert (response.status, response.read()) == (206, data[1000:2000])
    etag = response.getheader("ETag")
    conn.request("GET", "/plain.bin", headers={"Range": "bytes=4000-", "If-Range": etag})
    response = conn.getresponse()
    assert (response.status, response.read()) == (206, data[4000:])
    conn.request("GET", "/plain.bin", headers={"Range": "bytes=4000-", "If-Range": '"stale"'})
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, data)  # a changed validator gets the whole file
    conn.request("HEAD", "/plain.bin")
    response = conn.getresponse()
    assert (response.status, response.getheader("Content-Length"), response.read()) == (200, "5000", b"")
    conn.request("GET", "/.bitscli-sessions/")
    assert conn.getresponse().status == 404


def test_conditional_gets_get_304(server: ServeProcess, root: Path) -> None:
    """`bitscli transfer --if-changed` against our own server: a file it has not changed is a 304, no body."""
    (root / "same.bin").write_bytes(b"s" * 3000)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/same.bin")
    first = conn.getresponse()
    first.read()
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    for headers, status in (
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"other", {etag}'}, 304),
        ({"If-None-Match": '"x"'}, 200),
        ({"If-Modified-Since": modified}, 304),
        ({"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
        ({"If-None-Match": '"x"', "If-Modified-Since": modified}, 200),  # If-None-Match decides when present
        ({"If-None-Match": etag, "Range": "bytes=0-9"}, 206),  # a ranged GET is never a 304
    ):
        conn.request("GET", "/same.bin", headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == status, headers
        assert (body == b"") == (status == 304)
        if status == 304:
            assert answer.getheader("ETag") == etag


def test_curl_downloads_with_ranges_match(server: ServeProcess, root: Path, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test (it ships on the CI image)")
    data = os.urandom(3_000_000)
    (root / "curl.bin").write_bytes(data)
    out = tmp_path / "curl.bin"
    url = f"{server.url}/curl.bin"
    env = {**os.environ, "no_proxy": "*"}
    subprocess.run([curl, "-sf", "-r", "0-999999", "-o", str(out), url], check=True, env=env)
    assert out.stat().st_size == 1_000_000
    subprocess.run([curl, "-sf", "-C", "-", "-o", str(out), url], check=True, env=env)  # resume from 1,000,000
    assert out.read_bytes() == data


def test_session_limit_per_user(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    process = ServeProcess(tmp_path, "--uploads", "/", "--sessions-per-user", "2").start()
    try:
        assert create_session(process.port, "/in/1").status == 200
        assert create_session(process.port, "/in/2").status == 200
        third = create_session(process.port, "/in/3")
        assert (third.status, third.header("BITS-Packet-Type")) == (503, "Ack")
    finally:
        process.stop()


def test_uploads_need_a_login_when_a_password_file_is_set(tmp_path: Path) -> None:
    users = tmp_path / "users"
    assert run_process("serve-passwd", str(users), "alice", stdin="s3cret-pw\n").exit_code == 0
    assert "s3cret-pw" not in users.read_text()
    assert oct(users.stat().st_mode)[-3:] == "600"
    root = tmp_path / "root"
    root.mkdir()
    process = ServeProcess(root, "--uploads", "/", "--password-file", str(users)).start()
    try:
        anonymous = create_session(process.port, "/a.bin")
        assert anonymous.status == 401
        assert "Basic" in anonymous.header("WWW-Authenticate")
        wrong = create_session(process.port, "/a.bin", {"Authorization": _basic("alice", "nope")})
        assert wrong.status == 401
        login = {"Authorization": _basic("alice", "s3cret-pw")}
        done = upload(process.port, "/a.bin", b"secret upload", headers=login)
        assert done.status == 200
        assert (root / "a.bin").read_bytes() == b"secret upload"
    finally:
        process.stop()


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_sessions_survive_a_server_restart(tmp_path: Path) -> None:
    process = ServeProcess(tmp_path, "--uploads", "/").start()
    try:
        session = create_session(process.port, "/r.bin").header("BITS-Session-Id")
        assert fragment(process.port, "/r.bin", session, b"1" * 50, 0, 100).status == 200
        process.restart()
        gap = fragment(process.port, "/r.bin", session, b"2" * 10, 90, 100)
        assert (gap.status, gap.header("BITS-Received-Content-Range")) == (416, "50")
        assert fragment(process.port, "/r.bin", session, b"2" * 50, 50, 100).status == 200
        assert (tmp_path / "r.bin").read_bytes() == b"1" * 50 + b"2" * 50
    finally:
        process.stop()


def test_cleanup_deletes_sessions_idle_past_the_timeout(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    old = store.create(tmp_path / "old.bin", "/old.bin", "u", now=1000.0, content_name=None)
    fresh = store.create(tmp_path / "fresh.bin", "/fresh.bin", "u", now=5000.0, content_name=None)
    assert store.cleanup(now=1000.0 + 3999, timeout=4000, empty_timeout=10**9) == []
    assert store.cleanup(now=1000.0 + 4000, timeout=4000, empty_timeout=10**9) == [old.id]
    assert store.get(old.id) is None
    assert not os.path.exists(old.data)
    assert store.get(fresh.id) is not None
    assert os.path.exists(fresh.data)


def test_upload_reply_by_value_through_a_command(tmp_path: Path) -> None:
    process = ServeProcess(
        tmp_path, "--uploads", "/", "--notification-type", "2", "--notification-command", "tr a-z A-Z"
    ).start()
    try:
        done = upload(process.port, "/ask.txt", b"hello reply")
        reply_url = done.header("BITS-Reply-URL")
        assert reply_url
        assert reply_url.startswith(process.url)
        conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
        conn.request("GET", reply_url[len(process.url) :])
        assert conn.getresponse().read() == b"HELLO REPLY"
        assert not (tmp_path / "ask.txt").exists()  # handed to the application, not stored (no Copy header)
        bits_post(process.port, "/ask.txt", "Close-Session", {"BITS-Session-Id": done.header("BITS-Session-Id")})
        conn.request("GET", reply_url[len(process.url) :])
        assert conn.getresponse().status == 404  # the reply goes with the session
    finally:
        process.stop()


def test_upload_reply_by_reference_and_a_failing_application(tmp_path: Path) -> None:
    script = tmp_path / "app.sh"
    script.write_text(
        '#!/bin/sh\ntest -s "$BITS_REQUEST_DATAFILE_NAME" || exit 3\n'
        'wc -c < "$BITS_REQUEST_DATAFILE_NAME" > "$BITS_RESPONSE_DATAFILE_NAME"\n'
    )
    script.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    process = ServeProcess(
        root, "--uploads", "/", "--notification-type", "1", "--notification-command", str(script)
    ).start()
    try:
        done = upload(process.port, "/n.bin", b"x" * 1234)
        conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
        conn.request("GET", done.header("BITS-Reply-URL")[len(process.url) :])
        assert conn.getresponse().read().strip() == b"1234"
        script.write_text("#!/bin/sh\nexit 1\n")
        session = create_session(process.port, "/m.bin").header("BITS-Session-Id")
        failed = fragment(process.port, "/m.bin", session, b"abc", 0, 3)
        assert failed.status == 500
        assert failed.header("BITS-Error-Context") == "0x7"
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--root", "/no/such/dir"], "not a directory"), (["--notification-type", "7"], "notification-type"),
     (["--certfile", "/etc/hostname"], "both --certfile and --keyfile"),
     (["--config", "/no/such.toml"], "does not exist")],
)  # fmt: skip
def test_bad_serve_settings_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_process("serve", "--root", str(tmp_path), *args)
    assert result.exit_code == 8, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_the_server_without_a_traceback(tmp_path: Path) -> None:
    import signal

    process = ServeProcess(tmp_path).start()
    assert process.process is not None
    process.process.send_signal(signal.SIGINT)
    _, err = process.process.communicate(timeout=30)
    assert process.process.returncode in (0, 130), err
    assert "Traceback" not in err


class _Application:
    """A server application on 127.0.0.1 that answers BITS notifications, as IIS would post them."""

    def __init__(self, static_reply: str | None = None, copy: bool = False) -> None:
        import http.server
        import threading

        seen: list[dict[str, object]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(200)
                if static_reply:
                    self.send_header("BITS-Static-Response-URL", static_reply)
                if copy:
                    self.send_header("BITS-Copy-File-To-Destination", "true")
                reply = body[::-1]
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/app"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_upload_reply_by_value_through_a_notification_url(tmp_path: Path) -> None:
    app = _Application(copy=True)
    process = ServeProcess(tmp_path, "--uploads", "/", "--notification-type", "2", "--notification-url", app.url)
    process.start()
    try:
        done = upload(process.port, "/job.bin?ticket=42", b"abc123")
        (posted,) = app.seen
        assert posted["body"] == b"abc123"
        assert posted["path"] == "/app?ticket=42"  # the job URL's query string is appended (IIS)
        assert str(posted["headers"]["BITS-Original-Request-URL"]).endswith("/job.bin?ticket=42")
        conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
        conn.request("GET", done.header("BITS-Reply-URL")[len(process.url) :])
        assert conn.getresponse().read() == b"321cba"
        assert (tmp_path / "job.bin").read_bytes() == b"abc123"  # BITS-Copy-File-To-Destination stores it too
    finally:
        process.stop()
        app.close()


def test_static_reply_url_by_reference(tmp_path: Path) -> None:
    app = _Application(static_reply="http://127.0.0.1:9/replies/fixed.xml")
    process = ServeProcess(tmp_path, "--uploads", "/", "--notification-type", "1", "--notification-url", app.url)
    process.start()
    try:
        done = upload(process.port, "/ref.bin", b"by reference")
        (posted,) = app.seen
        headers = posted["headers"]
        assert posted["body"] == b""
        assert Path(str(headers["BITS-Request-DataFile-Name"])).name.startswith(".ref.bin.")
        assert "BITS-Response-DataFile-Name" in headers
        assert done.header("BITS-Reply-URL") == "http://127.0.0.1:9/replies/fixed.xml"
        assert not (tmp_path / "ref.bin").exists()
    finally:
        process.stop()
        app.close()


def test_settings_come_from_a_toml_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "drop").mkdir(parents=True)
    (root / "drop" / "same.bin").write_bytes(b"old")
    settings = tmp_path / "serve.toml"
    settings.write_text(f'root = "{root}"\nupload_dirs = ["/drop"]\nallow_overwrite = true\n')
    process = ServeProcess(root, "--config", str(settings)).start()
    try:
        assert create_session(process.port, "/elsewhere.bin").status == 501
        upload(process.port, "/drop/same.bin", b"new")
        assert (root / "drop" / "same.bin").read_bytes() == b"new"  # overwrite allowed by the file
    finally:
        process.stop()


def test_an_uploads_hidden_data_file_is_never_served(server: ServeProcess, root: Path) -> None:
    """Issue 14 item 10: `GET /in/.NAME.<uuid>.bitscli-upload` returned the partial bytes of an upload."""
    path = "/in/hidden-data.bin"
    session = create_session(server.port, path).header("BITS-Session-Id")
    assert fragment(server.port, path, session, b"secret" * 1000, 0, 100_000).status == 200
    (data_file,) = [p for p in (root / "in").iterdir() if p.name.startswith(".hidden-data.bin.")]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for method in ("GET", "HEAD"):
        conn.request(method, f"/in/{data_file.name}")
        response = conn.getresponse()
        assert response.status == 404
        assert b"secret" not in response.read()
    answer = create_session(server.port, f"/in/{data_file.name}")  # nor may an upload write over it
    assert answer.status == 403
    assert data_file.stat().st_size == 6000
    bits_post(server.port, path, "Cancel-Session", {"BITS-Session-Id": session})


@pytest.mark.parametrize("leaf", ["n" * 300, "\u00e9" * 112], ids=["300-bytes", "224-bytes-of-two-byte-chars"])
def test_names_that_cannot_be_stored_are_a_client_error(server: ServeProcess, root: Path, leaf: str) -> None:
    """Issue 14 item 9: a name past the filesystem's limit got a plain 500 and a traceback; a legal 224-byte
    name of two-byte characters made a hidden name cut at 120 characters (240 bytes and more)."""
    path = f"/in/{leaf}"
    answer = create_session(server.port, urllib.parse.quote(path))
    if len(leaf.encode()) > 255:
        assert answer.status == 400
        assert answer.header("BITS-Error-Code") == INVALIDARG
        return
    assert answer.status == 200, answer.header("BITS-Error-Code")
    session = answer.header("BITS-Session-Id")
    assert fragment(server.port, urllib.parse.quote(path), session, b"x" * 10, 0, 10).status == 200
    assert (root / "in" / leaf).read_bytes() == b"x" * 10


def test_a_comma_separated_protocol_list_is_accepted(server: ServeProcess, request: pytest.FixtureRequest) -> None:
    """Issue 14 item 12: `BITS-Supported-Protocols: {other}, {ours}` got a 400."""
    other = "{00000000-0000-0000-0000-000000000000}"
    answer = bits_post(
        server.port, name(request), "Create-Session", {"BITS-Supported-Protocols": f"{other},{PROTOCOL}"}
    )
    assert answer.status == 200
    assert answer.header("BITS-Protocol") == PROTOCOL


def test_a_raw_hash_in_the_path_is_refused(server: ServeProcess, root: Path) -> None:
    """Issue 14 item 12: a raw `#` (a fragment, never sent by a client) became part of the stored name."""
    answer = create_session(server.port, "/in/a#b.bin")
    assert answer.status == 400
    assert answer.header("BITS-Error-Code") == INVALIDARG
    assert not [p for p in (root / "in").iterdir() if "#" in p.name]
    assert create_session(server.port, "/in/a%23b.bin").status == 200  # an encoded one is a name like any other


def test_an_expired_session_is_refused_when_used_on_the_servers_clock(tmp_path: Path) -> None:
    """Issue 14 item 7: `--session-timeout` was checked only at start and every 12 hours, so a fragment was
    accepted 6 s after a 3-second timeout. The app runs in this process under uvicorn with an injected clock."""
    import socket
    import threading
    import time

    import uvicorn

    from bitscli.server.app import create_app
    from bitscli.server.settings import ServerSettings
    from tests.daemonproc import FakeClock

    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    clock = FakeClock()
    app = create_app(ServerSettings(root=root, upload_dirs=("/in",), session_timeout=3), clock)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:  # waits for it to listen; asserts nothing
            time.sleep(0.02)
        session = create_session(port, "/in/late.bin").header("BITS-Session-Id")
        assert fragment(port, "/in/late.bin", session, b"a" * 10, 0, 20).status == 200
        clock.advance(2)  # progress resets the timeout: still alive
        assert fragment(port, "/in/late.bin", session, b"b" * 5, 10, 20).status == 200
        clock.advance(6)  # now past it, with no progress
        late = fragment(port, "/in/late.bin", session, b"c" * 5, 15, 20)
        assert late.status == 500
        assert late.header("BITS-Error-Code") == SESSION_NOT_FOUND
        assert not (root / "in" / "late.bin").exists()
        assert not [p for p in (root / "in").iterdir() if p.name.startswith(".late.bin.")]  # its data went too
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_full_disk_at_create_session_is_a_bits_disk_full_ack(tmp_path: Path) -> None:
    """Issue 14 item 12: a disk full while a session's record was saved gave a traceback and a plain 500. It is a
    503 Ack with ERROR_DISK_FULL (the client retries later), nothing is left behind, and room makes it work."""
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"mounting a tmpfs needs root: {mounted.stderr.decode().strip()}")
    try:
        (root / "in").mkdir()
        server = ServeProcess(root, "--uploads", "/in").start()
        try:
            filler = root / "filler"
            with open(filler, "wb") as out, contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            full = create_session(server.port, "/in/full.bin")
            assert full.status == 503
            assert full.header("BITS-Error-Code") == "0x80070070"  # ERROR_DISK_FULL
            assert not list((root / ".bitscli-sessions").glob("*.json"))
            assert not [p for p in (root / "in").iterdir() if p.name.startswith(".full.bin.")]
            filler.unlink()
            assert create_session(server.port, "/in/full.bin").status == 200
        finally:
            server.stop()
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)
