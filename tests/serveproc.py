"""A real `bitscli serve` process for tests, and raw BITS_POST requests that bypass our client."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"


class ServeProcess:
    """``bitscli serve --root ROOT --port 0 ARGS``; restart() comes back on the same port."""

    def __init__(self, root: Path, *args: str, open_files: int | None = None) -> None:
        self.root = root
        self.args = args
        self.open_files = open_files  # RLIMIT_NOFILE, soft and hard, for the server process
        self.port = 0
        self.scheme = "http"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ServeProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bitscli", "serve", "--root", str(self.root), "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=self._limit if self.open_files else None,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"(https?)://[^ ]*:(\d+)/", line)
        if not match:
            self.process.kill()
            raise RuntimeError(
                f"serve did not start: {line}{self.process.stderr.read() if self.process.stderr else ''}"
            )
        self.scheme, self.port = match.group(1), int(match.group(2))
        _wait_listening(self.port)
        return self

    def _limit(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def restart(self) -> None:
        self.kill9()
        self.start()


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("serve is not listening")


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def bits_post(
    port: int, path: str, packet: str, headers: dict[str, str] | None = None, body: bytes = b"",
) -> Answer:  # fmt: skip
    """One raw BITS_POST on a fresh connection (http.client sends the path as given, unnormalised)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        all_headers = {"BITS-Packet-Type": packet, "Content-Length": str(len(body)), **(headers or {})}
        conn.putrequest("BITS_POST", path, skip_accept_encoding=True)
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        return Answer(conn.getresponse())
    finally:
        conn.close()


def create_session(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    return bits_post(port, path, "Create-Session", {"BITS-Supported-Protocols": PROTOCOL, **(headers or {})})


def fragment(port: int, path: str, session: str, data: bytes, first: int, total: int,
             headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
    content_range = f"bytes {first}-{first + len(data) - 1}/{total}"
    return bits_post(
        port, path, "Fragment", {"BITS-Session-Id": session, "Content-Range": content_range, **(headers or {})}, data
    )


def upload(port: int, path: str, data: bytes, size: int = 1 << 16, headers: dict[str, str] | None = None) -> Answer:
    """A whole upload in fragments of ``size``; returns the last fragment's Ack."""
    created = create_session(port, path, headers)
    assert created.status == 200, created.headers
    session = created.header("BITS-Session-Id")
    assert session
    answer = created
    for first in range(0, len(data), size):
        answer = fragment(port, path, session, data[first : first + size], first, len(data), headers)
        assert answer.status == 200, answer.headers
    answer.headers["bits-session-id"] = session
    return answer
