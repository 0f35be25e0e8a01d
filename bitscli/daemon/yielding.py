"""Yielding to other traffic (LEDBAT, RFC 6817): back off as the path's queueing delay passes a target."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from bitscli.transfer.tcpinfo import Delay

log = logging.getLogger("bitscli.daemon")

# RFC 6817 §2.5.1 puts TARGET at 100 ms at most; 50 ms keeps a call's or a game's delay low while leaving the
# path's queue enough to keep the link busy.
TARGET = 0.025
INTERVAL = 0.1  # seconds between two decisions: a few round trips of a broadband path
BASE_MINUTES = 10  # base delay: the lowest delay of each of the last 10 minutes (RFC 6817 §3.4.2, BASE_HISTORY)
GROW = 0.3  # the most the limit grows in one interval, as a fraction, when no queue is seen
SHRINK = 0.5  # the most it shrinks in one interval, when the queue is at twice the target or more
MIN_WINDOW = 16 * 1024  # a download's smallest receive window: a few segments, so that delays go on being measured
MIN_RATE = 16 * 1024  # an upload's lowest rate, for the same reason
RELEASE = 4.0  # a limit this many times above what flows limits nothing: it is lifted

Sample = Callable[[], "tuple[object, Delay] | None"]  # the connection in use (its peer) and its delays, or None
SetWindow = Callable[[int | None], None]  # the receive window of the connection in use (None: the largest)


class Yielder:
    """One job's delay-based controller, driven by the transfer's own reads or sends (``moved``) on an injected
    clock: no thread, no sleep.

    A download limits its receive window, as receiver-driven LEDBAT does (RFC 9840): the reads stay unpaced, so
    the kernel goes on measuring the delay (Linux measures a receiver's delay only while its receive queue is
    empty), and the sender's flight shrinks within a round trip. An upload paces its sends (``rate()``); the
    kernel measures a sender's delay from every acknowledgement.
    """

    def __init__(
        self, sample: Sample, monotonic: Callable[[], float], receiving: bool, job_id: str = "",
        set_window: SetWindow | None = None,
    ) -> None:  # fmt: skip
        self._sample = sample
        self._monotonic = monotonic
        self._receiving = receiving
        self._job_id = job_id
        self._set_window = set_window or (lambda window: None)
        self._limit = 0.0  # a download's window in bytes, an upload's rate in bytes a second; 0: no limit
        self._since: float | None = None
        self._bytes = 0
        self._last: tuple[object, Delay] | None = None  # the previous sample: an unchanged one is not a measurement
        self._minima: dict[object, deque[tuple[int, float]]] = {}  # per peer: (minute, lowest delay)
        self.signal = True  # False once the kernel gave no delay: this job then does not yield (logged once)
        self.queueing = 0.0  # the last queueing delay seen, in seconds
        self.measured = 0  # fresh delays seen so far

    def rate(self) -> float:
        """An upload's pace (0: none); a download is never paced by yielding (its window is the limit)."""
        return 0.0 if self._receiving else self._limit

    def window(self) -> int | None:
        return int(self._limit) if self._receiving and self._limit else None

    def reset(self) -> None:
        """Yielding was turned off (a FOREGROUND priority, the policy): no limit, and a fresh start later."""
        if self._limit and self._receiving:
            self._set_window(None)
        self._limit, self._since, self._bytes, self._last = 0.0, None, 0, None

    def limiting(self) -> bool:
        return self._limit > 0

    def moved(self, nbytes: int) -> None:
        now = self._monotonic()
        if self._since is None:
            self._since, self._bytes = now, 0
            return
        self._bytes += nbytes
        elapsed = now - self._since
        if elapsed < INTERVAL or not self.signal:
            return
        throughput = self._bytes / elapsed
        self._since, self._bytes = now, 0
        taken = self._sample()
        if taken is None:
            return  # between connections, or a path without a socket (file://)
        peer, delays = taken
        delay = delays.rcv_rtt if self._receiving else delays.rtt
        if delay <= 0:
            if delays.rtt <= 0 and delays.rcv_rtt <= 0 and delays.min_rtt <= 0:
                self._no_signal()
            return  # the kernel has not measured this direction yet
        fresh, self._last = taken != self._last, taken
        if fresh:  # else no segment came to be measured: the limit holds
            self.measured += 1
            self._decide(peer, delay, delays.min_rtt, throughput, now)

    def _no_signal(self) -> None:
        self.signal = False
        self.reset()
        log.warning("job %s: the kernel reports no round-trip times for this connection: not yielding to "
                    "other traffic", self._job_id)  # fmt: skip

    def _decide(self, peer: object, delay: float, kernel_min: float, throughput: float, now: float) -> None:
        # The kernel's own minimum (the handshake's, at the latest) bounds the base from below: a transfer that
        # begins on a full queue would otherwise take that queue for the path.
        base = self._base(peer, delay, now)
        if kernel_min > 0:
            base = min(base, kernel_min)
        self.queueing = max(0.0, delay - base)
        off_target = max(-1.0, (TARGET - self.queueing) / TARGET)  # 1: no queue; -1: twice the target or more
        # What flows now, as a window (bytes in flight over this round trip) or as a rate.
        flowing = throughput * delay if self._receiving else throughput
        floor = MIN_WINDOW if self._receiving else MIN_RATE
        if self._limit == 0:
            if off_target >= 0:
                return  # no limit, and no queue beyond the target: a fast, idle path is never throttled
            self._limit = max(floor, flowing)  # start from what flows now
        if off_target < 0:
            self._limit = max(floor, self._limit * (1 + SHRINK * off_target))
        else:
            self._limit *= 1 + GROW * off_target
            if self._limit > RELEASE * max(flowing, floor):
                self._limit = 0.0  # the path, or the server, is slower than the limit: it limits nothing
        if self._receiving:
            self._set_window(self.window())

    def _base(self, peer: object, delay: float, now: float) -> float:
        minute = int(now // 60)
        minima = self._minima.setdefault(peer, deque(maxlen=BASE_MINUTES))
        if minima and minima[-1][0] == minute:
            minima[-1] = (minute, min(minima[-1][1], delay))
        else:
            minima.append((minute, delay))
        return min(low for _, low in minima)
