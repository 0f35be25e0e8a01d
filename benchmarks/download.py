"""Downloads from nginx on 127.0.0.1: bitscli against curl, wget and aria2c, in the same run.

Run: python benchmarks/download.py [--big-mib 1024] [--small 1000]
Installs nginx and aria2 from Debian packages when they are missing (needs root).
Targets (issue 3): 1 GiB `bitscli transfer` no slower than `curl -o`; 1,000 files of 16 KiB no slower than
aria2c and within 2x of wget; daemon peak RSS under 80 MiB and flat in file size; (issue 15) `transfer --sha256`
within 10% of the plain transfer, beside curl followed by sha256sum.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
    }}
}}
"""


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("aria2c", "aria2"), ("wget", "wget"), ("curl", "curl"))
               if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()]  # fmt: skip
    if missing:
        print(f"installing {' '.join(missing)} from Debian packages")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv: list[str], env: dict[str, str] | None = None, **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for _ in range(size >> 20):
            out.write(block)
        out.write(block[: size % (1 << 20)])


class Bitscli:
    """A private queue and daemon for one measurement; the daemon's peak RSS is read from /proc."""

    def __init__(self, root: Path, name: str) -> None:
        self.home = root / f"home-{name}"
        self.home.mkdir()
        (self.home / "config.toml").write_text("[limits]\nmax_files_per_job = 5000\n")
        self.env = {**os.environ, "BITSCLI_HOME": str(self.home)}
        self.base = [sys.executable, "-m", "bitscli"]

    def __call__(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], env=self.env, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]

    def start_daemon(self) -> int:
        self("daemon", "start")
        return int((self.home / "daemon.pid").read_text().split()[0])

    def stop_daemon(self) -> None:
        self("daemon", "stop")


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_nginx(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on a free loopback port, serving ``root/www`` (the caller makes ``root`` readable to it)."""
    (root / "tmp").mkdir(exist_ok=True)
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen([nginx, "-c", str(root / "nginx.conf")]), port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)  # identical runs here differ by up to 2x
    args = parser.parse_args()
    ensure_tools()
    # pip compiles bytecode when it installs a package; an editable install (and PYTHONDONTWRITEBYTECODE,
    # set on some machines) would otherwise recompile bitscli's changed sources on every command.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "bitscli")],
                   check=True)  # fmt: skip
    results: list[tuple[str, float, str]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the files
        www = root / "www"
        (www / "small").mkdir(parents=True)
        big = args.big_mib << 20
        make_file(www / "big.bin", big)
        make_file(www / "mid.bin", 100 << 20)
        for i in range(args.small):
            (www / "small" / f"f{i}").write_bytes(os.urandom(16 << 10))
        server, port = start_nginx(root)
        try:
            time.sleep(0.5)
            url = f"http://127.0.0.1:{port}"
            out = root / "out"
            out.mkdir()

            # Every measured run starts after `sync`, so no run pays for the write-back another left
            # behind (curl never fsyncs; bitscli fsyncs before it calls a file done). Rounds alternate
            # the tools and the medians are reported.
            digest = hashlib.sha256((www / "big.bin").read_bytes()).hexdigest()
            curl_times, curl_durable, ours_times, hashed_times, curl_hashed = [], [], [], [], []
            for round_number in range(args.rounds):
                subprocess.run(["sync"], check=True)
                start = time.perf_counter()
                subprocess.run(["curl", "-fsS", "-o", str(out / "curl.bin"), f"{url}/big.bin"], check=True)
                curl_times.append(time.perf_counter() - start)
                subprocess.run(["sync"], check=True)
                curl_durable.append(time.perf_counter() - start)
                if (out / "curl.bin").stat().st_size != big:
                    raise SystemExit("curl's copy has the wrong size: the server setup is broken")
                curl_hashed.append(curl_times[-1] + timed(["sha256sum", str(out / "curl.bin")]))  # what users do now
                (out / "curl.bin").unlink()
                tool = Bitscli(root, f"big{round_number}")
                pid = tool.start_daemon()
                subprocess.run(["sync"], check=True)
                ours_times.append(
                    timed([*tool.base, "transfer", "big", f"{url}/big.bin", str(out / "bits.bin")], env=tool.env)
                )
                rss_big = peak_rss_mib(pid)
                if (out / "bits.bin").stat().st_size != big:
                    failures.append("bitscli's big file has the wrong size")
                (out / "bits.bin").unlink()
                subprocess.run(["sync"], check=True)
                hashed_times.append(timed([*tool.base, "transfer", "hashed", f"{url}/big.bin", str(out / "bits.bin"),
                                           "--sha256", digest], env=tool.env))  # fmt: skip
                tool.stop_daemon()
                (out / "bits.bin").unlink()
            curl, durable, ours = (statistics.median(x) for x in (curl_times, curl_durable, ours_times))
            hashed, curl_sum = statistics.median(hashed_times), statistics.median(curl_hashed)
            results.append((f"curl -o {args.big_mib} MiB", curl, "1.00"))
            results.append((f"curl -o {args.big_mib} MiB, then sync", durable, f"{durable / curl:.2f}"))
            results.append((f"bitscli transfer {args.big_mib} MiB", ours, f"{ours / curl:.2f}"))
            results.append((f"curl -o {args.big_mib} MiB, then sha256sum", curl_sum, f"{curl_sum / curl:.2f}"))
            results.append((f"bitscli transfer --sha256 {args.big_mib} MiB", hashed, f"{hashed / curl:.2f}"))
            if hashed > ours * 1.10:
                failures.append(f"--sha256 costs {hashed / ours - 1:.0%} of the transfer's time (target < 10%)")
            if ours > curl * 1.05:
                failures.append(f"{args.big_mib} MiB transfer is {ours / curl:.2f}x curl (target <= 1.0)")

            tool = Bitscli(root, "mid")
            pid = tool.start_daemon()
            timed([*tool.base, "transfer", "mid", f"{url}/mid.bin", str(out / "mid.bin")], env=tool.env)
            rss_mid = peak_rss_mib(pid)
            tool.stop_daemon()

            # 2. Many small files: one process each, as a script would run them.
            listing = root / "list.txt"
            listing.write_text("".join(f"{url}/small/f{i}\n" for i in range(args.small)))
            pairs = [w for i in range(args.small) for w in (f"{url}/small/f{i}", f"{out}/bits/f{i}")]
            wget_times, aria_times, small_times = [], [], []
            for round_number in range(args.rounds):
                for name in ("wget", "aria2", "bits"):
                    shutil.rmtree(out / name, ignore_errors=True)
                (out / "bits").mkdir()
                subprocess.run(["sync"], check=True)
                wget_times.append(timed(["wget", "-q", "-i", str(listing), "-P", str(out / "wget")]))
                subprocess.run(["sync"], check=True)
                aria_times.append(timed(["aria2c", "-q", "-i", str(listing), "-d", str(out / "aria2")]))
                tool = Bitscli(root, f"small{round_number}")
                tool.start_daemon()
                subprocess.run(["sync"], check=True)
                small_times.append(timed([*tool.base, "transfer", "small", *pairs], env=tool.env))
                tool.stop_daemon()
                if len(list((out / "bits").iterdir())) != args.small:
                    failures.append("bitscli did not deliver every small file")
            wget, aria, small = (statistics.median(x) for x in (wget_times, aria_times, small_times))
            results.append((f"wget -i {args.small} x 16 KiB", wget, "1.00"))
            results.append((f"aria2c -i {args.small} x 16 KiB", aria, f"{aria / wget:.2f}"))
            results.append((f"bitscli transfer {args.small} x 16 KiB", small, f"{small / wget:.2f}"))
            if small > aria:
                failures.append(f"small files: {small:.2f} s vs aria2c {aria:.2f} s (target: no slower)")
            if small > 2 * wget:
                failures.append(f"small files: {small / wget:.2f}x wget (target <= 2x)")
        finally:
            server.terminate()
            server.wait()
    print(f"median of {args.rounds} rounds; ratios against curl (big file) and wget (small files)")
    print(f"{'case':<40}{'seconds':>9}{'ratio':>8}")
    for name, seconds, ratio in results:
        print(f"{name:<40}{seconds:>9.2f}{ratio:>8}")
    print(rounds_line({"curl": curl_times, "bitscli": ours_times, "bitscli --sha256": hashed_times}))
    print(rounds_line({"wget": wget_times, "aria2c": aria_times, "bitscli": small_times}))
    print(f"daemon peak RSS: {rss_mid:.1f} MiB for 100 MiB, {rss_big:.1f} MiB for {args.big_mib} MiB")
    if max(rss_mid, rss_big) > 80:
        failures.append("daemon peak RSS over 80 MiB")
    return report(failures)


def rounds_line(named: dict[str, list[float]]) -> str:
    """Every round's seconds, not just the median: identical runs on a VM can differ by 2x."""
    return "rounds (s): " + "; ".join(f"{name} " + " ".join(f"{x:.2f}" for x in xs) for name, xs in named.items())


def report(failures: list[str]) -> int:
    """Print the missed targets; the exit status says whether every target was met."""
    for failure in failures:
        print(f"MISSED: {failure}")
    print("all targets met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
