"""A fleet given one job at the same minute: the real start-jitter and retry code under an injected clock.

Run: python benchmarks/fleet.py [--clients 10000] [--capacity 200] [--jitter 900]
Each simulated client resumes its job at the same moment (cron's 03:00, give or take the clocks' skew); bitscli's
own code decides when it first asks the server (actions.start_delay) and when it asks again after a 503
(daemon.transitions.failed, with its spread). The server answers at most CAPACITY requests a second and 503 to the
rest. Printed, with and without jitter: the peak requests a second the server sees and the time until every client
has its file (issue 11).
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bitscli import actions
from bitscli.daemon import transitions
from bitscli.model import ErrorContext, Job, JobType

MIN_RETRY_DELAY = 60  # seconds: setminretrydelay on the fleet's job
BUSY = 0x80190000 + 503


def simulate(clients: int, capacity: int, jitter: int, spread: bool, skew: float, seed: int) -> tuple[int, float, int]:
    """(peak requests a second, seconds until all are served, requests in all)."""
    rng = random.Random(seed)
    template = Job(id="", display_name="fleet", type=JobType.DOWNLOAD, owner="", creation_time=0.0,
                   modification_time=0.0, min_retry_delay=MIN_RETRY_DELAY, start_jitter=jitter)  # fmt: skip
    pending: list[tuple[float, int]] = []
    for client in range(clients):
        resumed = rng.uniform(0, skew)  # cron's 03:00 on every machine, give or take their clocks' skew
        heapq.heappush(pending, (resumed + actions.start_delay(template, 0, rng.random()), client))
    per_second: Counter[int] = Counter()
    jobs = dict.fromkeys(range(clients), template)
    served_at = 0.0
    requests = 0
    while pending:
        at, client = heapq.heappop(pending)
        second = int(at)
        per_second[second] += 1
        requests += 1
        if per_second[second] <= capacity:
            served_at = max(served_at, at)
            continue
        job = transitions.failed(jobs[client], 0, BUSY, ErrorContext.REMOTE_FILE, "503", True, at, None,
                                 rng.random() if spread else 0.0)  # fmt: skip
        jobs[client] = job
        assert job.retry_at is not None
        heapq.heappush(pending, (job.retry_at, client))
    return max(per_second.values()), served_at, requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--capacity", type=int, default=200)
    parser.add_argument("--jitter", type=int, default=900)
    parser.add_argument("--skew", type=float, default=2.0, help="seconds between the first and last resume")
    args = parser.parse_args()
    print(f"{args.clients} clients resumed within {args.skew:g} s; the server answers {args.capacity} requests/s, "
          f"503 to the rest; retry delay {MIN_RETRY_DELAY} s")  # fmt: skip
    print(f"{'case':<40} {'peak req/s':>10} {'all served after':>17} {'requests':>9}")
    cases = (("no start jitter, no retry spread", 0, False), ("retry spread only", 0, True),
             (f"start jitter {args.jitter} s, retry spread", args.jitter, True))  # fmt: skip
    for name, jitter, spread in cases:
        peak, done, requests = simulate(args.clients, args.capacity, jitter, spread, args.skew, seed=1)
        print(f"{name:<40} {peak:>10} {done:>15.0f} s {requests:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
