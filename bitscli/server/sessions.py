"""Upload sessions on disk: they survive a server restart; the data file's length is the received offset."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bitscli.server.namespace import DATA_SUFFIX, RESERVED_PREFIX

SESSIONS_DIR = f"{RESERVED_PREFIX}-sessions"

OPEN = "open"  # taking fragments
RECEIVED = "received"  # every byte is here; the application has not answered yet
COMMITTED = "committed"  # stored (or handed to the application); only the reply and cleanup remain


@dataclass(frozen=True)
class Session:
    id: str
    target: str  # absolute path of the final name
    url_path: str
    user: str
    created: float
    progress_at: float  # the session timeout counts from here (BITSSessionTimeout)
    total: int | None = None  # fixed by the first fragment; every later fragment must agree
    state: str = OPEN
    content_name: str | None = None
    reply_url: str | None = None  # for the last fragment's Ack (upload-reply)
    reply_file: str | None = None  # a reply we stored, deleted with the session

    @property
    def data(self) -> str:
        """The hidden file beside the target that collects the bytes (same filesystem: atomic rename)."""
        directory, base = os.path.split(self.target)
        # Cut by bytes, not characters: 120 two-byte characters are 240 bytes, and the name would not fit.
        short = os.fsdecode(os.fsencode(base)[:120])
        return os.path.join(directory, f".{short}.{self.id.strip('{}')}{DATA_SUFFIX}")


class SessionStore:
    """One JSON file a session under ``ROOT/.bitscli-sessions``, replaced atomically on every change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = root / SESSIONS_DIR
        self.directory.mkdir(mode=0o700, exist_ok=True)
        # Read once at start and kept in memory: a Create-Session that scanned every record cost 55 ms at 2,050.
        self._sessions: dict[str, Session] = {}
        self._open_by_user: Counter[str] = Counter()
        self._pending: set[str] = set()  # counted, but their files are still being made
        for path in self.directory.glob("*.json"):
            session = _read(path)
            if session is not None and session.id == path.stem:
                self._remember(session)

    def create(self, target: Path, url_path: str, user: str, now: float, content_name: str | None) -> Session:
        session = self.new(target, url_path, user, now, content_name)
        try:
            self.write_new(session)
        except OSError:
            self.forget(session)
            raise
        return session

    def new(self, target: Path, url_path: str, user: str, now: float, content_name: str | None) -> Session:
        """A new session, counted at once; its files are made by ``write_new`` (which may run on a thread)."""
        session = Session(
            id="{" + str(uuid.uuid4()) + "}", target=str(target), url_path=url_path, user=user, created=now,
            progress_at=now, content_name=content_name,
        )  # fmt: skip
        self._remember(session)
        self._pending.add(session.id)
        return session

    def write_new(self, session: Session) -> None:
        """Make a new session's data file and record (files only: safe on a worker thread)."""
        try:
            fd = os.open(session.data, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides the mode
            os.close(fd)
            try:
                self._write(session)
            except OSError:  # no record, no session: its empty data file must not be left behind
                with contextlib.suppress(OSError):
                    os.unlink(session.data)
                raise
        finally:
            self._pending.discard(session.id)

    def get(self, session_id: str) -> Session | None:
        """The session from memory; its record is looked at too (one stat), because another server on the
        same root may have made or deleted it."""
        if not session_id or "/" in session_id or session_id.startswith("."):
            return None
        path = self.directory / f"{session_id}.json"
        session = self._sessions.get(session_id)
        if session is not None and path.exists():
            return session
        if session is not None:
            self._forget(session_id)
        session = _read(path)
        if session is None or session.id != session_id:
            return None
        self._remember(session)
        return session

    def save(self, session: Session) -> Session:
        self._write(session)
        self._remember(session)
        return session

    def _write(self, session: Session) -> None:
        path = self.directory / f"{session.id}.json"
        temporary = path.with_name(path.name + ".tmp")
        try:
            with open(temporary, "w", encoding="utf-8", opener=_private) as out:
                json.dump(dataclasses.asdict(session), out)
        except OSError:  # a full disk: the record stays as it was, and no half-written copy is left
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        os.replace(temporary, path)

    def update(self, session: Session, **changes: object) -> Session:
        return self.save(dataclasses.replace(session, **changes))  # type: ignore[arg-type]

    def received(self, session: Session) -> int:
        """The contiguous prefix stored so far: everything written is in order, so it is the file's length."""
        try:
            return os.stat(session.data).st_size
        except FileNotFoundError:
            return 0

    def delete(self, session: Session) -> None:
        """Forget the session and free its files; a committed upload stays at its destination."""
        self.forget(session)
        self.delete_files(session)

    def forget(self, session: Session) -> None:
        self._forget(session.id)

    def delete_files(self, session: Session) -> None:
        """A session's data, reply and record (files only: safe on a worker thread)."""
        for path in (session.data, session.reply_file):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / f"{session.id}.json")

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    def open_for(self, user: str) -> int:
        return self._open_by_user[user]

    def _remember(self, session: Session) -> None:
        self._forget(session.id)
        self._sessions[session.id] = session
        if session.state != COMMITTED:
            self._open_by_user[session.user] += 1

    def _forget(self, session_id: str) -> None:
        old = self._sessions.pop(session_id, None)
        if old is not None and old.state != COMMITTED:
            self._open_by_user[old.user] -= 1
            if not self._open_by_user[old.user]:
                del self._open_by_user[old.user]

    def oldest_empty(self) -> Session | None:
        """The oldest open session that has received no byte (sessions are kept in the order they were made)."""
        for session in self._sessions.values():
            if session.id in self._pending:
                continue
            if session.state == OPEN and session.progress_at == session.created and self.received(session) == 0:
                return session
        return None

    def expired(self, session: Session, now: float, timeout: float, empty_timeout: float) -> bool:
        """No progress for ``timeout`` (BITSSessionTimeout), or no byte at all ``empty_timeout`` after it was
        made: a scanner's empty sessions must not count against an address (or the server) for 14 days."""
        if now - session.progress_at >= timeout:
            return True
        return session.state == OPEN and now - session.progress_at >= empty_timeout and self.received(session) == 0

    def cleanup(self, now: float, timeout: float, empty_timeout: float, strays: bool = True) -> list[str]:
        """Delete the expired sessions (the IIS cleanup task), and ``strays``: half-written records; returns the
        expired sessions' ids."""
        expired = [s for s in self.all() if s.id not in self._pending and self.expired(s, now, timeout, empty_timeout)]
        for session in expired:
            self.delete(session)
        if strays:
            for stray in self.directory.glob("*.tmp"):  # a crash between write and rename
                with contextlib.suppress(FileNotFoundError):
                    stray.unlink()
        return [s.id for s in expired]

    def reply_path(self, session: Session) -> Path:
        return self.directory / f"{session.id}.reply"


def _read(path: Path) -> Session | None:
    try:
        return Session(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
