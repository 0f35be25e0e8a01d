"""The client's reading of responses byte for byte as a server sends them: header sections and body framing."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client, Response
from bitscli.transfer.http import download
from bitscli.transfer.types import Download

from .test_http_engine import Recorder


class ScriptedServer:
    """Answers each request, on whatever connection it comes, with the next raw response of the script.

    A response given as (bytes, True) is followed by closing the connection.
    """

    def __init__(self, script: list[bytes | tuple[bytes, bool]]) -> None:
        self.script = list(script)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str = "/f") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while self.script:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        pending = b""
        while self.script:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            request, _, pending = pending.partition(b"\r\n\r\n")
            self.requests.append(request)
            answer = self.script.pop(0)
            raw, close = answer if isinstance(answer, tuple) else (answer, False)
            conn.sendall(raw)
            if close:
                return

    def close(self) -> None:
        self.script.clear()
        self.listener.close()


def serve(script: list[bytes | tuple[bytes, bool]]) -> ScriptedServer:
    return ScriptedServer(script)


def get(client: Client, server: ScriptedServer, method: str = "GET") -> tuple[Response, bytes]:
    response = client.send(method, server.url(), {}, (5.0, 5.0), {})
    body = b""
    while chunk := response.read1(1 << 20):
        body += chunk
    response.close()
    return response, body


def test_fields_are_found_whatever_their_case_and_a_repeated_one_gives_its_first_value(client: Client) -> None:
    server = serve([
        b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 5\r\nETag: \"one\"\r\nEtag: \"two\"\r\n"
        b"Last-Modified:   Sun, 22 Nov 2026 08:00:00 GMT  \r\n\r\nhello",
    ])  # fmt: skip
    try:
        response, body = get(client, server)
    finally:
        server.close()
    assert (response.status_code, response.reason, body) == (200, "OK", b"hello")
    assert response.headers.get("etag") == '"one"'
    assert response.headers["ETAG"] == '"one"'
    assert response.headers.get("Last-Modified") == "Sun, 22 Nov 2026 08:00:00 GMT"  # no surrounding spaces
    assert "content-length" in response.headers
    assert response.headers.get("X-Missing") is None


def test_a_folded_field_continues_and_a_line_that_is_no_field_is_skipped(client: Client) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\nnot a field\r\nContent-Length: 2\r\n\r\nok"])
    try:
        response, body = get(client, server)
    finally:
        server.close()
    assert response.headers.get("X-Long") == "first second"  # obsolete folding (RFC 9112 §5.2)
    assert body == b"ok"


def test_an_interim_100_continue_is_passed_over(client: Client) -> None:
    server = serve([b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"])
    try:
        response, body = get(client, server)
    finally:
        server.close()
    assert (response.status_code, body) == (200, b"abc")
    assert response.headers.get("X-Interim") is None


def test_a_body_without_length_ends_when_the_server_closes(client: Client) -> None:
    server = serve([(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", True)])
    try:
        _, body = get(client, server)
    finally:
        server.close()
    assert body == b"until the end"


@pytest.mark.parametrize("length", ["-5", "5x"])
def test_a_nonsense_length_is_ignored_and_the_body_read_to_the_close(client: Client, length: str) -> None:
    server = serve([(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nall of it".encode(), True)])
    try:
        _, body = get(client, server)
    finally:
        server.close()
    assert body == b"all of it"


def test_responses_without_a_body_leave_the_connection_for_the_next_request(client: Client) -> None:
    server = serve([
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",  # to a HEAD: the length is the file's, no body follows
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
    ])  # fmt: skip
    try:
        head, head_body = get(client, server, "HEAD")
        _, not_modified = get(client, server)
        _, no_content = get(client, server)
        _, last = get(client, server)
    finally:
        server.close()
    assert head.headers.get("Content-Length") == "9"
    assert (head_body, not_modified, no_content, last) == (b"", b"", b"", b"last")
    assert server.connections == 1
    assert len(server.requests) == 4


def test_connection_close_is_honoured_and_the_next_request_opens_a_new_one(client: Client) -> None:
    server = serve([
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
    ])  # fmt: skip
    try:
        _, first = get(client, server)
        _, second = get(client, server)
    finally:
        server.close()
    assert (first, second) == (b"a", b"b")
    assert server.connections == 2


def test_a_header_section_past_the_limits_is_a_transient_error(client: Client, tmp_path: Path) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
    server = serve([b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 1\r\n\r\na"] * 3)
    try:
        job = Download(url=server.url(), part=str(tmp_path / "p"), timeout=(5, 5))
        with pytest.raises(TransferError) as caught:
            download(client, job, Recorder())
    finally:
        server.close()
    assert caught.value.transient  # as http.client's own limit: a broken answer, tried again later
    assert (tmp_path / "p").read_bytes() == b""
