"""Whole-file digests a server sends with a body: Repr-Digest (RFC 9530), Digest (RFC 3230), Content-MD5."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

# RFC 9530 §5 and the RFC 3230 registry, to hashlib's names; the insecure ones still catch a corrupted byte.
_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512", "sha": "sha1", "md5": "md5"}
_REPR_ITEM = re.compile(r"^\s*([a-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")


def claims(headers: Mapping[str, str], status: int) -> tuple[dict[str, str], str]:
    """The server's digests of the whole file, ``({"sha256": "HEX"}, header name)``; empty when it sent none.

    Repr-Digest and Digest describe the whole representation even on a 206; Content-MD5 describes the body it
    came with, so only a 200's is the file's. Malformed values are ignored, never trusted.
    """
    found: dict[str, str] = {}
    for item in (headers.get("Repr-Digest") or "").split(","):
        match = _REPR_ITEM.match(item)
        if match and match.group(1).lower() in _ALGORITHMS:
            _add(found, _ALGORITHMS[match.group(1).lower()], match.group(2))
    if found:
        return found, "Repr-Digest"
    for item in (headers.get("Digest") or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep and name.strip().lower() in _ALGORITHMS:
            _add(found, _ALGORITHMS[name.strip().lower()], value.strip())
    if found:
        return found, "Digest"
    md5 = headers.get("Content-MD5")
    if md5 and status == 200:
        _add(found, "md5", md5.strip())
    return found, "Content-MD5" if found else ""


def _add(found: dict[str, str], algorithm: str, encoded: str) -> None:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return
    if len(raw) == {"sha256": 32, "sha512": 64, "sha1": 20, "md5": 16}[algorithm]:
        found[algorithm] = raw.hex()
