"""transfer (create, run and complete a job in one command) and wait (block until a job finishes)."""

import contextlib
import time
from typing import Annotated

import typer

from bitscli import liveview, output, service
from bitscli.cli.options import JobArg, context
from bitscli.errors import BitsError, ExitCode, InvalidState, InvalidValue
from bitscli.model import Job, JobState, JobType
from bitscli.values import parse_acl_flags, parse_priority

app = typer.Typer()
_PANEL = "Jobs"
# How often the queue's data_version (a cheap read) is checked for the daemon's commits: a fiftieth of the time
# followed so far, between these bounds. A small job ends within milliseconds, and is not kept waiting up to
# 20 ms more for the check (a tenth of a 1-byte transfer); a long one is checked 50 times a second.
WAKE_SECONDS = (0.002, 0.02)
REFRESH_SECONDS = 0.5  # the progress line is redrawn at least this often, for its rate and ETA


@app.command("transfer", rich_help_panel=_PANEL)
def transfer(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Display name for the job.")],
    pairs: Annotated[list[str], typer.Argument(metavar="REMOTE LOCAL [REMOTE LOCAL]...", help="Files to transfer.")],
    download: Annotated[bool, typer.Option("--download", help="Download (the default).")] = False,
    upload: Annotated[bool, typer.Option("--upload", help="Upload one file.")] = False,
    upload_reply: Annotated[bool, typer.Option("--upload-reply", help="Upload one file and fetch the reply.")] = False,
    priority: Annotated[str, typer.Option("--priority", help="FOREGROUND, HIGH, NORMAL or LOW.")] = "NORMAL",
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic content: no HEAD, no ranges.")] = False,
    acl_flags: Annotated[str | None, typer.Option("--acl-flags", help="OGDS letters (file:// sources).")] = None,
    no_daemon_start: Annotated[bool, typer.Option("--no-daemon-start", help="Do not start the daemon.")] = False,
) -> None:
    """Create a job, transfer it, wait and complete it; a fatal error cancels it (exit 10), Ctrl-C too (130).

    Example: bitscli transfer nightly https://example.org/a.iso /srv/a.iso
    """
    if download + upload + upload_reply > 1:
        raise InvalidValue("choose one of --download, --upload and --upload-reply")
    if len(pairs) % 2:
        raise InvalidValue("files come in pairs: REMOTE LOCAL [REMOTE LOCAL]...")
    job_type = JobType.UPLOAD if upload else JobType.UPLOAD_REPLY if upload_reply else JobType.DOWNLOAD
    specs = [service.FileSpec(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    acl = parse_acl_flags(acl_flags) if acl_flags is not None else None  # every value checked before the job exists
    ctx = context()
    job = service.create_transfer(ctx, name, job_type, parse_priority(priority), specs, dynamic)
    if acl is not None:
        service.set_properties(ctx, job.id, acl_flags=acl)
    from bitscli import wakeup

    if not wakeup.nudge():  # a daemon that takes the nudge starts the job now, not at its next poll
        from bitscli import instance, spawn

        if not no_daemon_start:
            spawn.ensure_running()
        if instance.running() is None:
            output.warning("no daemon runs for this queue, so the job waits in QUEUED; start one: bitscli daemon start")
    try:
        final = _follow(ctx, job.id)
    except KeyboardInterrupt:
        _cancel_quietly(ctx, job.id)
        output.error(f"interrupted; job {job.id} was cancelled")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    if final.state is JobState.TRANSFERRED:
        result = service.complete(ctx, job.id)
        output.line(f"Transfer complete: {result.kept} file(s), {final.bytes_transferred} bytes.")
        if job_type is JobType.UPLOAD_REPLY:
            from bitscli import replies

            output.line(f"Reply saved to {replies.reply_file(result.job)}.")
        return
    if final.state is not JobState.CANCELLED:
        _cancel_quietly(ctx, job.id)
    output.error(_failure(final), "see 'bitscli daemon log' for details")
    raise typer.Exit(ExitCode.TRANSFER_FAILED)


def _follow(ctx: service.Context, job_id: str, timeout: float | None = None) -> Job:
    """Show progress until the job is TRANSFERRED, in ERROR or finished; TRANSIENT_ERROR keeps waiting."""
    view = liveview.TransferView()
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    seen, ended, refresh_at = None, False, 0.0
    try:
        while True:
            version = service.queue_version(ctx)
            if version != seen:  # the daemon commits often: read only the state, not every file of the job
                seen, ended = version, _ended(service.job_state(ctx, job_id))
            if ended or time.monotonic() >= refresh_at:
                refresh_at = time.monotonic() + REFRESH_SECONDS
                job = service.get_job(ctx, job_id)
                view.update(job)
                if _ended(job.state):
                    return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _Timeout(job)
            time.sleep(min(max((time.monotonic() - started) / 50, WAKE_SECONDS[0]), WAKE_SECONDS[1]))
    finally:
        view.close()


def _ended(state: JobState | None) -> bool:
    """Where `transfer` and `wait` stop following; None (the job is gone) is settled by loading it."""
    return state is None or state in (JobState.TRANSFERRED, JobState.ERROR) or state.is_final


class _Timeout(Exception):
    def __init__(self, job: Job) -> None:
        self.job = job


def _failure(job: Job) -> str:
    detail = f": {job.error.message}" if job.error else ""
    return f"job {job.id} ended in {job.state.name}{detail}"


def _cancel_quietly(ctx: service.Context, job_id: str) -> None:
    with contextlib.suppress(BitsError):  # already finished or cancelled by someone else
        service.cancel(ctx, job_id)


@app.command("wait", rich_help_panel=_PANEL)
def wait(
    job: JobArg,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Give up after SECONDS (exit 12).")] = None,
) -> None:
    """Block until the job is TRANSFERRED (exit 0) or in ERROR (exit 10), for scripts.

    Example: bitscli wait nightly && bitscli complete nightly
    """
    ctx = context()
    found = service.get_job(ctx, job)
    if found.state is JobState.SUSPENDED:
        raise InvalidState(f"job {found.id} is SUSPENDED and will not finish", hint=f"bitscli resume {found.id}")
    try:
        final = _follow(ctx, found.id, timeout)
    except _Timeout as late:
        output.error(f"job {found.id} is still {late.job.state.name} after {timeout:g} s")
        raise typer.Exit(ExitCode.TIMEOUT) from None
    if final.state in (JobState.TRANSFERRED, JobState.ACKNOWLEDGED):
        output.line(f"Job {final.state.name.lower()}.")
        return
    output.error(_failure(final))
    raise typer.Exit(ExitCode.TRANSFER_FAILED)
