"""One row that cannot be read is one corrupt job, never a broken queue (issue 13, item 1)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitscli.errors import ExitCode
from bitscli.model import JobState

from .daemonproc import FakeClock, run_once, state
from .faultserver import FaultServer, serving


@pytest.fixture
def server() -> Iterator[FaultServer]:
    yield from serving("/f", b"x" * 10_000)


def _spoil(home: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(home / "queue.db")
    with conn:
        conn.execute(sql, params)
    conn.close()


BAD_JOBS = [
    ("UPDATE jobs SET state = 99 WHERE id = ?", "state"),
    ("UPDATE jobs SET state = 'FOO' WHERE id = ?", "state"),
    ("UPDATE jobs SET state = -1 WHERE id = ?", "state"),  # Python's negative index once made this CANCELLED
    ("UPDATE jobs SET priority = 7 WHERE id = ?", "priority"),
    ("UPDATE jobs SET display_name = x'ff' WHERE id = ?", "display_name"),  # a blob in a text column
    # text that is not UTF-8: SQLite's default decoding raised for the whole read
    ("UPDATE jobs SET description = CAST(x'41ff42' AS TEXT) WHERE id = ?", "description"),
    ("UPDATE files SET local_name = CAST(x'2fc328' AS TEXT) WHERE job_id = ?", "local_name"),
    ("UPDATE files SET ranges = 'x:y' WHERE job_id = ?", "ranges"),
    ("UPDATE files SET bytes_total = -5 WHERE job_id = ?", "bytes"),
    ("UPDATE credentials SET scheme = 42 WHERE job_id = ?", "credential"),
    ("DELETE FROM files WHERE job_id = ?", "files"),  # a QUEUED job without a file cannot be
]


@pytest.mark.parametrize(("sql", "field"), BAD_JOBS, ids=[f for _, f in BAD_JOBS])
def test_a_bad_row_is_one_corrupt_job_and_every_other_job_is_unaffected(
    ok, cli, new_daemon, server: FaultServer, home: Path, tmp_path: Path, sql: str, field: str
) -> None:
    bad = ok("create", "--raw", "bad").stdout
    good = ok("create", "--raw", "good").stdout
    for ref, name in ((bad, "b"), (good, "g")):
        ok("addfile", ref, server.url("/f"), str(tmp_path / name))
        ok("setcredentials", ref, "SERVER", "BASIC", "u", "--password-file", "-", stdin="p")
        ok("resume", ref)
    _spoil(home, sql, bad)
    listing = cli("list")
    assert listing.exit_code == 0, listing.stderr
    assert good in listing.stdout
    shown = cli("info", bad, "--verbose")
    assert shown.exit_code == 0, shown.stderr
    assert "internal state corrupt" in shown.stdout
    assert field in shown.stdout
    assert cli("resume", bad).exit_code == ExitCode.INVALID_STATE  # it cannot change, but it can go
    daemon = new_daemon(FakeClock())  # the daemon starts, and runs the rest: a background job at a time, so the
    for _ in range(2):  # good one may wait for the bad one's worker to find its bad file row
        run_once(daemon)
    assert state(good) is JobState.TRANSFERRED
    ok("cancel", bad)
    assert state(bad) is JobState.CANCELLED
    assert cli("list", "--all").exit_code == 0


@pytest.mark.parametrize("remote", ["http://[::1/f", "http://user:pw@host:99999/f", "http://u:p@[zz/f"])
def test_a_remote_name_that_does_not_parse_is_shown_not_a_crash(ok, cli, home: Path, remote: str) -> None:
    """A damaged byte (a flipped `[`) in a stored remote name once made `list --json` an internal error."""
    job = ok("create", "--raw", "odd").stdout
    ok("addfile", job, "http://127.0.0.1:9/f", "/tmp/odd-target")
    _spoil(home, "UPDATE files SET remote_name = ? WHERE job_id = ?", remote, job)
    for argv in (["list", "--json"], ["list", "--verbose"], ["info", job, "--verbose"], ["listfiles", job, "--json"]):
        result = cli(*argv)
        assert result.exit_code == 0, (argv, result.stderr)
        assert "pw" not in result.stdout  # a password is hidden even in a name that does not parse
        assert ":p@" not in result.stdout
