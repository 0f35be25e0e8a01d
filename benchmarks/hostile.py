"""Hostile clients for `bitscli serve` (issue 14): idle connections, slow sessions, a Create-Session flood.

Run by benchmarks/upload.py --hostile, in a process of its own: python benchmarks/hostile.py PORT SECONDS.
HOSTILE_ONLY="idle slow flood" (the default) picks the kinds of client.
Every client binds a source address in 127.0.0.0/8 (Linux answers the whole block on loopback), so the server
sees many addresses, as from many machines.
"""

from __future__ import annotations

import http.client
import itertools
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time

PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
IDLE = 1000
SLOW = 500
FLOODERS = 4


def _address(n: int) -> str:
    return f"127.{1 + n // 65025 % 250}.{n // 255 % 255}.{1 + n % 254}"


def _connect(port: int, n: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(_address(n), 0))
    except OSError:
        return None


def _create_session(port: int, n: int, path: str) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(_address(n), 0))
    try:
        conn.putrequest("BITS_POST", path, skip_accept_encoding=True)
        for name, value in (("BITS-Packet-Type", "Create-Session"), ("BITS-Supported-Protocols", PROTOCOL),
                            ("Content-Length", "0")):  # fmt: skip
            conn.putheader(name, value)
        conn.endheaders()
        answer = conn.getresponse()
        answer.read()
        return answer.getheader("BITS-Session-Id") if answer.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def hold_idle(port: int, until: float, counts: dict[str, int]) -> None:
    """IDLE connections that never send a byte; each one the server closes is opened again."""
    selector = selectors.DefaultSelector()
    serial = itertools.count(100_000)
    while time.monotonic() < until:
        while len(selector.get_map()) < IDLE and time.monotonic() < until:
            sock = _connect(port, next(serial))
            if sock is not None:
                selector.register(sock, selectors.EVENT_READ)
                counts["idle opened"] += 1
        for key, _ in selector.select(timeout=0.2):
            selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]


def slow_sessions(port: int, until: float, counts: dict[str, int]) -> None:
    """SLOW sessions whose one fragment trickles at 50 bytes a second (a tenth of the server's minimum)."""
    serial = itertools.count(200_000)
    live: list[socket.socket] = []
    while time.monotonic() < until:
        while len(live) < SLOW and time.monotonic() < until:
            n = next(serial)
            session = _create_session(port, n, f"/incoming/slow{n}.bin")
            sock = _connect(port, n) if session else None
            if sock is None:
                break
            head = (f"BITS_POST /incoming/slow{n}.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\n"
                    f"BITS-Session-Id: {session}\r\nContent-Range: bytes 0-1048575/1048576\r\n"
                    "Content-Length: 1048576\r\n\r\n")  # fmt: skip
            sock.sendall(head.encode())
            sock.setblocking(False)
            live.append(sock)
            counts["slow sessions"] += 1
        for sock in list(live):
            try:
                sock.send(b"s" * 50)
            except OSError:  # dropped by the server: start another
                live.remove(sock)
                sock.close()
        time.sleep(1)
    for sock in live:
        sock.close()


def flood(port: int, until: float, counts: dict[str, int], seed: int) -> None:
    """Create-Sessions as fast as they are answered, each from one of 60,000 addresses."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        if _create_session(port, rng.randrange(300_000, 360_000), f"/incoming/flood{rng.randrange(10**9)}.bin"):
            counts["flood sessions"] += 1
        else:
            counts["flood refused"] += 1


def main() -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    until = time.monotonic() + seconds
    counts = dict.fromkeys(("idle opened", "slow sessions", "flood sessions", "flood refused"), 0)
    only = os.environ.get("HOSTILE_ONLY", "idle slow flood").split()  # to see what each kind costs alone
    workers = [threading.Thread(target=hold_idle, args=(port, until, counts))] if "idle" in only else []
    workers += [threading.Thread(target=slow_sessions, args=(port, until, counts))] if "slow" in only else []
    workers += [threading.Thread(target=flood, args=(port, until, counts, seed))
                for seed in range(FLOODERS if "flood" in only else 0)]  # fmt: skip
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:  # SIGTERM from the benchmark: report what was done so far
        pass
    print(", ".join(f"{name} {count}" for name, count in counts.items()), flush=True)
    os._exit(0)  # the worker threads are still in their loops


if __name__ == "__main__":
    sys.exit(main())
