"""Password guessing against `bitscli serve` (issue 14 item 8): what it costs everyone else, and what it reveals.

Run: python benchmarks/logins.py [--seconds 10]
Prints the median and 99th-percentile time of an unrelated GET, quiet and while four clients guess passwords
(each guess from its own address, so the per-address slow-down does not spare the server), and the median time
of a failed login for an unknown user against a known user with a wrong password (equal: names stay hidden).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hostile import _address
from upload import start_serve


def _get_ms(port: int) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/hello.txt")
    conn.getresponse().read()
    conn.close()
    return (time.perf_counter() - start) * 1000


def _login_ms(port: int, user: str, n: int) -> float:
    header = "Basic " + base64.b64encode(f"{user}:wrong".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(_address(n), 0))
    start = time.perf_counter()
    conn.putrequest("BITS_POST", "/incoming/x.bin", skip_accept_encoding=True)
    for name, value in (("BITS-Packet-Type", "Ping"), ("Authorization", header), ("Content-Length", "0")):
        conn.putheader(name, value)
    conn.endheaders()
    conn.getresponse().read()
    conn.close()
    return (time.perf_counter() - start) * 1000


def _gets(port: int, seconds: float) -> list[float]:
    times, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        times.append(_get_ms(port))
        time.sleep(0.02)
    return times


def _line(name: str, times: list[float]) -> str:
    p99 = statistics.quantiles(times, n=100)[98] if len(times) > 2 else max(times)
    return f"{name:<40}{statistics.median(times):>10.2f}{p99:>10.2f}{len(times):>8}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "www"
        (root / "incoming").mkdir(parents=True)
        (root / "hello.txt").write_text("hello\n")
        users = Path(tmp) / "users"
        subprocess.run([sys.executable, "-m", "bitscli", "serve-passwd", str(users), "alice"], input="right\n",
                       text=True, check=True, capture_output=True)  # fmt: skip
        process, url = start_serve(root, extra=("--password-file", str(users)))
        port = int(url.rsplit(":", 1)[1])
        try:
            quiet = _gets(port, args.seconds)
            stop = threading.Event()
            guesses = [0]

            def guess(offset: int) -> None:
                n = offset
                while not stop.is_set():
                    _login_ms(port, "alice", 400_000 + n)
                    guesses[0] += 1
                    n += 4

            guessers = [threading.Thread(target=guess, args=(i,)) for i in range(4)]
            for thread in guessers:
                thread.start()
            loaded = _gets(port, args.seconds)
            stop.set()
            for thread in guessers:
                thread.join()
            unknown = [_login_ms(port, "mallory", 500_000 + i) for i in range(30)]
            known = [_login_ms(port, "alice", 600_000 + i) for i in range(30)]
        finally:
            process.terminate()
            process.wait()
    print(f"{'GET /hello.txt':<40}{'median ms':>10}{'p99 ms':>10}{'count':>8}")
    print(_line("quiet", quiet))
    print(_line(f"4 guessers ({guesses[0] / args.seconds:.0f} guesses/s)", loaded))
    print(f"failed login, median ms: unknown user {statistics.median(unknown):.1f}, "
          f"known user with a wrong password {statistics.median(known):.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
