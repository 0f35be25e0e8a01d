"""Basic authentication from a file of salted scrypt hashes; a password is never stored or logged in clear."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from bitscli.errors import ConfigError

log = logging.getLogger("bitscli.serve")

# scrypt cost: about 50 ms a check, so guessing is slow; verified headers are cached, fragments stay fast.
_N, _R, _P = 1 << 14, 8, 1
_CACHE_LIMIT = 256
CHECK_THREADS = 2  # scrypt checks at once; the rest wait their turn off the event loop
FREE_FAILURES = 5  # failed logins from one address before its failures are slowed down
MAX_DELAY = 8.0  # seconds, doubling from 0.25
FAILURE_MEMORY = 900.0  # a quarter of an hour without a failure forgets the address's count


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def read_password_file(path: Path) -> dict[str, str]:
    """``user:scrypt$...`` lines; a line holding anything else (a plaintext password) is refused."""
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, encoded = line.strip().partition(":")
        if not sep or not user or not encoded.startswith("scrypt$") or encoded.count("$") != 5:
            raise ConfigError(
                f"{path}, line {number}: not a 'user:scrypt$...' entry",
                hint="add users with: bitscli serve-passwd FILE USER (the password is read from stdin)",
            )
        users[user] = encoded
    return users


def set_user(path: Path, user: str, password: str) -> None:
    """Add or replace one user's entry; the file is rewritten atomically and kept private (0600)."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise ConfigError(f"user name {user!r} cannot be empty or hold ':' or spaces")
    users = read_password_file(path) if path.exists() else {}
    users[user] = hash_password(password)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{name}:{encoded}\n" for name, encoded in users.items())
    os.replace(temporary, path)


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against the password file.

    The scrypt check runs on a small pool of threads (on the event loop, four guessers at 56 a second held up
    every other request by 0.8 s), costs the same for an unknown user (a dummy hash, so names cannot be found by
    timing), and an address that keeps failing gets its failures answered ever more slowly.
    """

    def __init__(self, users: dict[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self.clock = clock
        self._verified: dict[bytes, str] = {}  # keyed by a hash of the header, never the header itself
        import anyio  # the server extra's; serve-passwd needs only the functions above

        self._dummy = hash_password(os.urandom(16).hex())
        self._pool = anyio.CapacityLimiter(CHECK_THREADS)
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (failures in a row, when the last was)

    async def user(self, authorization: str | None, address: str) -> str | None:
        """The authenticated user name, or None (after the address's slow-down, if it keeps failing)."""
        if not authorization or authorization[:6].lower() != "basic ":
            return None  # no login offered: the challenge, not a failure
        key = hashlib.sha256(authorization.encode("latin-1", "replace")).digest()
        if key in self._verified:
            return self._verified[key]
        try:
            user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        import anyio.to_thread

        encoded = self.users.get(user)
        matched = await anyio.to_thread.run_sync(check_password, password, encoded or self._dummy, limiter=self._pool)
        if encoded is None or not matched:
            await self._failed(address)
            return None
        self._failures.pop(address, None)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[key] = user
        return user

    async def _failed(self, address: str) -> None:
        now = self.clock()
        count, last = self._failures.get(address, (0, now))
        count = 1 if now - last > FAILURE_MEMORY else count + 1
        if len(self._failures) >= 10_000:  # bounded, whoever sends the failures
            self._failures.clear()
        self._failures[address] = (count, now)
        if count > FREE_FAILURES:
            delay = min(MAX_DELAY, 0.25 * 2 ** (count - FREE_FAILURES - 1))
            log.warning("%d failed logins in a row from %s: its failures are answered after %.2g s", count, address,
                        delay)  # fmt: skip
            await asyncio.sleep(delay)
