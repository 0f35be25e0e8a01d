"""`bitscli serve` against clients that hold connections: idle, slow headers, stalled bodies, unread responses,
more connections than descriptors (issue 14 items 4 and 5). Raw sockets against the real server process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serveproc import ServeProcess, create_session, fragment

WAIT = 30.0  # far longer than any timeout the servers here are given: a hang fails, a pass never waits this long


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str, open_files: int | None = None) -> Iterator[ServeProcess]:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    server = ServeProcess(root, "--uploads", "/in", "--access-log", *args, open_files=open_files).start()
    try:
        yield server
    finally:
        server.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes the connection (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _fragment_head(path: str, session: str, total: int) -> bytes:
    return (
        f"BITS_POST {path} HTTP/1.1\r\nHost: t\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {session}\r\n"
        f"Content-Range: bytes 0-{total - 1}/{total}\r\nContent-Length: {total}\r\n\r\n"
    ).encode()


def _stalled_fragment(port: int, path: str, session: str, data: bytes) -> socket.socket:
    """Half of a fragment's body, then silence: a laptop that went to sleep mid-fragment."""
    sock = _connect(port)
    sock.sendall(_fragment_head(path, session, len(data)) + data[: len(data) // 2])
    return sock


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=WAIT) as response:  # noqa: S310 (http://127.0.0.1 only)
        response.read()
        return int(response.status)


def test_a_connection_that_sends_nothing_is_closed(tmp_path: Path) -> None:
    with serving(tmp_path, "--header-timeout", "1") as server:
        idle = _connect(server.port)
        assert _read_until_closed(idle) == b""  # closed without a word: it never asked anything


def test_a_header_section_that_never_ends_gets_408(tmp_path: Path) -> None:
    with serving(tmp_path, "--header-timeout", "1") as server:
        slow = _connect(server.port)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        assert _read_until_closed(slow).startswith(b"HTTP/1.1 408 ")


def test_trickled_header_bytes_do_not_extend_the_deadline(tmp_path: Path) -> None:
    """A slowloris sends a header byte now and then: the deadline counts from the start, not the last byte."""
    with serving(tmp_path, "--header-timeout", "1") as server:
        sock = _connect(server.port)
        closed = threading.Event()

        def trickle() -> None:
            for byte in b"GET / HTTP/1.1\r\nX-Padding: " + b"a" * 200:  # would take 40 s at 5 bytes a second
                if closed.is_set():
                    return
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))
                time.sleep(0.2)

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        answer = _read_until_closed(sock)
        closed.set()
        assert answer.startswith(b"HTTP/1.1 408 ")
        sender.join(timeout=WAIT)


def test_a_stalled_fragment_body_is_cut_and_its_bytes_kept(tmp_path: Path) -> None:
    with serving(tmp_path, "--body-timeout", "1") as server:
        data = bytes(range(256)) * 400
        session = create_session(server.port, "/in/stall.bin").header("BITS-Session-Id")
        assert session
        stalled = _stalled_fragment(server.port, "/in/stall.bin", session, data)
        _read_until_closed(stalled)
        resumed = fragment(server.port, "/in/stall.bin", session, data, 0, len(data))  # the client resends it all
        assert resumed.status == 200
        assert resumed.header("BITS-Received-Content-Range") == str(len(data))
        assert (server.root / "in" / "stall.bin").read_bytes() == data


@pytest.mark.parametrize("packet", ["Fragment", "Cancel-Session"])
def test_a_new_packet_takes_over_from_a_stalled_fragment(tmp_path: Path, packet: str) -> None:
    """A stalled request held the session's lock until the server restarted: resends and even Cancel-Session
    waited for it. The body timeout here is far longer than the test's wait, so only a take-over passes."""
    with serving(tmp_path, "--body-timeout", "600") as server:
        data = b"t" * 100_000
        session = create_session(server.port, "/in/take.bin").header("BITS-Session-Id")
        assert session
        stalled = _stalled_fragment(server.port, "/in/take.bin", session, data)
        if packet == "Fragment":
            assert _server_says(server, "receiving bytes 0-99999/100000")  # the stalled request is reading
            answer = fragment(server.port, "/in/take.bin", session, data, 0, len(data))
            assert answer.status == 200
            assert (server.root / "in" / "take.bin").read_bytes() == data
        else:
            from tests.serveproc import bits_post

            answer = bits_post(server.port, "/in/take.bin", "Cancel-Session", {"BITS-Session-Id": session})
            assert answer.status == 200
            assert not list((server.root / "in").iterdir())  # the data file went with the session
        old = _read_until_closed(stalled)
        assert old.startswith(b"HTTP/1.1 400 ")  # the stalled request was ended, and its connection closed


def test_idle_connections_make_room_and_busy_ones_get_503(tmp_path: Path) -> None:
    with serving(tmp_path, "--max-connections", "5", "--body-timeout", "600") as server:
        (server.root / "hello.txt").write_text("hello\n")
        url = f"{server.url}/hello.txt"
        idle = [_connect(server.port) for _ in range(20)]
        assert _get(url) == 200  # the longest idle connections were closed to make room
        busy = []
        for index in range(5):
            session = create_session(server.port, f"/in/b{index}.bin").header("BITS-Session-Id")
            assert session
            busy.append(_stalled_fragment(server.port, f"/in/b{index}.bin", session, b"b" * 1000))
        refused = 0
        for _ in range(300):
            with contextlib.suppress(urllib.error.HTTPError):
                _get(url)
                continue
            refused += 1
        assert refused == 300  # every connection is in a request: the newcomers are refused, not queued forever
        for sock in idle + busy:
            sock.close()
    log = server.process.stderr.read() if server.process and server.process.stderr else ""
    assert 1 <= log.count("a new connection was refused") <= 10  # 300 refusals, rate-limited


def test_more_connections_than_descriptors_do_not_lock_out_a_client_or_flood_the_log(tmp_path: Path) -> None:
    """With a low descriptor limit, new clients timed out and asyncio logged a traceback per failed accept
    (400 MB of log in 75 s). The cap stays below the limit, idle connections make room, and the log is short."""
    with serving(tmp_path, open_files=256) as server:
        (server.root / "hello.txt").write_text("hello\n")
        idle = [_connect(server.port) for _ in range(400)]
        for _ in range(20):
            assert _get(f"{server.url}/hello.txt") == 200
        for sock in idle:
            sock.close()
    log = server.process.stderr.read() if server.process and server.process.stderr else ""
    assert "the open-file limit allows 96 connections" in log
    assert len(log) < 20_000, log[-2000:]


def test_a_client_that_reads_nothing_of_its_download_is_dropped(tmp_path: Path) -> None:
    with serving(tmp_path, "--body-timeout", "1") as server:
        with open(server.root / "big.bin", "wb") as big:
            big.truncate(256 << 20)  # far more than the socket buffers hold
        sock = _connect(server.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _server_says(server, "read nothing for 1 s")  # the test reads nothing from the socket
        sock.close()


def _server_says(server: ServeProcess, text: str) -> bool:
    """True once a line of the server's log holds ``text`` (False if it never does within WAIT)."""
    seen = threading.Event()

    def scan() -> None:
        assert server.process
        assert server.process.stderr
        for line in server.process.stderr:
            if text in line:
                seen.set()
                return

    threading.Thread(target=scan, daemon=True).start()
    return seen.wait(WAIT)


def test_log_lines_of_one_kind_are_rate_limited_with_one_traceback_a_period() -> None:
    import logging

    from bitscli.server.logs import RateLimit

    now = [0.0]
    limit = RateLimit(burst=3, period=60, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            import sys

            return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, sys.exc_info())

    passed = [r for r in (record("socket.accept() out of system resource\nsocket: fd=3") for _ in range(50))
              if limit.filter(r)]  # fmt: skip
    assert len(passed) == 3
    assert passed[0].exc_info
    assert not [r for r in passed[1:] if r.exc_info]
    assert limit.filter(record("another kind"))  # each kind has its own allowance
    now[0] = 61
    later = record("socket.accept() out of system resource\nsocket: fd=3")
    assert limit.filter(later)
    assert "47 more like this were left out of the log" in later.getMessage()
    assert limit.filter(logging.LogRecord("uvicorn.access", logging.INFO, "", 1, "GET /", None, None))
