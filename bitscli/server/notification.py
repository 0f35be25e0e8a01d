"""Server -> application notification (bits.md §4): hand a finished upload to a URL or a local command."""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from bitscli import protocol
from bitscli.server.settings import ServerSettings

log = logging.getLogger("bitscli.serve")
BY_REFERENCE = 1
BY_VALUE = 2


@dataclass(frozen=True)
class Answer:
    """What the application said: a status, and where its reply is."""

    status: int  # 2xx: accepted; any other status is reported to the client with context 0x7
    reply_file: str | None = None  # a reply we keep until the session closes
    static_reply_url: str | None = None  # BITS-Static-Response-URL: a reply that already exists elsewhere
    copy_to_destination: bool = False  # BITS-Copy-File-To-Destination: store the upload as well
    message: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def notify(settings: ServerSettings, upload: str, reply: Path, original_url: str) -> Answer:
    """Post the upload to the application and wait for its answer (at most the notification timeout)."""
    if settings.notification_command:
        return _run_command(settings, upload, reply, original_url)
    return _post(settings, upload, reply, original_url)


def _post(settings: ServerSettings, upload: str, reply: Path, original_url: str) -> Answer:
    import requests

    # Relative URLs resolve against the job URL's directory, and the job URL's query is appended (IIS).
    url = urljoin(original_url, settings.notification_url or "")
    query = urlsplit(original_url).query
    if query:
        url += ("&" if "?" in url else "?") + query
    headers = {protocol.ORIGINAL_REQUEST_URL: original_url}
    try:
        if settings.notification_type == BY_REFERENCE:
            headers.update({protocol.REQUEST_DATAFILE: upload, protocol.RESPONSE_DATAFILE: str(reply)})
            response = requests.post(url, headers=headers, data=b"", timeout=settings.notification_timeout)
        else:
            with open(upload, "rb") as body:
                response = requests.post(url, headers=headers, data=body, timeout=settings.notification_timeout)
    except requests.RequestException as exc:
        # No answer in time is a transient error: the client sends the last fragment again later.
        return Answer(503, message=f"the application at {url} did not answer: {type(exc).__name__}")
    with response:
        if not 200 <= response.status_code < 300:
            return Answer(response.status_code, message=f"the application answered {response.status_code}")
        if settings.notification_type == BY_VALUE:
            reply.write_bytes(response.content)
        return _answer(dict(response.headers), reply)


def _run_command(settings: ServerSettings, upload: str, reply: Path, original_url: str) -> Answer:
    """By reference: paths in the environment. By value: the upload on stdin, the reply on stdout."""
    env = {**os.environ, "BITS_ORIGINAL_REQUEST_URL": original_url}
    if settings.notification_type == BY_REFERENCE:
        env.update(BITS_REQUEST_DATAFILE_NAME=upload, BITS_RESPONSE_DATAFILE_NAME=str(reply))
    try:
        with open(upload, "rb") as stdin, open(reply, "wb") as stdout:
            by_value = settings.notification_type == BY_VALUE
            finished = subprocess.run(
                settings.notification_command, stdin=stdin if by_value else subprocess.DEVNULL,
                stdout=stdout if by_value else subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                timeout=settings.notification_timeout, check=False,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Answer(503, message="the notification command did not finish in time")
    except OSError as exc:
        return Answer(500, message=f"cannot run the notification command: {exc.strerror}")
    if finished.returncode != 0:
        tail = finished.stderr.decode(errors="replace").strip()[-300:]
        log.warning("notification command exited %d: %s", finished.returncode, tail)
        return Answer(500, message=f"the notification command exited {finished.returncode}")
    return _answer({}, reply)


def _answer(headers: dict[str, str], reply: Path) -> Answer:
    lowered = {k.lower(): v for k, v in headers.items()}
    static = lowered.get(protocol.STATIC_RESPONSE_URL.lower())
    copy = protocol.COPY_TO_DESTINATION.lower() in lowered
    if static:
        return Answer(200, static_reply_url=static, copy_to_destination=copy)
    return Answer(200, reply_file=str(reply) if reply.exists() else None, copy_to_destination=copy)
