"""Quick retries: a transfer cut off after making progress resumes at once, a few times, before the retry delay."""

from __future__ import annotations

import logging

from bitscli.daemon.control import JobControl
from bitscli.daemon.journal import Moved
from bitscli.transfer.classify import TransferError

log = logging.getLogger("bitscli.daemon")

QUICK_RETRIES = 3  # attempts in a row without a new byte that are resumed at once (as wget, aria2)
QUICK_BACKOFF = 0.5  # seconds, doubled on each quick retry without a new byte


class QuickRetries:
    """A transfer cut off after moving bytes resumes at once: always when it brought new bytes, a few times when not.

    An attempt that got past the file's high-water mark resets the count, so a link that drops every few megabytes
    still finishes without waiting out the retry delay; attempts that only fetched bytes again (after a restart
    from zero) count, and a failure before any byte moved waits the retry delay as BITS does.
    """

    def __init__(self, control: JobControl) -> None:
        self.control = control
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def again(self, err: TransferError, moved: Moved) -> bool:
        """True: resume now (after a short back-off). False: record the error (a stop meanwhile is not one)."""
        if not err.transient or not moved.written:
            return False
        if moved.new:
            self.count = 0
            delay = QUICK_BACKOFF
        elif self.count < QUICK_RETRIES:
            self.count += 1
            delay = QUICK_BACKOFF * 2 ** (self.count - 1)
        else:
            return False
        log.info("job %s: %s; resuming at once", self.control.job_id, err.message)
        return not self.control.stopping.wait(delay)
