"""Yielding to other traffic, measured: a LOW bitscli job and curl share a 100 Mbit bottleneck with a deep buffer.

Run (root, Linux): python benchmarks/yield.py [--seconds 10] [--no-compare]
The benchmark makes its own network: a router namespace and a server namespace behind it, joined by veth
pairs; the router's link to us has `tc tbf rate 100mbit burst 256kb latency 200ms` (a home router's deep
queue). No netem on these kernels, so the path's own delay is the veth's; the queueing delay is what the
bottleneck adds, and receive buffers start as a longer path would grow them (tcp_rmem, restored after).
Targets (issue 11): bitscli alone fills >= 90 % of the link; curl beside a yielding bitscli keeps >= 80 % of
what it gets alone; bitscli backs off within 2 s of curl starting and takes the link back within 5 s of its
end. The same run with `yield = false`, plain curl and `curl --limit-rate` as the background flow shows what
yielding buys; the time to open a TCP connection through the bottleneck (the "ping" a call would see; no
ping binary here) is printed for each phase.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from download import Bitscli, report

SERVER_NS, ROUTER_NS = "bitsy-srv", "bitsy-rtr"
HOST_IP, ROUTER_IN, ROUTER_OUT, NS_IP, PORT = "10.231.1.1", "10.231.1.2", "10.231.2.1", "10.231.2.2", 8080
LINK = 100e6 / 8  # bytes a second through tbf's 100 Mbit
SAMPLE = 0.05  # seconds between looks at the part file's size
WINDOW = 0.5  # seconds: the rate windows that tell when bitscli backed off or took the link back


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def _in(ns: str, *argv: str) -> None:
    sh("ip", "netns", "exec", ns, *argv)


def _clean() -> None:
    subprocess.run(["ip", "link", "del", "byh0"], stderr=subprocess.DEVNULL, check=False)
    for ns in (SERVER_NS, ROUTER_NS):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


@contextlib.contextmanager
def bottleneck() -> Iterator[None]:
    """host <-> router <-> server, each a network namespace but the host; the router's way to the host is the
    100 Mbit bottleneck with 200 ms of buffer. A router of its own, because a queue on the sending host itself
    is kept short by TCP Small Queues, and a home router's is not."""
    _clean()
    rmem = Path("/proc/sys/net/ipv4/tcp_rmem")
    saved = rmem.read_text()
    try:
        # Receive windows as a path of tens of milliseconds grows them: this one has no propagation delay (no
        # netem), and with a window fit for 0.3 ms TCP would never fill the router's queue.
        low, _, high = saved.split()
        rmem.write_text(f"{low} {4 << 20} {max(int(high), 8 << 20)}")
        for ns in (SERVER_NS, ROUTER_NS):
            sh("ip", "netns", "add", ns)
            _in(ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "byh0", "type", "veth", "peer", "name", "byr1", "netns", ROUTER_NS)
        _in(ROUTER_NS, "ip", "link", "add", "byr2", "type", "veth", "peer", "name", "bys0", "netns", SERVER_NS)
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", "byh0")
        sh("ip", "link", "set", "byh0", "up")
        sh("ip", "route", "add", "10.231.2.0/24", "via", ROUTER_IN)
        _in(ROUTER_NS, "ip", "addr", "add", f"{ROUTER_IN}/24", "dev", "byr1")
        _in(ROUTER_NS, "ip", "addr", "add", f"{ROUTER_OUT}/24", "dev", "byr2")
        _in(ROUTER_NS, "ip", "link", "set", "byr1", "up")
        _in(ROUTER_NS, "ip", "link", "set", "byr2", "up")
        _in(ROUTER_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _in(SERVER_NS, "ip", "addr", "add", f"{NS_IP}/24", "dev", "bys0")
        _in(SERVER_NS, "ip", "link", "set", "bys0", "up")
        _in(SERVER_NS, "ip", "route", "add", "default", "via", ROUTER_OUT)
        _in(ROUTER_NS, "tc", "qdisc", "add", "dev", "byr1", "root", "tbf", "rate", "100mbit", "burst", "256kb",
            "latency", "200ms")  # fmt: skip
        yield
    finally:
        rmem.write_text(saved)
        _clean()


# The server: GET of one endless body, sent with sendfile() by a CUBIC sender. CUBIC is Linux's default and the
# usual web server's: it fills a queue until it drops, as the competitor of a background transfer does. This
# machine's default is BBR, which keeps queues short, and a namespace may not change it (sysctl refused); nginx
# cannot choose its sockets' congestion control, so this small server does (TCP_CONGESTION, per socket).
SERVER = r"""
import os, socket, sys, threading
big = sys.argv[1]
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(65536)
            if not chunk:
                return
            request += chunk
        size = os.path.getsize(big)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        with open(big, "rb") as f, __import__("contextlib").suppress(OSError):
            offset = 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), f.fileno(), offset, 1 << 20) or size
listener = socket.create_server((sys.argv[2], int(sys.argv[3])))
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextlib.contextmanager
def server(root: Path) -> Iterator[str]:
    with open(root / "big", "wb") as big:
        big.truncate(64 << 30)  # sparse: served from memory, never the disk
    process = subprocess.Popen(["ip", "netns", "exec", SERVER_NS, sys.executable, "-c", SERVER, str(root / "big"),
                                NS_IP, str(PORT)])  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((NS_IP, PORT), timeout=1):
                break
            time.sleep(0.05)
        yield f"http://{NS_IP}:{PORT}/big"
    finally:
        process.terminate()
        process.wait(timeout=10)


def connect_rtt(stop: threading.Event, out: list[float]) -> None:
    """The time to open a TCP connection through the bottleneck (its SYN-ACK waits in the queue), every 0.2 s."""
    while not stop.is_set():
        start = time.perf_counter()
        with contextlib.suppress(OSError), socket.create_connection((NS_IP, PORT), timeout=5):
            out.append(time.perf_counter() - start)
        stop.wait(0.2)


def curl_rate(url: str, seconds: float) -> float:
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", str(seconds), "-w", "%{size_download}",
                           url], capture_output=True, text=True, check=False)  # fmt: skip
    return float(done.stdout or 0) / seconds


class Watch:
    """A growing file's size every SAMPLE seconds, on a thread, with the time of each look."""

    def __init__(self, path: Path) -> None:
        self.path, self.samples, self.stop = path, [(time.monotonic(), 0)], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(SAMPLE):
            with contextlib.suppress(FileNotFoundError):
                self.samples.append((time.monotonic(), self.path.stat().st_size))

    def rate(self, start: float, end: float) -> float:
        inside = [(t, n) for t, n in self.samples if start <= t <= end]
        if len(inside) < 2:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def first_time(self, after: float, test: object) -> float | None:
        """The end of the first WINDOW after ``after`` whose rate passes ``test``: seconds after ``after``."""
        t = after
        while t + WINDOW <= self.samples[-1][0]:
            if test(self.rate(t, t + WINDOW)):  # type: ignore[operator]
                return t + WINDOW - after
            t += SAMPLE
        return None


class BitscliFlow:
    """The background flow under test: a LOW bitscli job, yielding or not; its part file is what is watched."""

    def __init__(self, url: str, root: Path, yielding: bool) -> None:
        self.bits = Bitscli(root, "yield" if yielding else "greedy")
        (self.bits.home / "config.toml").write_text(f"[bandwidth]\nyield = {'true' if yielding else 'false'}\n")
        self.job = self.bits("create", "--raw", "bench").stdout
        self.bits("setpriority", self.job, "LOW")
        self.bits("addfile", self.job, url, str(root / f"out-{yielding}"))
        self.file = Path(self.bits("gettemporaryname", self.job, "0", "--raw").stdout)
        self.bits("resume", self.job)

    def stop(self) -> None:
        self.bits("cancel", self.job)
        self.bits("daemon", "stop")


class CurlFlow:
    """curl as the background flow, unthrottled or with --limit-rate, for comparison."""

    def __init__(self, url: str, root: Path, limit: str | None) -> None:
        self.file = root / f"curl-{limit or 'full'}"
        limit_args = ["--limit-rate", limit] if limit else []
        self.process = subprocess.Popen(["curl", "-s", *limit_args, "-o", str(self.file), url])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.file.unlink(missing_ok=True)


def phase(flow: BitscliFlow | CurlFlow, url: str, seconds: float) -> dict[str, float | None]:
    """The background flow alone, then with a curl download beside it, then alone again: rates, the time it
    took to back off and to take the link back, and the connect RTT through the bottleneck."""
    rtts: dict[str, list[float]] = {"alone": [], "with curl": []}
    watch = Watch(flow.file)
    try:
        time.sleep(3)  # the transfer's start, and the controller's first base delay
        stop = threading.Event()
        probe = threading.Thread(target=connect_rtt, args=(stop, rtts["alone"]))
        probe.start()
        alone_start = time.monotonic()
        time.sleep(seconds)
        alone = watch.rate(alone_start, time.monotonic())
        stop.set()
        probe.join()
        stop = threading.Event()
        probe = threading.Thread(target=connect_rtt, args=(stop, rtts["with curl"]))
        probe.start()
        curl_start = time.monotonic()
        beside = curl_rate(url, seconds)
        curl_end = time.monotonic()
        stop.set()
        probe.join()
        time.sleep(8)
        back_off = watch.first_time(curl_start, lambda r: r < 0.2 * alone)
        take_back = watch.first_time(curl_end, lambda r: r >= 0.8 * alone)
        during = watch.rate(curl_start + 2, curl_end)
    finally:
        watch.stop.set()
        flow.stop()
    return {
        "alone": alone, "curl beside": beside, "flow beside curl": during, "back off": back_off,
        "take back": take_back, "rtt alone": statistics.median(rtts["alone"]) if rtts["alone"] else None,
        "rtt with curl": statistics.median(rtts["with curl"]) if rtts["with curl"] else None,
    }  # fmt: skip


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.1f} ms"


def _sec(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--no-compare", action="store_true", help="only the yielding bitscli job")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("curl"):
        print("needs root, iproute2 (ip, tc) and curl")
        return 2
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bitscli-yield-") as tmp, bottleneck():
        root = Path(tmp)
        with server(root) as url:
            idle: list[float] = []
            stop = threading.Event()
            probe = threading.Thread(target=connect_rtt, args=(stop, idle))
            probe.start()
            time.sleep(2)
            stop.set()
            probe.join()
            curl_alone = curl_rate(url, args.seconds)
            print(f"link: tbf 100 Mbit ({LINK / 1e6:.1f} MB/s), 200 ms of buffer; connect RTT idle "
                  f"{_ms(statistics.median(idle))}; curl alone {curl_alone / 1e6:.2f} MB/s")  # fmt: skip
            flows: list[tuple[str, object]] = [("bitscli LOW, yield = true", lambda: BitscliFlow(url, root, True))]
            if not args.no_compare:
                flows += [
                    ("bitscli LOW, yield = false", lambda: BitscliFlow(url, root, False)),
                    ("curl", lambda: CurlFlow(url, root, None)),
                    ("curl --limit-rate 6M", lambda: CurlFlow(url, root, "6M")),
                ]
            for name, make in flows:
                result = phase(make(), url, args.seconds)  # type: ignore[operator]
                alone, beside = result["alone"] or 0.0, result["curl beside"] or 0.0
                print(
                    f"{name}: alone {alone / 1e6:.2f} MB/s ({alone / curl_alone:.0%} of curl alone), connect "
                    f"RTT {_ms(result['rtt alone'])}; a curl started beside it gets {beside / 1e6:.2f} MB/s "
                    f"({beside / curl_alone:.0%}), connect RTT {_ms(result['rtt with curl'])}; the flow then "
                    f"{(result['flow beside curl'] or 0) / 1e6:.2f} MB/s, down to 20 % after "
                    f"{_sec(result['back off'])}, back to 80 % {_sec(result['take back'])} after curl ended"
                )
                if name.endswith("yield = true"):
                    if alone < 0.9 * curl_alone:
                        failures.append(f"bitscli alone {alone / curl_alone:.0%} of the link (target >= 90 %)")
                    if beside < 0.8 * curl_alone:
                        failures.append(f"curl beside bitscli kept {beside / curl_alone:.0%} (target >= 80 %)")
                    if result["back off"] is None or result["back off"] > 2:  # type: ignore[operator]
                        failures.append(f"backed off after {_sec(result['back off'])} (target < 2 s)")
                    if result["take back"] is None or result["take back"] > 5:  # type: ignore[operator]
                        failures.append(f"took the link back after {_sec(result['take back'])} (target < 5 s)")
    return report(failures)


if __name__ == "__main__":
    sys.exit(main())
