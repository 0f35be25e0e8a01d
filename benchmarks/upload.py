"""A 1 GiB BITS upload to `bitscli serve` on loopback, against `curl -o` downloads from it and from nginx.

Run: python benchmarks/upload.py [--mib 1024] [--rounds 3]
Installs nginx from Debian packages when it is missing (needs root); needs the server extra.
Targets (issue 4): upload wall time within 2x of the `curl -o` download of the same file from `bitscli serve`;
`bitscli serve` serving that download within 1.5x of nginx.

python benchmarks/upload.py --hostile [--mib 100] [--rounds 3] (issue 14): the same upload, quiet and then while
benchmarks/hostile.py holds 1,000 idle connections and 500 slow sessions and floods Create-Sessions from many
addresses; prints the upload's time against the quiet runs, the server's peak RSS, its most open descriptors,
and the size of its log. Target: the upload finishes, and the log stays small (under 1 MiB).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from download import Bitscli, ensure_tools, make_file, peak_rss_mib, report, rounds_line, start_nginx


def start_serve(root: Path, log: Path | None = None, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "serve", "--root", str(root), "--port", "0", "--uploads", "/incoming",
         *extra],
        stdout=subprocess.PIPE, stderr=open(log, "w") if log else None, text=True,  # noqa: SIM115
    )  # fmt: skip
    assert process.stdout is not None
    match = re.search(r"(http://[\d.]+:\d+)/", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("bitscli serve did not start (is the server extra installed?)")
    return process, match.group(1)


def curl_download(url: str, out: Path, size: int) -> tuple[float, float]:
    """Seconds for `curl -o`, and for `curl -o` followed by `sync` (the upload is durable when it is acked)."""
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    subprocess.run(["curl", "-fsS", "-o", str(out), url], check=True)
    elapsed = time.perf_counter() - start
    subprocess.run(["sync"], check=True)
    durable = time.perf_counter() - start
    if out.stat().st_size != size:
        raise SystemExit(f"curl's copy of {url} has the wrong size")
    out.unlink()
    return elapsed, durable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hostile", action="store_true", help="the hostile-load run (default 100 MiB)")
    args = parser.parse_args()
    if args.hostile:
        return hostile_run(args.mib if args.mib != 1024 else 100, args.rounds)
    ensure_tools()
    size = args.mib << 20
    failures: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the files
        www = root / "www"
        (www / "incoming").mkdir(parents=True)
        make_file(www / "big.bin", size)
        nginx_process, port = start_nginx(root)
        serve_process, serve_url = start_serve(www)
        tool = Bitscli(root, "upload")
        daemon_pid = tool.start_daemon()
        out = root / "out.bin"
        nginx_times, serve_times, upload_times, serve_synced = [], [], [], []
        try:
            time.sleep(0.5)
            for round_number in range(args.rounds):  # alternating rounds, medians reported
                nginx_times.append(curl_download(f"http://127.0.0.1:{port}/big.bin", out, size)[0])
                plain, synced = curl_download(f"{serve_url}/big.bin", out, size)
                serve_times.append(plain)
                serve_synced.append(synced)
                target = www / "incoming" / f"up{round_number}.bin"
                subprocess.run(["sync"], check=True)
                start = time.perf_counter()
                remote = f"{serve_url}/incoming/{target.name}"
                tool("transfer", "--upload", f"up{round_number}", remote, str(www / "big.bin"))
                upload_times.append(time.perf_counter() - start)
                if target.stat().st_size != size:
                    failures.append("the uploaded file has the wrong size")
                target.unlink()
            rss_daemon, rss_serve = peak_rss_mib(daemon_pid), peak_rss_mib(serve_process.pid)
        finally:
            tool.stop_daemon()
            serve_process.terminate()
            nginx_process.terminate()
            serve_process.wait()
            nginx_process.wait()
    nginx_s, serve_s, upload_s, synced_s = (
        statistics.median(x) for x in (nginx_times, serve_times, upload_times, serve_synced)
    )
    print(f"median of {args.rounds} rounds, {args.mib} MiB, `sync` before every run")
    print(f"{'case':<44}{'seconds':>9}{'ratio':>8}")
    print(f"{'curl -o from nginx':<44}{nginx_s:>9.2f}{1:>8.2f}")
    print(f"{'curl -o from bitscli serve':<44}{serve_s:>9.2f}{serve_s / nginx_s:>8.2f}  (vs nginx; target <= 1.5)")
    print(f"{'curl -o from bitscli serve, then sync':<44}{synced_s:>9.2f}{synced_s / serve_s:>8.2f}"
          "  (vs the serve download)")  # fmt: skip
    print(f"{'bitscli transfer --upload to bitscli serve':<44}{upload_s:>9.2f}{upload_s / serve_s:>8.2f}"
          "  (vs the serve download; target <= 2)")  # fmt: skip
    print(rounds_line({"nginx": nginx_times, "serve": serve_times, "upload": upload_times}))
    print(f"peak RSS: daemon {rss_daemon:.1f} MiB, bitscli serve {rss_serve:.1f} MiB")
    if serve_s > 1.5 * nginx_s:
        failures.append(f"bitscli serve download is {serve_s / nginx_s:.2f}x nginx (target <= 1.5)")
    if upload_s > 2 * serve_s:
        failures.append(f"upload is {upload_s / serve_s:.2f}x the download (target <= 2)")
    return report(failures)


def hostile_run(mib: int, rounds: int) -> int:
    size = mib << 20
    failures: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        www = root / "www"
        (www / "incoming").mkdir(parents=True)
        make_file(root / "up.bin", size)
        log = root / "serve.log"
        serve_process, serve_url = start_serve(www, log)
        port = serve_url.rsplit(":", 1)[1]
        tool = Bitscli(root, "hostile")
        tool.start_daemon()
        watch = ServerWatch(serve_process.pid)
        quiet: list[float] = []
        hostile: list[float] = []
        attackers = None
        try:
            for round_number in range(2 * rounds):
                if round_number == rounds:
                    attackers = subprocess.Popen([sys.executable, str(Path(__file__).with_name("hostile.py")), port,
                                                  "3600"], stdout=subprocess.PIPE, text=True)  # fmt: skip
                    time.sleep(10)  # the idle connections and slow sessions are in place
                target = www / "incoming" / f"up{round_number}.bin"
                start = time.perf_counter()
                tool("transfer", "--upload", f"up{round_number}", f"{serve_url}/incoming/{target.name}",
                     str(root / "up.bin"))  # fmt: skip
                (hostile if attackers else quiet).append(time.perf_counter() - start)
                if target.stat().st_size != size:
                    failures.append("the uploaded file has the wrong size")
                target.unlink()
        finally:
            if attackers is not None:
                attackers.terminate()
                print("attackers:", attackers.communicate()[0].strip() or "(killed before their count)")
            for daemon_log in tool.home.rglob("daemon.log"):
                for entry in daemon_log.read_text(errors="replace").splitlines():
                    if "error" in entry.lower() or "retry" in entry.lower():
                        print("daemon:", entry[:200])
            watch.stop()
            tool.stop_daemon()
            serve_process.terminate()
            serve_process.wait()
            log_size = log.stat().st_size
            log_text = log.read_text(errors="replace")
            log_lines = log_text.count("\n")
            shutil.copy(log, Path(tempfile.gettempdir()) / "bitscli-hostile-serve.log")
    quiet_s, hostile_s = statistics.median(quiet), statistics.median(hostile)
    print(f"{mib} MiB upload to bitscli serve, median of {rounds} rounds each")
    print(f"{'case':<44}{'seconds':>9}{'ratio':>8}")
    print(f"{'quiet':<44}{quiet_s:>9.2f}{1:>8.2f}")
    print(f"{'1,000 idle, 500 slow sessions, a flood':<44}{hostile_s:>9.2f}{hostile_s / quiet_s:>8.2f}")
    print(rounds_line({"quiet": quiet, "hostile": hostile}))
    print(
        f"bitscli serve: peak RSS {watch.peak_rss_mib:.1f} MiB, most open descriptors {watch.most_fds}, "
        f"log {log_size} bytes in {log_lines} lines (a copy: {tempfile.gettempdir()}/bitscli-hostile-serve.log)"
    )
    kinds = collections.Counter(re.sub(r"[\d.:{}a-f-]{6,}", "N", x.split(" ", 3)[-1])[:90]
                                for x in log_text.splitlines() if x[:4].isdigit())  # fmt: skip
    for kind, count in kinds.most_common(8):
        print(f"  log: {count:>4} x {kind}")
    if log_size > 1 << 20:
        failures.append(f"the server's log grew to {log_size} bytes (target < 1 MiB)")
    return report(failures)


class ServerWatch:
    """Samples a process's open descriptors every 0.2 s; its peak RSS is the kernel's VmHWM."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.most_fds = 0
        self.peak_rss_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.most_fds = max(self.most_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
                self.peak_rss_mib = peak_rss_mib(self.pid)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


if __name__ == "__main__":
    sys.exit(main())
