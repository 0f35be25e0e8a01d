"""File names as users give them: remote URLs and paths, local paths, byte ranges and file-set lists."""

from __future__ import annotations

import codecs
import itertools
import os
import re
import shlex
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from bitscli.errors import HResult, InvalidValue, LimitExceeded
from bitscli.inputs.fields import check_text
from bitscli.model import LENGTH_TO_EOF, ByteRange

MAX_REMOTE_NAME = 2200  # BITS caps remote names at 2,200 characters (bits.md §1c)
MAX_LOCAL_NAME = 4095  # PATH_MAX on Linux stands in for Windows' MAX_PATH
SPACE_RE = re.compile(r"\s")  # what str.isspace() finds, in one scan (every URL of a big job is checked)


def check_remote_name(remote: str, *, upload: bool) -> str:
    """An http(s) URL, a file:// URL or a bare absolute local path (download jobs only)."""
    check_text(remote, "the remote name", MAX_REMOTE_NAME)
    if remote.startswith("/"):  # a local path: spaces are fine here, unlike in a URL
        if upload:
            raise InvalidValue("an upload needs an http:// or https:// URL as its remote name")
        return os.path.normpath(remote)
    if SPACE_RE.search(remote):
        raise InvalidValue(f"remote name {remote!r} contains spaces", hint="percent-encode them as %20")
    try:
        parts = urlsplit(remote)
        parts.port  # noqa: B018 - a malformed port or IPv6 literal raises here
    except ValueError as exc:
        raise InvalidValue(f"malformed URL {redact_url(remote)}: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidValue(
            f"{remote!r} is not a URL",
            hint="use http://, https:// or file:// URLs, or an absolute local path",
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidValue(
            f"the remote name {redact_url(remote)} carries a user name or password, which would show in listings",
            hint="give the URL without them, and the login with: bitscli setcredentials JOB SERVER BASIC USER "
            "--password-file -",
        )
    if scheme not in ("http", "https", "file"):
        raise InvalidValue(
            f"unsupported URL scheme {parts.scheme!r} in {redact_url(remote)}",
            hint="bitscli transfers http://, https:// and file:// URLs",
        )
    if scheme == "file":
        if upload:
            raise InvalidValue("an upload needs an http:// or https:// URL as its remote name")
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidValue(
                f"{remote!r} is not a local file URL",
                hint="write file:///absolute/path (remote hosts need http)",
            )
        return remote
    try:
        port_ok = parts.hostname is not None and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:
        port_ok = False
    if not port_ok:
        raise InvalidValue(f"malformed URL {redact_url(remote)}: it needs a host and a valid port")
    return remote


def check_local_name(local: str, *, upload: bool, writable_dirs: set[str] | None = None) -> str:
    """An absolute path: an existing readable file for uploads, a writable place for downloads.

    ``writable_dirs`` holds the directories this command already found writable; the ones found here join it,
    so the many files of one directory cost one check of it.
    """
    check_text(local, "the local name", MAX_LOCAL_NAME)
    if not os.path.isabs(local):
        raise InvalidValue(
            f"local name {local!r} is not an absolute path",
            hint=f"BITS needs absolute paths, for example {os.path.join(os.getcwd(), local)}",
        )
    if local.endswith(os.sep):
        raise InvalidValue(f"local name {local!r} names a directory", hint="give the file's full path")
    path = os.path.normpath(local)
    if upload:
        if not os.path.isfile(path):
            raise InvalidValue(f"the file to upload does not exist: {path}")
        if not os.access(path, os.R_OK):
            raise InvalidValue(f"the file to upload is not readable: {path}", code=HResult.E_ACCESSDENIED)
        return path
    parent = os.path.dirname(path)
    known = writable_dirs is not None and parent in writable_dirs
    if not known and not os.path.isdir(parent):
        raise InvalidValue(
            f"the directory {parent} does not exist", hint=f"create it first: mkdir -p {shlex.quote(parent)}"
        )
    if os.path.isdir(path):
        raise InvalidValue(f"local name {path} is an existing directory", hint="name the file inside it")
    if not known and not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidValue(f"the directory {parent} is not writable", code=HResult.E_ACCESSDENIED)
    if writable_dirs is not None:
        writable_dirs.add(parent)
    return path


_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def redact_text(text: str) -> str:
    """Any ``scheme://user:password@`` in free text (an error message, a log line) with the user part hidden."""
    return _USERINFO_RE.sub(r"\1***@", text) if "@" in text else text


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced, for output and logs. Never raises: a name that does not
    parse (a typo, a damaged row: an unclosed ``[`` once made `list --json` an internal error) goes through
    redact_text instead."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        port = parts.port
    except ValueError:
        return redact_text(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_ranges(text: str, max_ranges: int) -> tuple[ByteRange, ...]:
    """``offset:length[,offset:length...]`` where length may be ``eof`` (bits.md §1a), in the order given."""
    ranges: list[ByteRange] = []
    for item in text.split(","):
        offset_text, sep, length_text = item.strip().partition(":")
        if not sep or not offset_text.isdigit() or not (length_text.isdigit() or length_text.lower() == "eof"):
            raise InvalidValue(
                f"bad range {item.strip()!r}",
                hint="write ranges as offset:length, comma-separated; the last length may be eof",
                code=HResult.BG_E_INVALID_RANGE,
            )
        length = LENGTH_TO_EOF if length_text.lower() == "eof" else int(length_text)
        if length == 0:
            raise InvalidValue(f"range {item.strip()!r} is empty", code=HResult.BG_E_INVALID_RANGE)
        ranges.append(ByteRange(int(offset_text), length))
    if len(ranges) > max_ranges:
        raise LimitExceeded(
            f"{len(ranges)} ranges for one file; the limit is {max_ranges} (MaxRangesPerFile)",
            code=HResult.BG_E_TOO_MANY_RANGES_IN_FILE,
        )
    # Overlaps are checked in offset order, but the ranges keep the order given: BITS writes them into
    # the local file one after another in that order (AddFileWithRanges remarks).
    for before, after in itertools.pairwise(sorted(ranges, key=lambda r: r.offset)):
        if before.length == LENGTH_TO_EOF or before.offset + before.length > after.offset:
            raise InvalidValue(f"ranges {before} and {after} overlap", code=HResult.BG_E_OVERLAPPING_RANGES)
    return tuple(ranges)


def decode_listfile(raw: bytes, name: str) -> str:
    """A list file's text: UTF-8 with or without a byte-order mark (Notepad, PowerShell 5), or UTF-16 with one
    (PowerShell's `>`); CRLF or LF line ends."""
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidValue(f"{name} is not text in UTF-8 or UTF-16",
                           hint="save it as UTF-8 (with or without BOM) or as UTF-16 with a BOM") from None  # fmt: skip
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_fileset(lines: Iterable[str]) -> list[tuple[int, str, str, str | None]]:
    """``remote local [ALGO:HEX]`` per line; ``#`` starts a comment; quotes allow spaces.

    Returns (line, remote, local, expected hash or None).
    """
    pairs = []
    for number, line in enumerate(lines, start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InvalidValue(f"line {number}: {exc}", hint="check the quoting on that line") from None
        if not words:
            continue
        if len(words) not in (2, 3):
            raise InvalidValue(
                f"line {number}: expected 'REMOTE LOCAL [sha256:HEX]', found {len(words)} field(s)",
                hint="one 'remote local' pair per line, and optionally its hash; quote names that contain spaces; "
                "# starts a comment",
            )
        pairs.append((number, words[0], words[1], words[2] if len(words) == 3 else None))
    return pairs


def check_ca_bundle(path: str) -> str | None:
    """A PEM file of CA certificates, or a directory of them (c_rehash'd, as OpenSSL reads it); NULL: none."""
    if path.strip() in ("NULL", ""):
        return None
    full = _existing_absolute(path, "the CA bundle")
    if os.path.isfile(full):
        try:
            ssl.create_default_context(cafile=full)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidValue(f"{full} holds no CA certificate in PEM form ({exc})") from None
    return full


def check_client_certificate(certificate: str, key: str | None) -> tuple[str | None, str | None]:
    """A PEM client certificate and its key (or both in one file), loaded once to catch a mismatch; NULL: none."""
    if certificate.strip() in ("NULL", ""):
        if key is not None:
            raise InvalidValue("a key needs its certificate")
        return None, None
    cert_path = _existing_absolute(certificate, "the client certificate")
    key_path = _existing_absolute(key, "the client key") if key else None
    try:
        # No password: an encrypted key would make OpenSSL prompt on the daemon's absent terminal.
        ssl.create_default_context().load_cert_chain(cert_path, key_path, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidValue(
            f"cannot use {cert_path} as a client certificate: {exc}",
            hint="give a PEM certificate and its unencrypted PEM key (protect the key file with chmod 600)",
        ) from None
    return cert_path, key_path


def _existing_absolute(path: str, what: str) -> str:
    if not os.path.isabs(path):
        raise InvalidValue(f"{what} must be an absolute path, not {path!r}")
    full = os.path.normpath(path)
    if not os.path.exists(full):
        raise InvalidValue(f"{what} {full} does not exist")
    if not os.access(full, os.R_OK):
        raise InvalidValue(f"{what} {full} is not readable", code=HResult.E_ACCESSDENIED)
    return full
