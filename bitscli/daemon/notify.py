"""Notification command lines (bits.md §6): run on TRANSFERRED or ERROR, again after the retry delay on failure."""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass

from bitscli.model import Job, JobState, NotifyFlags

log = logging.getLogger("bitscli.daemon")
TIMEOUT_SECONDS = 600.0  # a handler that hangs this long counts as failed and runs again later
_STATE_FLAGS = {JobState.TRANSFERRED: NotifyFlags.JOB_TRANSFERRED, JobState.ERROR: NotifyFlags.JOB_ERROR}


@dataclass(frozen=True)
class Launch:
    """One run of a job's command line, for the state the job is in."""

    job_id: str
    state: JobState
    argv: tuple[str, ...]
    program: str
    what: str = "notification command"  # for the log: a notification command line, or a [hooks] command


def due(job: Job, now: float) -> Launch | None:
    """The command line to run for this job now, or None (not set, not wanted, done, or waiting to retry)."""
    flag = _STATE_FLAGS.get(job.state)
    if job.notify_program is None or flag is None or job.notify_flags & NotifyFlags.DISABLE:
        return None
    if not job.notify_flags & flag or job.notified_state == int(job.state):
        return None
    if job.notify_retry_at is not None and now < job.notify_retry_at:
        return None
    # The parameters are the whole command line (BITS's lpCommandLine): token 0 is argv[0], whatever it says; the
    # program itself runs, never a PATH search. No parameters: argv[0] is the program.
    argv = tuple(shlex.split(job.notify_parameters or "")) or (job.notify_program,)
    return Launch(job.id, job.state, argv, job.notify_program)


def run(launch: Launch) -> int | None:
    """Run the command line without a shell; its exit status (None: it could not run, or was killed at its
    timeout). Every run is logged (an audit trail), and recorded in the event log."""
    log.info("job %s: running %s %s for %s", launch.job_id, launch.what, shlex.join(launch.argv),
             launch.state.name)  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "BITSCLI_JOB_ID": launch.job_id,
        "BITSCLI_JOB_STATE": launch.state.name,
    }
    if "BITSCLI_HOME" in os.environ:  # so a handler's `bitscli complete` reaches the same queue
        env["BITSCLI_HOME"] = os.environ["BITSCLI_HOME"]
    try:
        finished = subprocess.run(
            list(launch.argv), executable=launch.program, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        log.warning("job %s: %s still running after %.0f s; killed", launch.job_id, launch.what, TIMEOUT_SECONDS)
        return None
    except OSError as exc:
        log.warning("job %s: cannot run %s %s: %s", launch.job_id, launch.what, launch.program, exc.strerror)
        return None
    if finished.returncode != 0:
        tail = finished.stderr.decode(errors="replace").strip()[-300:]
        log.warning("job %s: %s exited %d: %s", launch.job_id, launch.what, finished.returncode, tail)
    return finished.returncode


def record(job: Job, launch: Launch, succeeded: bool, now: float) -> Job:
    """Success marks the state as notified; a failure runs it again after the retry delay (bits.md §6)."""
    if job.state is not launch.state:
        return job  # the job moved on meanwhile; its new state decides
    if succeeded:
        return dataclasses.replace(job, notified_state=int(launch.state), notify_retry_at=None)
    return dataclasses.replace(job, notify_retry_at=now + job.min_retry_delay)
