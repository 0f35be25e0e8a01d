"""Where bitscli keeps its queue, config, logs and locks: platformdirs, or BITSCLI_HOME for all of them."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "bitscli"


def home_override() -> Path | None:
    """BITSCLI_HOME puts every file in one directory (tests, portable installs)."""
    home = os.environ.get("BITSCLI_HOME")
    return Path(home).expanduser().absolute() if home else None


def state_dir() -> Path:
    home = home_override()
    if home is not None:
        return home
    import platformdirs  # deferred: only needed when BITSCLI_HOME is unset

    return Path(platformdirs.user_state_dir(APP_NAME))


def config_file() -> Path:
    home = home_override()
    if home is not None:
        return home / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def queue_path() -> Path:
    return state_dir() / "queue.db"


def ensure_private_dir(path: Path) -> Path:
    """Create the directory (and parents) as 0700; an existing directory keeps its mode."""
    if not path.is_dir():
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:  # a regular file on the way (NotADirectoryError), no permission, a full disk
            from bitscli.errors import QueueError

            raise QueueError(
                f"cannot create the directory {path}: {exc.strerror}",
                hint="BITSCLI_HOME (or the state directory) must be a directory bitscli can create and write",
            ) from None
    return path
