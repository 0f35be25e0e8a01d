"""The BITS upload protocol [MC-BUP]: packet types, header names, error codes, and their parsing (bits.md §4)."""

from __future__ import annotations

import re
from collections.abc import Mapping

METHOD = "BITS_POST"
PROTOCOL_GUID = "{7df0354d-249b-430f-820d-3d2a9bef4931}"  # "BITS 1.5 Upload Protocol", the only one

# Packet types, in the Create-Session spelling real servers expect; compared case-insensitively.
PING = "Ping"
CREATE_SESSION = "Create-Session"
FRAGMENT = "Fragment"
CLOSE_SESSION = "Close-Session"
CANCEL_SESSION = "Cancel-Session"
ACK = "Ack"
PACKET_TYPES = (PING, CREATE_SESSION, FRAGMENT, CLOSE_SESSION, CANCEL_SESSION)

PACKET_TYPE = "BITS-Packet-Type"
SESSION_ID = "BITS-Session-Id"
SUPPORTED_PROTOCOLS = "BITS-Supported-Protocols"
PROTOCOL = "BITS-Protocol"
RECEIVED_RANGE = "BITS-Received-Content-Range"
REPLY_URL = "BITS-Reply-URL"
HOST_ID = "BITS-Host-Id"
HOST_ID_FALLBACK = "BITS-Host-Id-Fallback-Timeout"
ERROR_CODE = "BITS-Error-Code"
ERROR_CODE_SPEC = "BITS-Error"  # the spec's name; servers send BITS-Error-Code, so both are read
ERROR_CONTEXT = "BITS-Error-Context"
CONTENT_NAME = "Content-Name"

# Server -> application notification (bits.md §4).
ORIGINAL_REQUEST_URL = "BITS-Original-Request-URL"
REQUEST_DATAFILE = "BITS-Request-DataFile-Name"
RESPONSE_DATAFILE = "BITS-Response-DataFile-Name"
STATIC_RESPONSE_URL = "BITS-Static-Response-URL"
COPY_TO_DESTINATION = "BITS-Copy-File-To-Destination"

# Error contexts on the wire.
CONTEXT_SERVER = 0x5  # BG_ERROR_CONTEXT_REMOTE_FILE: the BITS server itself
CONTEXT_APPLICATION = 0x7  # BG_ERROR_CONTEXT_REMOTE_APPLICATION: the server application

MAX_SESSION_ID = 100  # "any HTTP-legal string up to 100 characters"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)
_SESSION_ID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_SESSION_ID}}}$")


class ProtocolViolation(ValueError):
    """A packet or an answer that breaks [MC-BUP]."""


def packet_type(headers: Mapping[str, str]) -> str | None:
    """The packet type in its canonical spelling, the raw value when unknown, or None when absent."""
    value = (headers.get(PACKET_TYPE) or "").strip()
    if not value:
        return None
    for known in (*PACKET_TYPES, ACK):
        if value.lower() == known.lower():
            return known
    return value


def fragment_range(value: str | None) -> tuple[int, int, int]:
    """A fragment's ``Content-Range: bytes first-last/total`` (zero-based, last inclusive)."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        raise ProtocolViolation(f"a fragment needs 'Content-Range: bytes first-last/total', not {value!r}")
    first, last, total = (int(g) for g in match.groups())
    if first > last or last >= total:
        raise ProtocolViolation(f"impossible Content-Range {value!r}")
    return first, last, total


def format_range(first: int, last: int, total: int) -> str:
    return f"bytes {first}-{last}/{total}"


def received_offset(value: str | None, total: int) -> int:
    """``BITS-Received-Content-Range``: the next offset the server expects; 0 <= offset <= total."""
    text = (value or "").strip()
    if not text.isdigit():
        raise ProtocolViolation(f"the server's {RECEIVED_RANGE} is {value!r}, not a byte offset")
    offset = int(text)
    if offset > total:
        raise ProtocolViolation(f"the server claims {offset} bytes of a {total}-byte upload")
    return offset


def valid_session_id(value: str | None) -> bool:
    return bool(value) and _SESSION_ID.match(value or "") is not None


def error_code(headers: Mapping[str, str]) -> int | None:
    """The HRESULT of ``BITS-Error-Code`` (or the spec's ``BITS-Error``), hex with or without 0x."""
    value = (headers.get(ERROR_CODE) or headers.get(ERROR_CODE_SPEC) or "").strip()
    if not value:
        return None
    try:
        return int(value, 16) & 0xFFFFFFFF
    except ValueError:
        return None


def error_context(headers: Mapping[str, str]) -> int | None:
    value = (headers.get(ERROR_CONTEXT) or "").strip()
    try:
        return int(value, 16) if value else None
    except ValueError:
        return None


def supports_protocol(offered: str | None) -> bool:
    """Whether the client offers our protocol; clients separate the list with spaces or with commas."""
    return PROTOCOL_GUID in (offered or "").lower().replace(",", " ").split()


def hresult_text(code: int) -> str:
    """An HRESULT as BITS-Error-Code carries it: eight hex digits; errors.format_hresult names it for people."""
    return f"0x{code:08x}"
