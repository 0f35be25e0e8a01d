"""The pure parts of [MC-BUP]: packet types, ranges, offsets and error headers as real servers send them."""

from __future__ import annotations

import pytest

from bitscli import protocol


def test_packet_types_are_case_insensitive_and_canonical() -> None:
    assert protocol.packet_type({"BITS-Packet-Type": "create-session"}) == "Create-Session"
    assert protocol.packet_type({"BITS-Packet-Type": " FRAGMENT "}) == "Fragment"
    assert protocol.packet_type({"BITS-Packet-Type": "Teleport"}) == "Teleport"
    assert protocol.packet_type({}) is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [({"BITS-Error-Code": "0x8020001F"}, 0x8020001F), ({"BITS-Error-Code": "8020001f"}, 0x8020001F),
     ({"BITS-Error": "0x80070005"}, 0x80070005), ({"BITS-Error-Code": "junk"}, None), ({}, None)],
)  # fmt: skip
def test_error_code_reads_both_header_names(headers: dict[str, str], code: int | None) -> None:
    assert protocol.error_code(headers) == code


def test_fragment_range_and_received_offset() -> None:
    assert protocol.fragment_range("bytes 128-212/1000") == (128, 212, 1000)
    assert protocol.format_range(128, 212, 1000) == "bytes 128-212/1000"
    for bad in (None, "bytes 5-4/10", "bytes 0-10/10", "bytes 0-1/*", "items 0-1/2"):
        with pytest.raises(protocol.ProtocolViolation):
            protocol.fragment_range(bad)
    assert protocol.received_offset("213", 1000) == 213  # a fragment of 128-212 gives 213
    for bad in (None, "", "-1", "1001", "12 bytes"):
        with pytest.raises(protocol.ProtocolViolation):
            protocol.received_offset(bad, 1000)


def test_session_ids_and_protocol_offers() -> None:
    assert protocol.valid_session_id("{7df0354d-249b-430f-820d-3d2a9bef4931}")
    assert protocol.valid_session_id("not-a-guid-but-legal")
    assert not protocol.valid_session_id("x" * 101)
    assert not protocol.valid_session_id("has space")
    assert protocol.supports_protocol("{00000000-0000-0000-0000-000000000000} " + protocol.PROTOCOL_GUID.upper())
    assert not protocol.supports_protocol("{00000000-0000-0000-0000-000000000000}")
