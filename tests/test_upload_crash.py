"""kill -9 of the daemon and of the server during an upload: the file still arrives whole, in one session."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from bitscli.model import JobState
from bitscli.service.context import open_context

from .daemonproc import DaemonProcess, state
from .serveproc import ServeProcess

SIZE = 48 << 20
FRAGMENT = 64 << 10  # small fragments: many Acks, so the kills land between and inside them


def progress(job: str) -> tuple[int, str | None]:
    ctx = open_context()
    try:
        with ctx.queue.read() as tx:
            return tx.file(job.upper(), 0).bytes_transferred, tx.upload_state(job.upper()).session_id
    finally:
        ctx.queue.close()


def wait_progress(job: str, at_least: int, deadline: float) -> tuple[int, str | None]:
    while True:
        done, session = progress(job)
        if done >= at_least or state(job) is JobState.TRANSFERRED:
            return done, session
        assert time.monotonic() < deadline, f"stuck at {done} bytes in state {state(job).name}"
        time.sleep(0.01)


def test_kill_9_of_daemon_and_server_mid_upload(ok, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(SIZE))
    target = root / "payload.bin"
    server = ServeProcess(root, "--uploads", "/", "--max-fragment-size", str(FRAGMENT)).start()
    daemon = DaemonProcess(home)
    try:
        job = ok("create", "--raw", "--upload", "crash-upload").stdout
        ok("addfile", job, f"{server.url}/payload.bin", str(source))
        ok("setminretrydelay", job, "5")
        ok("resume", job)
        daemon.start()
        deadline = time.monotonic() + 240
        sessions = set()
        offsets = []
        for step in range(1, 6):
            done, session = wait_progress(job, step * SIZE // 7, deadline)
            if done >= SIZE:
                break
            sessions.add(session)
            assert not target.exists(), "the upload appeared under its final name before it was complete"
            if step % 2:
                daemon.kill9()  # the daemon dies between or inside fragments
                offsets.append(progress(job)[0])
                daemon.start()
            else:
                server.restart()  # kill -9 of the server, then back on the same port with its sessions on disk
        while state(job) is not JobState.TRANSFERRED:
            assert state(job) is not JobState.ERROR, ok("info", "--verbose", job).stdout
            assert time.monotonic() < deadline, ok("info", "--verbose", job).stdout
            time.sleep(0.05)
        sessions.add(progress(job)[1])
        assert len(sessions) == 1, "a crash restarted the upload in a new session instead of resuming it"
        assert offsets, "no kill landed during the upload"
        assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        assert not [p for p in root.iterdir() if p.name.startswith(".payload.bin")]  # no session data left
    finally:
        daemon.close()
        server.stop()
