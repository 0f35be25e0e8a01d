"""The job queue on disk: SQLite in WAL mode, its creation, migrations and transactions (transaction.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bitscli import paths
from bitscli.errors import QueueError
from bitscli.partfiles import fsync_directory
from bitscli.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    decode_text,
)
from bitscli.transaction import Transaction


def open_queue(path: Path | None = None, *, busy_timeout: float = 30.0, durable: bool = True) -> Queue:
    """Open (creating if needed) the queue, refusing any file that is not a healthy bitscli queue."""
    path = path or paths.queue_path()
    paths.ensure_private_dir(path.parent)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _create(path, busy_timeout)
    except OSError as exc:
        raise QueueError(f"cannot read the queue {path}: {exc.strerror}") from None
    else:
        if size == 0:
            # bitscli never leaves an empty queue behind (_create), so an empty file is one that lost its
            # content (a truncate, a failed copy): starting a new queue in it would hide the loss.
            raise QueueError(
                f"the queue {path} is an empty file, not a bitscli queue; it was left untouched",
                hint="restore it from a backup, or run bitscli queue recover to move it aside and start a new queue",
            )
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except _SQLITE_ERRORS as exc:
        raise _queue_error(exc, path) from None
    queue = Queue(conn, path, busy_timeout, durable)
    try:
        queue._prepare()
    except BaseException:
        conn.close()
        raise
    return queue


def _create(path: Path, busy_timeout: float) -> None:
    """A new, initialised queue at ``path``, made under another name and linked into place in one step.

    A crash while the schema is written leaves only the temporary file, never an empty queue.db.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        # Created 0600 here; SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(temporary, timeout=busy_timeout, isolation_level=None)
        try:
            Queue(conn, temporary, busy_timeout)._prepare()
        finally:
            conn.close()  # the last connection: SQLite copies its WAL back into the file
        try:
            os.link(temporary, path)  # fails if another process made the queue meanwhile: then theirs stands
        except OSError as exc:  # that, or a filesystem without hard links
            if not isinstance(exc, FileExistsError) and not path.exists():
                os.replace(temporary, path)
        fsync_directory(str(path.parent))
    except _SQLITE_ERRORS as exc:
        raise _queue_error(exc, path) from None
    except OSError as exc:
        raise QueueError(f"cannot create the queue {path}: {exc.strerror}") from None
    finally:
        for suffix in ("", "-wal", "-shm", ".migrate.lock"):
            with contextlib.suppress(OSError):
                Path(f"{temporary}{suffix}").unlink()


# What an SQLite call raises: its errors, and UnicodeDecodeError when the message of one quotes damaged bytes of
# the file (a schema whose text is not UTF-8); the rows' own text goes through schema.decode_text.
_SQLITE_ERRORS = (sqlite3.Error, UnicodeDecodeError)


def _queue_error(exc: sqlite3.Error | UnicodeDecodeError, path: Path) -> QueueError:
    name = getattr(exc, "sqlite_errorname", "")
    if isinstance(exc, UnicodeDecodeError):
        exc = sqlite3.DatabaseError("database disk image is malformed (text that is not UTF-8)")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "malformed" in str(exc):
        return QueueError(
            f"the queue {path} is corrupt or not a bitscli queue ({exc}); it was left untouched",
            hint="bitscli queue recover keeps every job it can still read (stop the daemon first)",
        )
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return QueueError(
            f"the queue {path} stayed locked by another process; nothing was changed",
            hint="retry; if it persists, look for a hung bitscli process",
        )
    if name == "SQLITE_FULL":
        return QueueError(f"the disk holding {path} is full; nothing was changed", hint="free some space and retry")
    if name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN") or name.startswith("SQLITE_PERM"):
        return QueueError(f"cannot write the queue {path} ({exc})", hint="check the permissions of the queue directory")
    return QueueError(f"queue error on {path}: {exc}")


class Queue:
    """One connection to the queue; every read-modify-write goes through ``write()``."""

    def __init__(self, conn: sqlite3.Connection, path: Path, busy_timeout: float, durable: bool = True) -> None:
        self._conn = conn
        conn.text_factory = decode_text
        self.path = path
        self._busy_ms = int(busy_timeout * 1000)
        self._durable = durable
        self._writes = 0  # write transactions run on this connection (see stamp)

    def close(self) -> None:
        self._conn.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits: the daemon's cheap wake-up signal."""
        try:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except _SQLITE_ERRORS as exc:
            raise _queue_error(exc, self.path) from None

    @property
    def writes(self) -> int:
        """Write transactions run on this connection so far."""
        return self._writes

    def stamp(self) -> tuple[int, int]:
        """Differs from an earlier stamp whenever the queue may have changed since: another connection
        committed (data_version does not see this connection's own commits), or this one wrote."""
        return self.data_version(), self._writes

    def _prepare(self) -> None:
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            version, app_id = self._pragmas()
            self._check_identity(version, app_id)
            if version < SCHEMA_VERSION:
                self._migrate()
            # FULL: an acknowledged command survives power loss, not only a crash (design.md). The daemon's
            # progress writes use NORMAL (still crash-safe in WAL): losing one to a power cut only means
            # fetching again bytes that were already fsynced to the part file.
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except _SQLITE_ERRORS as exc:
            raise _queue_error(exc, self.path) from None

    def _check_identity(self, version: int, app_id: int) -> None:
        """Refuse files that are not our queue, or are newer than this code, before writing anything."""
        # Our queue always carries our application id next to its schema version.
        if app_id != APPLICATION_ID and (app_id != 0 or version != 0):
            raise QueueError(
                f"{self.path} is an SQLite database, but not a bitscli queue; it was left untouched",
                hint="point BITSCLI_HOME at another directory, or move the file aside",
            )
        if version > SCHEMA_VERSION:
            raise QueueError(
                f"the queue {self.path} was written by a newer bitscli (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); it was left untouched",
                hint="upgrade bitscli (pip install -U bitscli)",
            )

    def _pragmas(self) -> tuple[int, int]:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        return version, app_id

    def _has_tables(self) -> bool:
        return self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0

    def _migrate(self) -> None:
        from filelock import FileLock  # deferred: only a new or old queue needs it

        lock_path = self.path.with_name(self.path.name + ".migrate.lock")
        with FileLock(lock_path, mode=0o600):
            # Every bitscli that migrates holds this lock, so these reads stay true until we commit.
            version, app_id = self._pragmas()
            self._check_identity(version, app_id)
            if version >= SCHEMA_VERSION:
                return  # another process migrated while we waited
            if version == 0 and self._has_tables():
                raise QueueError(
                    f"{self.path} is an SQLite database, but not a bitscli queue; it was left untouched",
                    hint="point BITSCLI_HOME at another directory, or move the file aside",
                )
            # WAL lets the daemon read while a CLI writes; the mode persists in the file.
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        _apply(self._conn, statement)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A read-modify-write transaction: BEGIN IMMEDIATE, committed only if the block succeeds."""
        try:
            with self._transaction("BEGIN IMMEDIATE") as tx:
                yield tx
        finally:
            self._writes += 1

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A consistent snapshot for several reads."""
        with self._transaction("BEGIN") as tx:
            yield tx

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        try:
            self._conn.execute(begin)
        except _SQLITE_ERRORS as exc:
            raise _queue_error(exc, self.path) from None
        try:
            yield Transaction(self._conn)
            self._conn.execute("COMMIT")
        except _SQLITE_ERRORS as exc:
            self._rollback()
            raise _queue_error(exc, self.path) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


def _apply(conn: sqlite3.Connection, statement: str) -> None:
    """One migration statement; a column or table that is already there is skipped. Queues made by the commits
    that added migrations 9 to 11 had them all but were stamped schema 8 (SCHEMA_VERSION was not raised)."""
    try:
        # Runs of whitespace made one space: the schema's text is stored on page 1, and it must fit there for
        # `queue recover` to stand a new queue's page 1 in for a damaged one (salvage.py).
        conn.execute(" ".join(statement.split()))
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if not (message.startswith("duplicate column name") or message.endswith("already exists")):
            raise
