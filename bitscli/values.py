"""Parse and check user-supplied values against BITS rules and limits; pure apart from path checks."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import uuid
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from bitscli.errors import HResult, InvalidValue, LimitExceeded
from bitscli.model import (
    ACL_LETTERS,
    LENGTH_TO_EOF,
    MIN_RETRY_DELAY_FLOOR,
    AuthScheme,
    AuthTarget,
    ByteRange,
    JobPriority,
    NotifyFlags,
    ProxyUsage,
    SecurityFlags,
)

# String limits from bits.md §1c, §2.4 and §7.
MAX_DISPLAY_NAME = 256
MAX_DESCRIPTION = 1024
MAX_REMOTE_NAME = 2200  # BITS caps remote names at 2,200 characters
MAX_LOCAL_NAME = 4095  # PATH_MAX on Linux stands in for Windows' MAX_PATH
MAX_NOTIFY_PROGRAM = 260
MAX_NOTIFY_PARAMETERS = 4000
MAX_DWORD = 0xFFFF_FFFF

NULL_WORDS = {"NULL", ""}  # BitsAdmin's spelling of "no value"
_GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$")
TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 §5.6.2 token
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
SPACE_RE = re.compile(r"\s")  # what str.isspace() finds, in one scan (a 1,000-file job checks 1,000 URLs)
_E = TypeVar("_E", JobPriority, ProxyUsage, AuthTarget, AuthScheme)


def new_guid() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


def parse_guid(ref: str) -> str | None:
    """The canonical ``{GUID}`` when ref is a GUID (braces optional, any case); None for a name."""
    if _GUID_RE.match(ref):
        return "{" + ref.strip("{}").upper() + "}"
    if ref.startswith("{") and ref.endswith("}"):
        raise InvalidValue(
            f"malformed GUID: {ref}",
            hint="a job GUID looks like {01234567-89AB-CDEF-0123-456789ABCDEF}; or name the job by its display name",
        )
    return None


def _check_text(value: str, what: str, limit: int, allow_newlines: bool = False) -> str:
    if len(value) > limit:
        raise InvalidValue(
            f"{what} is {len(value)} characters long; the limit is {limit}", code=HResult.BG_E_STRING_TOO_LONG
        )
    bad = CONTROL_RE.findall(value)
    if bad and not (allow_newlines and set(bad) <= {"\n"}):
        raise InvalidValue(f"{what} contains control characters", hint="use printable text only")
    return value


def check_display_name(name: str) -> str:
    if not name.strip():
        raise InvalidValue("a job's display name cannot be empty")
    _check_text(name, "the display name", MAX_DISPLAY_NAME)
    if name.startswith("{") and name.endswith("}"):
        raise InvalidValue(
            f"display name {name!r} would be taken for a GUID",
            hint="choose a name without surrounding braces",
        )
    return name


def check_description(text: str) -> str:
    return _check_text(text, "the description", MAX_DESCRIPTION, allow_newlines=True)


def parse_enum(kind: type[_E], value: str, what: str, code: int = HResult.E_INVALIDARG) -> _E:
    try:
        return kind[value.strip().upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(m.name for m in kind)
        raise InvalidValue(f"unknown {what} {value!r}", hint=f"use one of: {choices}", code=code) from None


def parse_priority(value: str) -> JobPriority:
    return parse_enum(JobPriority, value, "priority")


def parse_bool(value: str, what: str) -> bool:
    word = value.strip().upper()
    if word in ("TRUE", "YES", "ON", "1"):
        return True
    if word in ("FALSE", "NO", "OFF", "0"):
        return False
    raise InvalidValue(f"{what} must be TRUE or FALSE, not {value!r}")


def parse_uint(value: str, what: str, maximum: int = MAX_DWORD) -> int:
    """A decimal (or 0x-prefixed hexadecimal) integer in 0..maximum."""
    text = value.strip()
    try:
        number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise InvalidValue(f"{what} must be a whole number, not {value!r}") from None
    if not 0 <= number <= maximum:
        raise InvalidValue(f"{what} must be between 0 and {maximum}, not {number}")
    return number


def parse_retry_delay(value: str) -> int:
    # bits.md §2.4: "Values under 5 s are raised to 5."
    return max(parse_uint(value, "the minimum retry delay"), MIN_RETRY_DELAY_FLOOR)


def parse_notify_flags(value: str) -> int:
    flags = parse_uint(value, "the notify flags")
    known = sum(NotifyFlags)
    if flags & ~known:
        raise InvalidValue(
            f"notify flags 0x{flags:x} contain unknown bits",
            hint="combine 1 (transferred), 2 (error), 4 (disable), 8 (modification), 16 (file), 32 (ranges)",
            code=HResult.E_NOTIMPL,
        )
    return flags


def parse_security_flags(value: str) -> int:
    flags = parse_uint(value, "the security flags", 0xFFFF)
    known = sum(SecurityFlags)
    if flags & ~known:
        raise InvalidValue(f"security flags 0x{flags:x} contain unknown bits", hint="see README: security flags")
    both = SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT | SecurityFlags.REDIRECT_POLICY_DISALLOW
    if flags & both == both:
        raise InvalidValue("the redirect policy can be ALLOW_REPORT (0x100) or DISALLOW (0x200), not both")
    return flags


def parse_acl_flags(value: str) -> int:
    """Letters from O, G, D, S (BitsAdmin) or the number 0..15."""
    text = value.strip().upper()
    if text.isdigit():
        return parse_uint(text, "the ACL flags", 15)
    if text in NULL_WORDS:
        return 0
    unknown = set(text) - set(ACL_LETTERS)
    if unknown:
        raise InvalidValue(f"unknown ACL flag letter(s) {''.join(sorted(unknown))!r}", hint="use letters from OGDS")
    return sum(ACL_LETTERS[c] for c in set(text))


def format_acl_flags(flags: int) -> str:
    return "".join(letter for letter, bit in ACL_LETTERS.items() if flags & bit)


def parse_http_method(value: str) -> str:
    if not TOKEN_RE.match(value) or len(value) > 32:
        raise InvalidValue(f"{value!r} is not a valid HTTP method", hint="for example GET or POST")
    return value


# --- remote and local names --------------------------------------------------------------------


def check_remote_name(remote: str, *, upload: bool) -> str:
    """An http(s) URL, a file:// URL or a bare absolute local path (download jobs only)."""
    _check_text(remote, "the remote name", MAX_REMOTE_NAME)
    if remote.startswith("/"):  # a local path: spaces are fine here, unlike in a URL
        if upload:
            raise InvalidValue("an upload needs an http:// or https:// URL as its remote name")
        return os.path.normpath(remote)
    if SPACE_RE.search(remote):
        raise InvalidValue(f"remote name {remote!r} contains spaces", hint="percent-encode them as %20")
    parts = urlsplit(remote)
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidValue(
            f"{remote!r} is not a URL",
            hint="use http://, https:// or file:// URLs, or an absolute local path",
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
    _check_text(local, "the local name", MAX_LOCAL_NAME)
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


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced, for output and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
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


def parse_fileset(lines: Iterable[str]) -> list[tuple[int, str, str]]:
    """``remote local`` per line; ``#`` starts a comment; quotes allow spaces. Returns (line, remote, local)."""
    pairs = []
    for number, line in enumerate(lines, start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InvalidValue(f"line {number}: {exc}", hint="check the quoting on that line") from None
        if not words:
            continue
        if len(words) != 2:
            raise InvalidValue(
                f"line {number}: expected 'REMOTE LOCAL', found {len(words)} field(s)",
                hint="one 'remote local' pair per line; quote names that contain spaces; # starts a comment",
            )
        pairs.append((number, words[0], words[1]))
    return pairs


# --- notification -------------------------------------------------------------------------------


def parse_notify_command(program: str, parameters: str | None) -> tuple[str | None, str | None]:
    """Check a notification command line (bits.md §6); ``NULL NULL`` clears it."""
    prog = None if program.strip() in NULL_WORDS else program
    params = None if parameters is None or parameters.strip() in NULL_WORDS else parameters
    if prog is None:
        if params is not None:
            raise InvalidValue("a notification command line with parameters needs a program")
        return None, None
    _check_text(prog, "the notification program", MAX_NOTIFY_PROGRAM)
    if not os.path.isabs(prog):
        raise InvalidValue(
            f"the notification program {prog!r} must be a full path",
            hint="BITS never searches PATH; for example /usr/bin/env or /usr/local/bin/handler",
        )
    if params is not None:
        _check_text(params, "the notification parameters", MAX_NOTIFY_PARAMETERS)
        try:
            tokens = shlex.split(params)
        except ValueError as exc:
            raise InvalidValue(f"the notification parameters cannot be split: {exc}") from None
        # Token 0 is the program itself (argv[0]); the BITS docs compare it loosely, by base name.
        if not tokens or os.path.basename(tokens[0]) != os.path.basename(prog):
            raise InvalidValue(
                "the first word of the parameters must be the program",
                hint=f'for example: setnotifycmdline JOB {prog} "{os.path.basename(prog)} ARG..."',
            )
    return prog, params
