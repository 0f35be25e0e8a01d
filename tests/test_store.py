"""The SQLite queue: private files, WAL, migrations, and refusal to touch anything it cannot trust."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from bitscli import store
from bitscli.errors import ExitCode, QueueError

from .conftest import run_process


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_queue_files_are_private(ok, home: Path) -> None:
    ok("create", "x")
    assert _mode(home) == 0o700
    assert _mode(home / "queue.db") == 0o600
    queue = store.open_queue(home / "queue.db")
    with queue.write():  # while a connection is open, the WAL and shared-memory files exist
        wal, shm = home / "queue.db-wal", home / "queue.db-shm"
        assert wal.exists()
        assert shm.exists()
        assert _mode(wal) == 0o600
        assert _mode(shm) == 0o600
    queue.close()
    for path in home.iterdir():
        assert _mode(path) & 0o077 == 0, path


def test_queue_is_wal_with_the_current_schema(ok, home: Path) -> None:
    ok("create", "x")
    conn = sqlite3.connect(home / "queue.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_garbage_queue_is_refused_and_left_alone(cli, home: Path) -> None:
    home.mkdir()
    db = home / "queue.db"
    db.write_bytes(b"this is not a database at all" * 100)
    before = _digest(db)
    result = cli("list")
    assert result.exit_code == ExitCode.QUEUE
    assert "corrupt or not a bitscli queue" in result.stderr
    assert "hint: bitscli queue recover" in result.stderr
    assert _digest(db) == before
    assert sorted(p.name for p in home.iterdir()) == ["queue.db"]


def test_truncated_queue_is_refused_and_left_alone(cli, ok, home: Path) -> None:
    for i in range(40):
        job = ok("create", "--raw", f"job-{i}").stdout
        ok("setdescription", job, "x" * 1000)
    db = home / "queue.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])  # header intact, most pages gone: a torn copy
    before = _digest(db)
    result = cli("list")
    assert result.exit_code == ExitCode.QUEUE, result.stderr
    assert "corrupt" in result.stderr
    assert _digest(db) == before


def test_an_emptied_queue_is_refused_not_started_anew(cli, ok, home: Path) -> None:
    """Issue 13, item 2: `truncate -s0 queue.db` lost every job; a new empty queue in its place hid that."""
    for i in range(12):
        ok("create", f"job-{i}")
    db = home / "queue.db"
    for name in ("queue.db-wal", "queue.db-shm"):
        (home / name).unlink(missing_ok=True)
    db.write_bytes(b"")
    for argv in (["list"], ["create", "again"], ["daemon", "run"]):
        result = cli(*argv)
        assert result.exit_code == ExitCode.QUEUE, (argv, result.stderr)
        assert "empty file" in result.stderr
        assert "bitscli queue recover" in result.stderr
        assert db.stat().st_size == 0


def test_a_new_queue_appears_whole_and_leaves_nothing_behind(ok, home: Path) -> None:
    ok("create", "first")
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith("queue.db")) == []
    assert (home / "queue.db").stat().st_size > 0


def test_queue_from_a_newer_version_is_refused(cli, ok, home: Path) -> None:
    ok("create", "x")
    conn = sqlite3.connect(home / "queue.db")
    conn.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    conn.close()
    before = _digest(home / "queue.db")
    result = cli("create", "y")
    assert result.exit_code == ExitCode.QUEUE
    assert "written by a newer bitscli" in result.stderr
    assert "upgrade" in result.stderr
    assert _digest(home / "queue.db") == before


@pytest.mark.parametrize("user_version", [0, 1, 7])
def test_other_sqlite_databases_are_refused(cli, home: Path, user_version: int) -> None:
    home.mkdir()
    conn = sqlite3.connect(home / "queue.db")
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    before = _digest(home / "queue.db")
    result = cli("list")
    assert result.exit_code == ExitCode.QUEUE
    assert "not a bitscli queue" in result.stderr
    assert _digest(home / "queue.db") == before


def test_an_unwritable_queue_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the queue directory should be")
    result = run_process("create", "x", env={"BITSCLI_HOME": str(blocked / "home")})
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_a_failed_transaction_leaves_nothing_behind(home: Path) -> None:
    queue = store.open_queue(home / "queue.db")
    from bitscli.model import Job, JobType

    def insert_then_fail() -> None:
        with queue.write() as tx:
            tx.insert(Job("{00000000-0000-0000-0000-00000000000A}", "x", JobType.DOWNLOAD, "me", 0.0, 0.0))
            raise RuntimeError("fail after the insert")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with queue.read() as tx:
        assert tx.jobs(include_final=True) == []
    queue.close()


def test_round_trip_of_every_field(home: Path, tmp_path: Path) -> None:
    from bitscli.model import (
        AuthScheme,
        AuthTarget,
        ByteRange,
        Credential,
        ErrorContext,
        Job,
        JobError,
        JobFile,
        JobPriority,
        JobState,
        JobType,
        ProxyUsage,
    )  # fmt: skip

    job = Job(
        id="{00000000-0000-0000-0000-00000000000B}", display_name="all", type=JobType.UPLOAD_REPLY, owner="me",
        creation_time=1.5, modification_time=2.5, state=JobState.TRANSIENT_ERROR, priority=JobPriority.LOW,
        description="d", completion_time=None, started=True,
        files=(JobFile("http://127.0.0.1/a", "/tmp/a", 10, 5, False, (ByteRange(0, 5), ByteRange(9, -1)), True,
                       '"etag"', "Tue, 01 Jan 2030 00:00:00 GMT"),),
        notify_flags=7, notify_program="/bin/true", notify_parameters="true x", min_retry_delay=30,
        no_progress_timeout=40, max_download_time=50, proxy_usage=ProxyUsage.OVERRIDE, proxy_list="p:1",
        proxy_bypass_list="<local>", custom_headers=("A: 1", "B: 2"), custom_headers_write_only=True,
        credentials=(Credential(AuthTarget.PROXY, AuthScheme.NTLM, None, None),), security_flags=0x800,
        http_method="POST", acl_flags=5, dynamic=False, reply_file_name="/tmp/r",
        error=JobError(0x80190194, ErrorContext.REMOTE_FILE, 0, "not found"), error_count=3,
        retry_at=1234.5, transient_since=1000.25, active_seconds=77.5,
    )  # fmt: skip
    queue = store.open_queue(home / "queue.db")
    with queue.write() as tx:
        tx.insert(job)
    with queue.read() as tx:
        assert tx.job(job.id) == job
    queue.close()


def test_busy_queue_times_out_with_a_clear_error(home: Path) -> None:
    holder = store.open_queue(home / "queue.db")
    waiter = store.open_queue(home / "queue.db", busy_timeout=0.2)
    with holder.write(), pytest.raises(QueueError, match="locked by another process"), waiter.write():
        pass
    holder.close()
    waiter.close()


def test_an_old_queue_is_migrated_in_place_keeping_its_jobs(ok, home: Path) -> None:
    from bitscli import schema

    home.mkdir()
    db = home / "queue.db"
    conn = sqlite3.connect(db)
    for statement in schema.MIGRATIONS[0]:  # exactly what schema version 1 created
        conn.execute(statement)
    conn.execute(
        "INSERT INTO jobs (id, display_name, description, type, state, priority, owner, creation_time,"
        " modification_time, started, notify_flags, min_retry_delay, no_progress_timeout, max_download_time,"
        " proxy_usage, custom_headers_write_only, security_flags, http_method, acl_flags, dynamic, error_count)"
        " VALUES ('{00000000-0000-0000-0000-0000000000C1}', 'old', '', 0, 3, 2, 'me', 1, 1, 0, 3, 600, 1209600,"
        " 7776000, 0, 0, 0, 'GET', 0, 0, 0)"
    )
    conn.execute(f"PRAGMA application_id = {store.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    assert ok("getstate", "old").stdout == "SUSPENDED\n"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert conn.execute("SELECT active_seconds FROM jobs").fetchone()[0] == 0


def test_every_model_field_has_a_column() -> None:
    import dataclasses

    from bitscli import schema
    from bitscli.model import Job, JobFile

    # Child tables, the error columns, and what a row that cannot be read gives instead (schema.corrupt_job).
    mapped_elsewhere = {"files", "credentials", "error", "corrupt"}
    assert {f.name for f in dataclasses.fields(Job)} - mapped_elsewhere == set(schema.JOB_FIELDS)
    assert {f.name for f in dataclasses.fields(JobFile)} == set(schema.FILE_COLUMNS)


@pytest.mark.parametrize("version", [1, 5, 8, 9, 10])
def test_a_queue_of_any_earlier_schema_gets_every_later_migration(ok, home: Path, tmp_path: Path, version: int) -> None:
    """SCHEMA_VERSION once stayed at 8 while migrations 9 to 11 were added: new queues had every column, and a
    queue of schema 8 (every existing user's) was never migrated, so its first addfile failed. A queue of each
    earlier version now ends at the last migration, and works."""
    from bitscli import schema

    home.mkdir()
    conn = sqlite3.connect(home / "queue.db")
    for statements in schema.MIGRATIONS[:version]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {store.APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    job = ok("create", "--raw", "upgraded").stdout.strip()
    ok("addfile", job, "http://127.0.0.1:9/f", str(tmp_path / "f"), "--sha256", "a" * 64, "--if-changed")
    assert ok("listfiles", job, "--json").json["files"][0]["if_changed"] is True
    conn = sqlite3.connect(home / "queue.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS) == store.SCHEMA_VERSION
    conn.close()


def test_a_queue_stamped_too_old_for_its_columns_is_still_migrated(ok, home: Path, tmp_path: Path) -> None:
    """Queues made while SCHEMA_VERSION lagged have every column but say schema 8: migrating them again skips
    what is already there instead of failing on it."""
    from bitscli import schema

    home.mkdir()
    conn = sqlite3.connect(home / "queue.db")
    for statements in schema.MIGRATIONS:
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {store.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    job = ok("create", "--raw", "stamped").stdout.strip()
    ok("addfile", job, "http://127.0.0.1:9/f", str(tmp_path / "f"), "--if-changed")
    conn = sqlite3.connect(home / "queue.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    conn.close()
