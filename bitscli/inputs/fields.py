"""Job fields as users type them: GUIDs, names, enums, numbers, flags and command lines, checked against BITS."""

from __future__ import annotations

import os
import re
import shlex
import uuid
from typing import TypeVar

from bitscli.errors import HResult, InvalidValue
from bitscli.model import (
    ACL_LETTERS,
    MIN_RETRY_DELAY_FLOOR,
    AuthScheme,
    AuthTarget,
    JobPriority,
    JobState,
    NotifyFlags,
    ProxyUsage,
    SecurityFlags,
)

# String limits from bits.md §1c, §2.4 and §7.
MAX_DISPLAY_NAME = 256
MAX_DESCRIPTION = 1024
MAX_NOTIFY_PROGRAM = 260
MAX_NOTIFY_PARAMETERS = 4000
MAX_DWORD = 0xFFFF_FFFF

NULL_WORDS = {"NULL", ""}  # BitsAdmin's spelling of "no value"
_GUID_BODY = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_RE = re.compile(rf"^(?:\{{{_GUID_BODY}\}}|{_GUID_BODY})$")  # both braces, or neither
_NUMBER_RE = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]+)$")  # ASCII digits only: no ٣, no １, no 1_000, no +5
# Unicode format characters (bidirectional overrides such as U+202E, zero-width joiners): they reorder or hide
# what a terminal shows, so names and texts that carry them could forge output.
_FORMAT_RE = re.compile(r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")
TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 §5.6.2 token
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_E = TypeVar("_E", JobPriority, JobState, ProxyUsage, AuthTarget, AuthScheme)


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


def check_text(value: str, what: str, limit: int, allow_newlines: bool = False) -> str:
    if len(value) > limit:
        raise InvalidValue(
            f"{what} is {len(value)} characters long; the limit is {limit}", code=HResult.BG_E_STRING_TOO_LONG
        )
    bad = CONTROL_RE.findall(value)
    if bad and not (allow_newlines and set(bad) <= {"\n"}):
        raise InvalidValue(f"{what} contains control characters", hint="use printable text only")
    if _FORMAT_RE.search(value):
        raise InvalidValue(
            f"{what} contains invisible formatting characters (such as a right-to-left override)",
            hint="use printable text only",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, passed through from argv as surrogates
        raise InvalidValue(f"{what} is not valid UTF-8", hint="bitscli keeps names and texts as UTF-8") from None
    return value


def check_display_name(name: str) -> str:
    if not name.strip():
        raise InvalidValue("a job's display name cannot be empty")
    check_text(name, "the display name", MAX_DISPLAY_NAME)
    if name.startswith("{") and name.endswith("}"):
        raise InvalidValue(
            f"display name {name!r} would be taken for a GUID",
            hint="choose a name without surrounding braces",
        )
    return name


def check_description(text: str) -> str:
    return check_text(text, "the description", MAX_DESCRIPTION, allow_newlines=True)


def parse_enum(kind: type[_E], value: str, what: str, code: int = HResult.E_INVALIDARG) -> _E:
    try:
        return kind[value.strip().upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(m.name for m in kind)
        raise InvalidValue(f"unknown {what} {value!r}", hint=f"use one of: {choices}", code=code) from None


def parse_priority(value: str) -> JobPriority:
    return parse_enum(JobPriority, value, "priority")


def parse_state(value: str) -> JobState:
    """A state by name; BITS's documentation spells the last one both CANCELLED and Canceled (bits.md §1b)."""
    word = value.strip().upper()
    return parse_enum(JobState, "CANCELLED" if word == "CANCELED" else word, "state")


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
    if text.startswith("-") and _NUMBER_RE.match(text[1:]):
        raise InvalidValue(f"{what} must be between 0 and {maximum}, not {text}")
    if not _NUMBER_RE.match(text):
        raise InvalidValue(f"{what} must be a whole number in ASCII digits, not {value!r}")
    number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
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


# --- notification -------------------------------------------------------------------------------


def parse_notify_command(program: str, parameters: str | None) -> tuple[str | None, str | None]:
    """Check a notification command line (bits.md §6); ``NULL NULL`` clears it."""
    prog = None if program.strip() in NULL_WORDS else program
    params = None if parameters is None or parameters.strip() in NULL_WORDS else parameters
    if prog is None:
        if params is not None:
            raise InvalidValue("a notification command line with parameters needs a program")
        return None, None
    check_text(prog, "the notification program", MAX_NOTIFY_PROGRAM)
    if not os.path.isabs(prog):
        raise InvalidValue(
            f"the notification program {prog!r} must be a full path",
            hint="BITS never searches PATH; for example /usr/bin/env or /usr/local/bin/handler",
        )
    if params is not None:
        check_text(params, "the notification parameters", MAX_NOTIFY_PARAMETERS)
        try:
            shlex.split(params)
        except ValueError as exc:
            raise InvalidValue(f"the notification parameters cannot be split: {exc}") from None
        # The parameters are the whole command line and token 0 becomes argv[0], whatever it names: BITS passes
        # them to CreateProcess as lpCommandLine, and does not require token 0 to be the program.
    return prog, params


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)(?:/s)?\s*$", re.IGNORECASE)
_RATE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
MAX_RATE = 1 << 40  # a terabyte a second: anything above is a typo


def parse_rate(value: str) -> int:
    """Bytes a second: ``20MB`` (powers of 1000), ``512KiB`` and curl's and rclone's bare ``1.5M`` (powers of
    1024), or a plain number; ``0`` or ``none`` for no cap."""
    if value.strip().lower() in ("0", "none", "off", "null", "unlimited"):
        return 0
    match = _RATE_RE.match(value)
    if not match:
        raise InvalidValue(
            f"bad rate {value!r}", hint="a number of bytes a second, or with a unit: 20MB, 512KiB, 1.5M; 0 for none"
        )
    number, prefix, binary, byte = match.groups()
    base = 1000 if prefix and byte and not binary else 1024  # KB, MB: SI; KiB, K, M: binary, as curl and rclone
    rate = float(number) * base ** _RATE_POWERS[prefix.lower()]
    if not 1 <= rate <= MAX_RATE:
        raise InvalidValue(f"rate {value!r} is out of range", hint="from 1 byte a second; 0 for no cap")
    return int(rate)


def format_rate(rate: int) -> str:
    """``2.5 MiB/s``; ``NONE`` for no cap."""
    if not rate:
        return "NONE"
    value, unit = float(rate), "B/s"
    for next_unit in ("KiB/s", "MiB/s", "GiB/s"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{value:.4g} {unit}"


HASH_HEX_LENGTHS = {"sha256": 64, "sha512": 128, "sha1": 40, "md5": 32}


def hash_options(sha256: str | None, algo_hex: str | None) -> str | None:
    """``--sha256 HEX`` or ``--hash ALGO:HEX`` (not both) as one expected hash, checked by parse_expected_hash."""
    if sha256 is not None and algo_hex is not None:
        raise InvalidValue("give --sha256 or --hash, not both")
    return f"sha256:{sha256}" if sha256 is not None else algo_hex


def parse_expected_hash(text: str) -> str:
    """``ALGO:HEX`` (or bare HEX of a SHA-256) -> ``algo:hex`` in lower case; a clear error otherwise."""
    algorithm, sep, digest = text.strip().partition(":")
    if not sep:
        algorithm, digest = "sha256", algorithm
    algorithm, digest = algorithm.lower().replace("-", ""), digest.lower()
    if algorithm not in HASH_HEX_LENGTHS:
        raise InvalidValue(f"unknown hash algorithm {algorithm!r}", hint=f"use one of: {', '.join(HASH_HEX_LENGTHS)}")
    if len(digest) != HASH_HEX_LENGTHS[algorithm] or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValue(
            f"{text.strip()!r} is not a {algorithm} hash", hint=f"give {HASH_HEX_LENGTHS[algorithm]} hexadecimal digits"
        )
    return f"{algorithm}:{digest}"
