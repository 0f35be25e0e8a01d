"""The rate a job may use now, from pure rules on the daemon's clock: for now, the job's own cap."""

from __future__ import annotations

from bitscli.model import Job


def rate_for(job: Job, now: float) -> float:
    """Bytes a second for ``job`` at ``now`` (0: no limit). Its own cap applies at every priority."""
    return float(job.max_bandwidth)
