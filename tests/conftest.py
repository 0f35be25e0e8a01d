"""Shared fixtures: an isolated BITSCLI_HOME per test and helpers that run the real CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bitscli.cli import main


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own queue and config directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("BITSCLI_HOME", str(home))
    monkeypatch.delenv("BITSCLI_DEBUG", raising=False)
    # Tests that want a daemon start one themselves (tests/daemonproc.py) and stop it afterwards.
    monkeypatch.setenv("BITSCLI_NO_AUTOSTART", "1")
    return home


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``bitscli ARGS`` in-process: cli("create", "x") -> Result."""

    def run(*args: str, stdin: str | None = None) -> Result:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def ok(cli):
    """Like ``cli`` but the command must succeed."""

    def run(*args: str, stdin: str | None = None) -> Result:
        result = cli(*args, stdin=stdin)
        assert result.exit_code == 0, f"bitscli {' '.join(args)} failed: {result.stderr}"
        return result

    return run


@pytest.fixture
def job(ok) -> str:
    """A fresh download job's GUID."""
    return ok("create", "--raw", "job1").stdout


@pytest.fixture
def new_daemon() -> Iterator:
    """In-process daemons on an injected clock, shut down after the test even when it fails."""
    from bitscli import paths
    from bitscli.daemon.loop import Daemon
    from tests.daemonproc import FakeClock

    made: list[Daemon] = []

    def make(clock: FakeClock | None = None) -> Daemon:
        daemon = Daemon(paths.queue_path(), clock or FakeClock(), config_path=paths.config_file())
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.shutdown()


def run_process(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run bitscli in a real child process."""
    done = subprocess.run(
        [sys.executable, "-m", "bitscli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def snapshot(cli) -> Any:
    """Everything the queue holds, for 'nothing changed' assertions."""
    result = cli("list", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    return result.json


@pytest.fixture
def client() -> Iterator[Any]:
    """A transfer Client (one job's kept-alive connections), closed after the test."""
    from bitscli.transfer.client import Client

    made = Client()
    yield made
    made.close()
