"""Commands that show jobs: info, list and listfiles."""

from typing import Annotated

import typer

from bitscli import output, policy
from bitscli.cli.params import AllUsersOpt, JobArg, JsonOpt, context
from bitscli.inputs.fields import parse_state
from bitscli.model import ACTIVE_STATES
from bitscli.service import jobs

app = typer.Typer()
_PANEL = "Views"

VerboseOpt = Annotated[bool, typer.Option("--verbose", help="The full /INFO /VERBOSE block for each job.")]


@app.command("info", rich_help_panel=_PANEL)
def info(job: JobArg, verbose: VerboseOpt = False, as_json: JsonOpt = False) -> None:
    """Show one job: a summary line, or every property with --verbose.

    Example: bitscli info nightly --verbose
    """
    ctx = context()
    found = jobs.get_job(ctx, job)
    allowed = None
    if found.state in ACTIVE_STATES:  # the daemon has work for it: say what rate the policy gives it now
        now = ctx.clock.now()
        allowed = policy.allowed(ctx.config.bandwidth, found, now)
        if found.not_before is not None and found.not_before > now:
            allowed = policy.Allowed(0, "its start jitter", found.not_before, waiting_for="its start jitter")
    output.info(found, verbose=verbose, as_json=as_json, allowed=allowed)


@app.command("list", rich_help_panel=_PANEL)
def list_(
    verbose: VerboseOpt = False,
    include_final: Annotated[
        bool,
        typer.Option("--all", help="Include finished (ACKNOWLEDGED and CANCELLED) jobs still in history."),
    ] = False,
    all_users: AllUsersOpt = False,
    as_json: JsonOpt = False,
    states: Annotated[
        list[str] | None,
        typer.Option("--state", metavar="STATE", help="Only jobs in this state (repeat it, or STATE,STATE)."),
    ] = None,
) -> None:
    """List your jobs, oldest first.

    Example: bitscli list --state ERROR,TRANSIENT_ERROR --json
    """
    wanted = {parse_state(name) for value in states or () for name in value.split(",") if name.strip()}
    # A finished state asked for by name is shown without --all: that is what was asked.
    found = jobs.list_jobs(context(), include_final=include_final or any(s.is_final for s in wanted))
    output.jobs([j for j in found if not wanted or j.state in wanted], verbose=verbose, as_json=as_json)


@app.command("listfiles", rich_help_panel=_PANEL)
def listfiles(job: JobArg, as_json: JsonOpt = False) -> None:
    """List a job's files with their progress.

    Example: bitscli listfiles nightly
    """
    output.files(jobs.get_job(context(), job), as_json=as_json)


@app.command("monitor", rich_help_panel=_PANEL)
def monitor(
    refresh: Annotated[float, typer.Option("--refresh", min=0.1, help="Seconds between redraws (BitsAdmin: 5).")] = 5.0,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many redraws.")] = None,
    all_users: AllUsersOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A stream: one job document per line for each job that changed.")
    ] = False,
) -> None:
    """Watch every job: state, files, bytes, rate, progress and last error, until q or Ctrl-C.

    Example: bitscli monitor --refresh 1
    """
    from bitscli import keys, liveview

    view: liveview.Monitor | liveview.JsonStream = liveview.JsonStream() if as_json else liveview.Monitor(refresh)
    ctx = context()
    shown = 0
    try:
        with keys.listening() as pressed:
            while count is None or shown < count:
                if shown and pressed.wait(refresh) in ("q", "Q"):
                    break
                found = jobs.list_jobs(ctx)
                now = ctx.clock.now()
                allowed = {j.id: policy.allowed(ctx.config.bandwidth, j, now) for j in found
                           if j.state in ACTIVE_STATES}  # fmt: skip
                view.show(found, allowed)
                shown += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a monitor ends
    finally:
        view.close()
