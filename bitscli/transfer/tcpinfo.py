"""The kernel's delay measurements of one TCP connection (Linux TCP_INFO): the signal of yielding.py."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# struct tcp_info (linux/tcp.h): the offsets of the fields read here, all __u32 microseconds.
_RTT, _RCV_RTT, _MIN_RTT = 68, 92, 148
_SIZE = _MIN_RTT + 4
_TCP_INFO = getattr(socket, "TCP_INFO", None)  # Linux only; other platforms fall back to not yielding


@dataclass(frozen=True)
class Delay:
    """Round-trip times in seconds: ``rtt`` as the sender measures it (our uploads), ``rcv_rtt`` as the
    receiver estimates it (our downloads), ``min_rtt`` the lowest the kernel saw (0.0: not measured)."""

    rtt: float
    rcv_rtt: float
    min_rtt: float


def supported() -> bool:
    """Whether this platform reports delays at all (checked on a fresh socket, no connection needed)."""
    if _TCP_INFO is None:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return read(probe) is not None


def read(sock: socket.socket | None) -> Delay | None:
    """The connection's delays now, or None where the kernel does not say (no TCP_INFO, an older kernel)."""
    if sock is None or _TCP_INFO is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _SIZE)
    except (OSError, ValueError):  # a closed socket, a socket that is not TCP
        return None
    if len(raw) < _SIZE:  # a kernel older than 4.6 has no tcpi_min_rtt
        return None
    (rtt,) = struct.unpack_from("=I", raw, _RTT)
    (rcv_rtt,) = struct.unpack_from("=I", raw, _RCV_RTT)
    (min_rtt,) = struct.unpack_from("=I", raw, _MIN_RTT)
    return Delay(rtt / 1e6, rcv_rtt / 1e6, min_rtt / 1e6 if min_rtt != 0xFFFFFFFF else 0.0)
