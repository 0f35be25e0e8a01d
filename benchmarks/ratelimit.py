"""A capped download from nginx on 127.0.0.1: bitscli's cap beside curl --limit-rate and wget --limit-rate.

Run: python benchmarks/ratelimit.py [--mib 200] [--rate 20MB] [--slow-seconds 20]
Installs nginx, curl and wget from Debian packages when they are missing (needs root).
Targets (issue 11): at 20 MB/s on 200 MiB, the average within 3 % of the cap and every 2-second window after
the first within 10 %; the same at 64 KiB/s for 20 s; the daemon's CPU seconds beside curl's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from download import Bitscli, ensure_tools, make_file, start_nginx
from download import report as report_failures

WINDOW = 2.0  # seconds: the windows whose rates are checked, after the first
SAMPLE = 0.05  # seconds between looks at the file's size


def watch(path: Path | str, done: threading.Event) -> list[tuple[float, int]]:
    """(seconds, bytes) of a growing file, every SAMPLE seconds until ``done``, and once more after."""
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    while True:
        finished = done.is_set()
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        samples.append((time.monotonic() - start, size))
        if finished:
            return samples
        time.sleep(SAMPLE)


def rates(samples: list[tuple[float, int]], total: int) -> tuple[float, list[float]]:
    """The average rate from the first look that saw bytes to the last byte (what came before it is left out, with
    the time it took), and the rate of each whole WINDOW after the first."""
    moving = [(t, n) for t, n in samples if n > 0]
    first, already = moving[0]
    last = next(t for t, n in moving if n >= total)
    average = (total - already) / (last - first) if last > first else float("nan")
    windows = []
    edge = first + WINDOW  # the first window is left out: it holds the start's burst
    while edge + WINDOW <= last:
        begin = max(n for t, n in moving if t <= edge)
        end = max(n for t, n in moving if t <= edge + WINDOW)
        windows.append((end - begin) / WINDOW)
        edge += WINDOW
    return average, windows


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_tool(argv: list[str], out: Path, total: int) -> tuple[float, list[float], float]:
    done = threading.Event()
    result: list[list[tuple[float, int]]] = []
    watcher = threading.Thread(target=lambda: result.append(watch(out, done)))
    watcher.start()
    before = os.times()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = os.times()
    done.set()
    watcher.join()
    average, windows = rates(result[0], total)
    return (
        average,
        windows,
        (after.children_user - before.children_user) + (after.children_system - before.children_system),
    )


def measure_bitscli(bitscli: Bitscli, url: str, out: Path, rate: int, total: int) -> tuple[float, list[float], float]:
    pid = bitscli.start_daemon()
    job = bitscli("create", "--raw", "capped").stdout
    bitscli("addfile", job, url, str(out))
    bitscli("setmaxbandwidth", job, str(rate))
    part = bitscli("gettemporaryname", job, "0", "--raw").stdout
    done = threading.Event()
    result: list[list[tuple[float, int]]] = []
    watcher = threading.Thread(target=lambda: result.append(watch(part, done)))
    cpu_before = cpu_seconds(pid)
    watcher.start()
    bitscli("resume", job)
    bitscli("wait", job, timeout=3600)
    done.set()
    watcher.join()
    cpu = cpu_seconds(pid) - cpu_before
    bitscli("complete", job)
    bitscli.stop_daemon()
    average, windows = rates(result[0], total)
    return average, windows, cpu


def report(name: str, cap: int, average: float, windows: list[float], cpu: float, failures: list[str],
           check: bool) -> None:  # fmt: skip
    worst = max((abs(w - cap) / cap for w in windows), default=0.0)
    print(f"{name:<36} {average / 1e6:9.3f} MB/s {100 * (average - cap) / cap:+6.1f}%  worst 2 s window "
          f"{100 * worst:5.1f}%  cpu {cpu:5.2f} s")  # fmt: skip
    if check and abs(average - cap) / cap > 0.03:
        failures.append(f"{name}: average {average:.0f} B/s is more than 3% off {cap}")
    if check and worst > 0.10:
        failures.append(f"{name}: a 2-second window is {100 * worst:.1f}% off the cap")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bitscli.inputs.fields import parse_rate

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--rate", default="20MB")
    parser.add_argument("--slow-rate", default="64KiB")
    parser.add_argument("--slow-seconds", type=int, default=20)
    args = parser.parse_args()
    ensure_tools()
    rate, slow = parse_rate(args.rate), parse_rate(args.slow_rate)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        www = root / "www"
        www.mkdir()
        big, small = args.mib << 20, slow * args.slow_seconds
        make_file(www / "big.bin", big)
        make_file(www / "small.bin", small)
        server, port = start_nginx(root)
        try:
            time.sleep(0.5)
            print(
                f"cap {rate} B/s on {args.mib} MiB, then {slow} B/s for {args.slow_seconds} s; from nginx on loopback"
            )
            for cap, name, size in ((rate, "big.bin", big), (slow, "small.bin", small)):
                url = f"http://127.0.0.1:{port}/{name}"
                out = root / f"out-{name}"
                curl = measure_tool(["curl", "-sS", "--limit-rate", str(cap), "-o", str(out), url], out, size)
                report(f"curl --limit-rate {cap}", cap, *curl, failures, check=False)
                out.unlink()
                wget = measure_tool(["wget", "-q", f"--limit-rate={cap}", "-O", str(out), url], out, size)
                report(f"wget --limit-rate {cap}", cap, *wget, failures, check=False)
                out.unlink()
                ours = measure_bitscli(Bitscli(root, f"{cap}"), url, out, cap, size)
                report(f"bitscli setmaxbandwidth {cap}", cap, *ours, failures, check=True)
        finally:
            server.terminate()
            server.wait()
    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
