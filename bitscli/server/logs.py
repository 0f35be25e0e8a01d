"""The server's log: one stderr handler whose lines are rate-limited per kind, so no client can fill a disk."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

BURST = 10  # lines of one kind let through in each period
PERIOD = 60.0


class RateLimit(logging.Filter):
    """At most ``burst`` records of each kind (logger and message template) a period, only the first with its
    traceback; the next one let through says how many were left out. Access-log lines, which the operator asked
    for, are not limited."""

    def __init__(self, burst: int = BURST, period: float = PERIOD, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.burst, self.period, self.clock = burst, period, clock
        self._kinds: dict[tuple[str, str], list[float | int]] = {}  # kind -> [period start, let through, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access":
            return True
        now = self.clock()
        kind = (record.name, _template(record))
        count = self._kinds.get(kind)
        if count is None or now - count[0] >= self.period:
            left_out = int(count[2]) if count else 0
            if len(self._kinds) > 1000:  # kinds are few; a flood of distinct ones must not grow this
                self._kinds.clear()
            self._kinds[kind] = [now, 1, 0]
            if left_out:
                record.msg = f"{record.msg} ({left_out} more like this were left out of the log)"
            return True
        if count[1] < self.burst:
            count[1] += 1
            record.exc_info = record.exc_text = None  # the period's first record of this kind showed the traceback
            return True
        count[2] += 1
        return False


def _template(record: logging.LogRecord) -> str:
    """The unformatted message; asyncio's exception reports put their variable details after the first line."""
    return str(record.msg).split("\n", 1)[0][:200]


def configure(access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    level = logging.INFO if access_log else logging.WARNING
    for name in ("bitscli.serve", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logging.getLogger(name).setLevel(level)
