"""URL paths to files under the root: nothing outside it is ever read or written (no `..`, no escaping links)."""

from __future__ import annotations

import os
from pathlib import Path

RESERVED_PREFIX = ".bitscli"  # the server's own files (sessions, replies, upload data) start with this
REPLY_PREFIX = "/.bitscli-replies/"
DATA_SUFFIX = f"{RESERVED_PREFIX}-upload"  # the hidden file an upload's bytes collect in (sessions.py)
NAME_MAX = 255  # bytes in one file name on Linux's filesystems: a longer name cannot be stored


class TooLong(Exception):
    """A name that no file can have here: a client error, not the server's (400, E_INVALIDARG)."""


class Refused(Exception):
    """A path that names nothing we may serve or write; the message says why (for the log, not the client)."""


def components(url_path: str) -> list[str]:
    """The path's names, refusing traversal in every spelling the decoded path can still carry."""
    if "\x00" in url_path or "\\" in url_path:
        raise Refused("NUL or backslash in the path")
    names = [name for name in url_path.split("/") if name]
    for name in names:
        if name in (".", ".."):
            raise Refused("dot segment in the path")
        if name.startswith(RESERVED_PREFIX) or name.endswith(DATA_SUFFIX):
            # The server's own files, on every method: an upload's hidden data file once served its partial bytes.
            raise Refused("a reserved name")
        if name.lower().startswith("%2e") or "%2f" in name.lower() or "%5c" in name.lower():
            raise Refused("an encoded dot or separator (double encoding)")
    return names


def _inside(root: Path, real: str) -> bool:
    root_real = os.path.realpath(root)
    return real == root_real or real.startswith(root_real + os.sep)


def readable_file(root: Path, url_path: str) -> Path:
    """The regular file a GET or HEAD names; symlinks are followed only while they stay inside the root."""
    names = components(url_path)
    if not names:
        raise Refused("the root itself is not a file")
    candidate = os.path.join(root, *names)
    real = os.path.realpath(candidate)
    if not _inside(root, real):
        raise Refused("the path leaves the root")
    if not os.path.isfile(real):
        raise FileNotFoundError(candidate)
    return Path(real)


def upload_target(root: Path, url_path: str) -> tuple[Path, str]:
    """Where an upload would land, and its URL path; the directory must exist inside the root.

    The final name must not be a symlink (a link could point anywhere), and its directory must resolve
    inside the root (a link to another directory would carry the upload out).
    """
    names = components(url_path)
    if not names:
        raise Refused("an upload needs a file name")
    if any(len(os.fsencode(name)) > NAME_MAX for name in names):
        raise TooLong(f"a name longer than {NAME_MAX} bytes")
    directory = os.path.join(root, *names[:-1])
    real_directory = os.path.realpath(directory)
    if not _inside(root, real_directory):
        raise Refused("the upload's directory leaves the root")
    if not os.path.isdir(real_directory):
        raise FileNotFoundError(directory)
    target = Path(real_directory) / names[-1]
    if target.is_symlink() or target.is_dir():
        raise Refused("the target is a symlink or a directory")
    return target, "/" + "/".join(names)
