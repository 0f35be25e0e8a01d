"""Quick retries: a transfer cut off after making progress resumes at once, a few times, before the retry delay."""

from __future__ import annotations

import logging

from bitscli.daemon.control import JobControl
from bitscli.transfer.classify import TransferError

log = logging.getLogger("bitscli.daemon")

QUICK_RETRIES = 3  # a response cut off after progress is resumed at once this many times (as wget, aria2)
QUICK_BACKOFF = 0.5  # seconds, doubled on each quick retry


class QuickRetries:
    """A transfer cut off after making progress resumes at once, a few times, before the job's retry delay."""

    def __init__(self, control: JobControl) -> None:
        self.control = control
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def again(self, err: TransferError, advanced: bool) -> bool:
        """True: resume now (after a short back-off). False: record the error (a stop meanwhile is not one)."""
        if not (err.transient and advanced and self.count < QUICK_RETRIES):
            return False
        self.count += 1
        log.info("job %s: %s; resuming at once (%d/%d)", self.control.job_id, err.message, self.count, QUICK_RETRIES)
        return not self.control.stopping.wait(QUICK_BACKOFF * 2 ** (self.count - 1))
