"""queue check and queue recover on real damaged files: flipped bytes, a broken header, lost pages (issue 13 item 5)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitscli.errors import ExitCode

from .conftest import Result, run_process
from .daemonproc import DaemonProcess

JOBS = 60
PAGE = 4096


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A queue of 60 jobs (job59 with credentials, job58 an upload), checkpointed into one file; copied per test."""
    home = tmp_path_factory.mktemp("pristine")
    env = {"BITSCLI_HOME": str(home), "BITSCLI_NO_AUTOSTART": "1"}
    lines = []
    for i in range(JOBS):
        kind = "--upload " if i == 58 else ""
        lines.append(f"create {kind}job{i}")
    script = "\n".join(lines)
    # One process for the 60 jobs: the CLI in-process through main(), with the environment of the module.
    code = (
        "import shlex, sys\nfrom bitscli.cli import main\n"
        "for line in sys.stdin.read().splitlines():\n"
        "    assert main(shlex.split(line)) == 0, line\n"
    )
    upload_source = home / "up.bin"
    upload_source.write_bytes(b"u" * 100)
    for i in range(JOBS):
        if i == 58:
            script += f"\naddfile job{i} http://127.0.0.1:1/up{i} {upload_source}"
        else:
            script += f"\naddfile job{i} http://127.0.0.1:1/f{i} {home}/out{i}"
    script += "\nsetcredentials job59 SERVER BASIC user --password-file /dev/null"
    done = subprocess.run([sys.executable, "-c", code], input=script, text=True, capture_output=True,
                          env={**os.environ, **env}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(home / "queue.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home / "queue.db"


@pytest.fixture
def queue(pristine: Path, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    shutil.copyfile(pristine, home / "queue.db")
    return home / "queue.db"


def _run(*args: str, path: str | None = None) -> Result:
    result = run_process(*args, env={"PATH": path} if path is not None else None)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.exit_code != ExitCode.FAILURE, result.stderr
    return result


def _jobs(cli_json: Result) -> dict[str, dict[str, object]]:
    return {job["id"]: job for job in cli_json.json["jobs"]}


def _jobs_leaf_holding(path: Path, needle: bytes) -> int:
    """The 0-based page that is a leaf of a rowid table (the jobs) and holds ``needle``: the files, credentials
    and uploads tables are WITHOUT ROWID, so their pages are index pages (SQLite file format, B-tree pages)."""
    data = path.read_bytes()
    table_leaf = 0x0D
    return next(p for p in range(1, len(data) // PAGE) if data[p * PAGE] == table_leaf and needle in
                data[p * PAGE : (p + 1) * PAGE])  # fmt: skip


def test_a_healthy_queue_checks_clean(queue: Path) -> None:
    result = _run("queue", "check", "--json")
    assert result.exit_code == 0
    assert result.json["healthy"] is True
    from bitscli.schema import MIGRATIONS

    assert (result.json["jobs"], result.json["files"], result.json["schema_version"]) == (JOBS, JOBS, len(MIGRATIONS))


def test_check_names_bad_rows_and_orphans(queue: Path) -> None:
    conn = sqlite3.connect(queue)
    conn.execute("UPDATE jobs SET state = 99 WHERE display_name = 'job5'")
    conn.execute("INSERT INTO files (job_id, idx, remote_name, local_name, bytes_total, bytes_transferred, "
                 "completed, ranges, validation_state) VALUES ('{nobody}', 0, 'r', 'l', -1, 0, 0, '', 0)")  # fmt: skip
    conn.commit()
    conn.close()
    result = _run("queue", "check")
    assert result.exit_code == ExitCode.QUEUE
    assert "job5): state = 99" in result.stdout
    assert "1 files rows belong to no job" in result.stdout
    assert "queue recover" in result.stderr


def test_recover_keeps_every_job_a_damaged_page_did_not_hold(queue: Path, home: Path) -> None:
    before = _jobs(_run("list", "--all", "--json"))
    page = _jobs_leaf_holding(queue, b"job30")  # a leaf page of the jobs table: job30's row and its neighbours
    data = bytearray(queue.read_bytes())
    data[page * PAGE : page * PAGE + 12] = b"\xff" * 12  # its page header: SQLite cannot read the page
    queue.write_bytes(bytes(data))
    assert _run("list").exit_code == ExitCode.QUEUE
    assert _run("queue", "check").exit_code == ExitCode.QUEUE

    result = _run("queue", "recover", "--json", path="/nonexistent")  # no sqlite3 shell: row by row
    assert result.exit_code == 0
    report = result.json
    assert "no sqlite3 shell" in report["method"]
    on_the_page = {job_id for job_id in before if job_id.encode() in data[page * PAGE : (page + 1) * PAGE]}
    assert {job["id"] for job in report["lost"]} == on_the_page  # named from the GUID index
    assert {job["id"] for job in report["kept"]} == set(before) - on_the_page
    assert "job30" in {job["name"] for job in report["lost"]}
    assert all(job["why"] for job in report["lost"])
    assert Path(report["moved_to"]).read_bytes() == bytes(data)  # the damaged file is kept for forensics

    assert _run("queue", "check").exit_code == 0
    after = _jobs(_run("list", "--all", "--json"))
    assert {job["name"] for job in after.values()} == {j["name"] for j in report["kept"]}
    for job_id, job in after.items():
        assert job == before[job_id]  # each kept job is whole: its files, state and properties
    verbose = _run("info", "job59", "--json", "--verbose").json
    assert verbose["job"]["properties"]["credentials"], verbose
    assert os.stat(queue).st_mode & 0o777 == 0o600


def test_recover_mends_a_damaged_header(queue: Path) -> None:
    before = _jobs(_run("list", "--all", "--json"))
    data = bytearray(queue.read_bytes())
    data[0:100] = bytes(random.Random(7).randrange(256) for _ in range(100))
    queue.write_bytes(bytes(data))
    assert _run("list").exit_code == ExitCode.QUEUE
    report = _run("queue", "recover", "--json").json
    assert len(report["kept"]) == JOBS
    assert report["lost"] == []
    assert any("header was damaged" in note for note in report["notes"]), report
    assert _jobs(_run("list", "--all", "--json")) == before


def test_recover_mends_a_damaged_schema(queue: Path) -> None:
    """Damage in page 1's schema cells hides every table: a new queue's page 1 stands in for it."""
    before = _jobs(_run("list", "--all", "--json"))
    data = bytearray(queue.read_bytes())
    data[100:112] = b"\x00" * 12  # page 1's B-tree header
    queue.write_bytes(bytes(data))
    assert _run("list").exit_code == ExitCode.QUEUE
    report = _run("queue", "recover", "--json").json
    assert len(report["kept"]) == JOBS, report
    assert _jobs(_run("list", "--all", "--json")) == before


def test_recover_a_truncated_file_names_every_job_it_lost(queue: Path) -> None:
    before = _jobs(_run("list", "--all", "--json"))
    size = queue.stat().st_size
    os.truncate(queue, size - PAGE)  # the last page, a leaf of the files, is gone (a failed copy, a full disk)
    assert _run("list").exit_code == ExitCode.QUEUE
    report = _run("queue", "recover", "--json").json
    assert report["kept"], report
    assert report["lost"], report
    assert {job["id"] for job in report["kept"]} | {job["id"] for job in report["lost"]} == set(before)
    assert all(job["name"] for job in report["lost"])  # named from the index pages that remain
    after = _jobs(_run("list", "--all", "--json"))
    assert {job_id: before[job_id] for job_id in after} == after


def test_recover_an_empty_file(queue: Path) -> None:
    queue.write_bytes(b"")
    assert _run("list").exit_code == ExitCode.QUEUE
    result = _run("queue", "recover")
    assert result.exit_code == 0
    assert "Kept 0 jobs; lost 0" in result.stdout
    assert "the file was empty" in result.stdout
    assert _run("list").exit_code == 0


def test_recover_refuses_another_programs_database_unless_forced(home: Path) -> None:
    home.mkdir(parents=True)
    conn = sqlite3.connect(home / "queue.db")
    conn.execute("PRAGMA application_id = 7")
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    refused = _run("queue", "recover")
    assert refused.exit_code == ExitCode.QUEUE
    assert "--force" in refused.stderr
    assert (home / "queue.db").exists()
    assert not list(home.glob("queue.db.broken-*"))
    forced = _run("queue", "recover", "--force")
    assert forced.exit_code == 0
    assert "Kept 0 jobs" in forced.stdout
    assert len(list(home.glob("queue.db.broken-*"))) == 1


def test_recover_refuses_while_the_daemon_runs(queue: Path, home: Path) -> None:
    daemon = DaemonProcess(home).start()
    try:
        result = _run("queue", "recover")
        assert result.exit_code == ExitCode.DAEMON
        assert "daemon stop" in result.stderr
        assert not list(home.glob("queue.db.broken-*"))
    finally:
        daemon.close()


def _flip(queue: Path, seed: int) -> None:
    """Flip 1-16 bytes of one page, the first (header and schema) twice as often as any other."""
    rng = random.Random(seed)
    data = bytearray(queue.read_bytes())
    page = rng.choice([0, 0, *range(len(data) // PAGE)])
    for _ in range(rng.randint(1, 16)):
        in_header = page == 0 and rng.random() < 0.5
        offset = page * PAGE + (rng.randrange(100) if in_header else rng.randrange(PAGE))
        data[offset] ^= rng.randrange(1, 256)
    queue.write_bytes(bytes(data))


def _daemon_survives(home: Path) -> None:
    """daemon run on the damaged queue: it runs (and stops cleanly on SIGTERM), or refuses with exit 7."""
    process = subprocess.Popen([sys.executable, "-m", "bitscli", "daemon", "run"], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, env={**os.environ, "BITSCLI_HOME": str(home)})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and not (home / "daemon.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert code in (0, ExitCode.QUEUE), stderr


@pytest.mark.parametrize("seed", range(24))
def test_flipped_bytes_never_crash_and_recover_keeps_a_healthy_queue(queue: Path, home: Path, seed: int) -> None:
    _flip(queue, seed)
    listing = _run("list", "--all", "--json")
    check = _run("queue", "check")
    if listing.exit_code == 0 and len(listing.json["jobs"]) != JOBS:
        assert check.exit_code == ExitCode.QUEUE, "jobs vanished and queue check did not notice"
    _run("info", "job7")
    _daemon_survives(home)
    recovered = _run("queue", "recover", "--json")
    if recovered.exit_code == ExitCode.QUEUE:  # the flips made the header name a newer schema or another program
        assert "--force" in recovered.stderr
        recovered = _run("queue", "recover", "--json", "--force")
    assert recovered.exit_code == 0
    assert _run("queue", "check").exit_code == 0
    after = _run("list", "--all", "--json")
    assert after.exit_code == 0
    assert len(after.json["jobs"]) == len(recovered.json["kept"])


def test_a_new_queues_schema_fits_on_page_1(tmp_path: Path) -> None:
    """`queue recover` stands a new queue's page 1 in for a damaged one, which needs the whole schema there (a
    leaf page). Migrations 10 to 12 once pushed it over; whitespace is now squeezed out of the statements."""
    from bitscli.store import open_queue

    open_queue(tmp_path / "q.db").close()
    data = (tmp_path / "q.db").read_bytes()
    assert data[100] == 0x0D  # a table leaf: sqlite_master is page 1 alone
    used = sqlite3.connect(tmp_path / "q.db").execute("SELECT sum(length(sql)) FROM sqlite_master").fetchone()[0]
    assert used < 3600, f"the schema takes {used} bytes of page 1's 3,996"
