"""The client's reading of responses byte for byte as a server sends them: header sections and body framing."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import TRANSPORT_ERRORS, Client, Response
from bitscli.transfer.http import download
from bitscli.transfer.types import Download, Version

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


def test_a_folded_field_continues(client: Client) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\nContent-Length: 2\r\n\r\nok"])
    try:
        response, body = get(client, server)
    finally:
        server.close()
    assert response.headers.get("X-Long") == "first second"  # obsolete folding (RFC 9112 §5.2)
    assert body == b"ok"


def test_a_line_that_is_no_field_makes_the_response_invalid(client: Client) -> None:
    """RFC 9112 §5: a header section is fields; a response that breaks that is not trusted for its framing."""
    server = serve([b"HTTP/1.1 200 OK\r\nnot a field\r\nContent-Length: 2\r\n\r\nok"])
    try:
        with pytest.raises(TRANSPORT_ERRORS):
            get(client, server)
    finally:
        server.close()


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


GOOD = b"0123456789"  # what the file really holds


def _fetch_to_part(client: Client, server: ScriptedServer, tmp_path: Path) -> tuple[TransferError, bytes]:
    job = Download(url=server.url(), part=str(tmp_path / "p"), timeout=(5, 5))
    recorder = Recorder()
    with pytest.raises(TransferError) as caught:
        download(client, job, recorder)
    assert all(offset <= len(GOOD) for offset, _ in recorder.checkpoints)  # never progress past the file
    return caught.value, (tmp_path / "p").read_bytes()


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"Content-Length: 12abc\r\n", id="length-not-a-number"),
        pytest.param(b"Content-Length: -5\r\n", id="length-negative"),
        pytest.param(b"Content-Length: 5x\r\n", id="length-trailing-junk"),
        pytest.param(b"Content-Length: 10\r\nContent-Length: 12\r\n", id="two-lengths"),
        pytest.param(b"Content-Length: 10, 12\r\n", id="length-list"),
        pytest.param(b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n", id="chunked-and-length"),
        pytest.param(b"Transfer-Encoding: gzip, chunked\r\n", id="gzip-transfer-coding"),
        pytest.param(b"Content-Encoding: gzip\r\nContent-Length: 10\r\n", id="gzip-content-coding"),
        pytest.param(b"Content-Encoding: br\r\nTransfer-Encoding: chunked\r\n", id="br-content-coding"),
    ],
)
def test_invalid_or_conflicting_framing_is_an_error_and_nothing_is_written(
    client: Client, tmp_path: Path, framing: bytes
) -> None:
    """Issue 12, items 1-3: RFC 9112 §6.3 and RFC 9110 §8.4; the body is never stored, whatever follows."""
    body = b"a\r\n" + GOOD + b"\r\n0\r\n\r\n" if b"chunked" in framing else GOOD
    server = serve([(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n" + body, True)] * 2)
    try:
        error, written = _fetch_to_part(client, server, tmp_path)
    finally:
        server.close()
    assert written == b""
    assert error.transient  # a broken answer: tried again later, and given up on by the no-progress timeout


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param(b"5\r\n01234\r\n-5\r\n\r\n0\r\n\r\n", id="negative-size"),
        pytest.param(b"5\r\n01234\r\n0x5\r\n56789\r\n0\r\n\r\n", id="hex-prefix"),
        pytest.param(b"5\r\n01234XX5\r\n56789\r\n0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"5\r\n01234\r\nzz\r\n", id="not-hex"),
        pytest.param(b"5\r\n01234\r\n5\r\n567", id="cut-mid-chunk"),
    ],
)
def test_invalid_chunks_keep_only_the_complete_chunks_before_them(
    client: Client, tmp_path: Path, chunks: bytes
) -> None:
    """Issue 12, item 2: nothing after the last valid chunk byte is written; framing is never data."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = serve([(head + chunks, True)] * 2)
    try:
        error, written = _fetch_to_part(client, server, tmp_path)
    finally:
        server.close()
    assert GOOD.startswith(written)
    assert written in (b"01234", b"01234567")  # the first chunk, and a cut chunk's bytes as far as they came
    assert error.transient


def test_a_206_longer_than_its_span_is_cut_at_the_span(client: Client, tmp_path: Path) -> None:
    """Issue 12, item 5: never write past the span, never record progress past the total."""
    part = tmp_path / "p"
    part.write_bytes(GOOD[:4])
    answer = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n\r\n" + GOOD[4:] + b"EXTRA BYTES"
    server = serve([(answer, True)] * 2)
    server_head = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
    server.script.insert(0, server_head)
    try:
        job = Download(url=server.url(), part=str(part), offset=4, known=Version(10, '"v"'), timeout=(5, 5))
        recorder = Recorder()
        with pytest.raises(TransferError):
            download(client, job, recorder)
    finally:
        server.close()
    assert all(offset <= len(GOOD) for offset, _ in recorder.checkpoints)
    assert part.read_bytes()[:10] == GOOD
    assert len(part.read_bytes()) <= len(GOOD)


def test_a_206_whose_length_disagrees_with_its_span_is_refused(client: Client, tmp_path: Path) -> None:
    part = tmp_path / "p"
    part.write_bytes(GOOD[:4])
    answer = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 9\r\n\r\n456789xyz"
    server = serve([b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", (answer, True)])
    try:
        job = Download(url=server.url(), part=str(part), offset=4, known=Version(10, '"v"'), timeout=(5, 5))
        with pytest.raises(TransferError):
            download(client, job, Recorder())
    finally:
        server.close()
    assert part.read_bytes() == GOOD[:4]


@pytest.mark.parametrize(
    ("range_header", "complete"),
    [(b"Content-Range: bytes */10\r\n", True), (b"Content-Range: bytes */5\r\n", False), (b"", False)],
)
def test_a_416_is_read_by_its_content_range(
    client: Client, tmp_path: Path, range_header: bytes, complete: bool
) -> None:
    """Issue 12, item 4: all our bytes only when the server's size is exactly what is on disk; else start over."""
    part = tmp_path / "p"
    part.write_bytes(GOOD)
    answer = b"HTTP/1.1 416 Range Not Satisfiable\r\n" + range_header + b"Content-Length: 0\r\n\r\n"
    server = serve([b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", answer])
    try:
        job = Download(url=server.url(), part=str(part), offset=10, known=Version(10, '"v"'), timeout=(5, 5))
        recorder = Recorder()
        if complete:
            assert download(client, job, recorder).size == 10
        else:
            with pytest.raises(TransferError):
                download(client, job, recorder)
    finally:
        server.close()
    assert part.read_bytes() == (GOOD if complete else b"")
    assert recorder.offset == (10 if complete else 0)


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
