"""The daemon's one rate limiter: every worker's reads and sends pass it, each job paced at the rate in force."""

from __future__ import annotations

from collections.abc import Callable

from bitscli.transfer.types import CHUNK

BURST_SECONDS = 0.1  # a job may run ahead of its rate by this much of a second's allowance, no more
MIN_READ = 4096  # a paced read is never smaller: below it the system calls cost more than they save
RECEIVE_BUFFER_SECONDS = 0.25  # a paced socket's receive buffer holds this much: the kernel's own burst
MAX_PACED_BUFFER = 4 << 20  # above this the kernel's own buffer tuning is left alone


class Bandwidth:
    """The rate each running job may use now, in bytes a second (0: no limit), set by the loop at each tick.

    The loop composes the rates (the job's own cap, and the policy later) from pure rules on its clock; the
    workers only read them, so a change reaches a running transfer within a tick.
    """

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}
        self._yielding: frozenset[str] = frozenset()

    def set_rates(self, rates: dict[str, float], yielding: frozenset[str] = frozenset()) -> None:
        """The rates in force, and the jobs that yield to other traffic (yielding.py): background jobs, unless
        the policy says ``yield = false``."""
        self._rates = dict(rates)  # replaced whole: a worker never sees half an update
        self._yielding = yielding

    def rate(self, job_id: str) -> float:
        return self._rates.get(job_id, 0.0)

    def yields(self, job_id: str) -> bool:
        return job_id in self._yielding

    def receive_buffer(self, job_id: str) -> int | None:
        """SO_RCVBUF for a new connection of this job: small enough that a low rate does not arrive in bursts."""
        rate = self.rate(job_id)
        if not rate or rate * RECEIVE_BUFFER_SECONDS >= MAX_PACED_BUFFER:
            return None
        return max(MIN_READ, int(rate * RECEIVE_BUFFER_SECONDS))


class Pacer:
    """A token bucket for one job: ``take(n)`` after each read or send of n bytes sleeps until they are due.

    Reading slower is what slows the sender: TCP's flow control closes the window as the receive buffer fills.
    ``wait(seconds)`` sleeps and returns True when the job must stop; ``monotonic`` is the clock the rate is
    measured on (both injected, so tests run on a fake clock).
    """

    def __init__(
        self, rate: Callable[[], float], monotonic: Callable[[], float], wait: Callable[[float], bool]
    ) -> None:
        self._rate = rate
        self._monotonic = monotonic
        self._wait = wait
        self._tokens = 0.0
        self._last: float | None = None

    def take(self, nbytes: int) -> int:
        """Account for ``nbytes`` just moved, sleeping as long as they are early; returns the next read's size."""
        rate = self._rate()
        if rate <= 0:
            self._last = None
            return CHUNK
        burst = rate * BURST_SECONDS
        now = self._monotonic()
        if self._last is None:
            self._last, self._tokens = now, burst  # a fresh start may use one burst at once
        self._tokens = min(burst, self._tokens + (now - self._last) * rate) - nbytes
        self._last = now
        if self._tokens < 0 and not self._wait(-self._tokens / rate):
            now = self._monotonic()
            self._tokens = min(burst, self._tokens + (now - self._last) * rate)
            self._last = now
        return max(MIN_READ, min(CHUNK, int(burst)))
