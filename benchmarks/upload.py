"""A 1 GiB BITS upload to `bitscli serve` on loopback, against `curl -o` downloads from it and from nginx.

Run: python benchmarks/upload.py [--mib 1024] [--rounds 3]
Installs nginx from Debian packages when it is missing (needs root); needs the server extra.
Targets (issue 4): upload wall time within 2x of the `curl -o` download of the same file from `bitscli serve`;
`bitscli serve` serving that download within 1.5x of nginx.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from download import Bitscli, ensure_tools, make_file, peak_rss_mib, report, rounds_line, start_nginx


def start_serve(root: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bitscli", "serve", "--root", str(root), "--port", "0", "--uploads", "/incoming"],
        stdout=subprocess.PIPE, text=True,
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
