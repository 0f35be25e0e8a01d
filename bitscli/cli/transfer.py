"""transfer (create, run and complete a job in one command) and wait (block until a job finishes)."""

import signal
from typing import Annotated

import typer

from bitscli import liveview, output
from bitscli.cli.params import JobsArg, context
from bitscli.errors import InvalidValue
from bitscli.inputs.fields import hash_options, parse_acl_flags, parse_priority, parse_rate
from bitscli.model import JobType
from bitscli.service import follow, jobs

app = typer.Typer()
_PANEL = "Jobs"


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
    max_bandwidth: Annotated[
        str | None, typer.Option("--max-bandwidth", metavar="RATE", help="Cap the job's rate: 20MB, 512KiB, 1.5M.")
    ] = None,
    no_daemon_start: Annotated[bool, typer.Option("--no-daemon-start", help="Do not start the daemon.")] = False,
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar="HEX", help="The one file's SHA-256; kept only if it matches.")
    ] = None,
    hash_: Annotated[str | None, typer.Option("--hash", metavar="ALGO:HEX", help="As --sha256, any algorithm.")] = None,
    if_changed: Annotated[
        bool, typer.Option("--if-changed", help="Fetch each file only if the server's copy changed (304: kept).")
    ] = False,
    bitsadmin_output: Annotated[bool, typer.Option("--bitsadmin-output", hidden=True)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job document (no progress).")] = False,
) -> None:
    """Create a job, transfer it, wait and complete it; a fatal error cancels it (exit 10), Ctrl-C too (130).

    Example: bitscli transfer nightly https://example.org/a.iso /srv/a.iso
    """
    if download + upload + upload_reply > 1:
        raise InvalidValue("choose one of --download, --upload and --upload-reply")
    if len(pairs) % 2:
        raise InvalidValue("files come in pairs: REMOTE LOCAL [REMOTE LOCAL]...")
    job_type = JobType.UPLOAD if upload else JobType.UPLOAD_REPLY if upload_reply else JobType.DOWNLOAD
    specs = [jobs.FileSpec(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    expected = hash_options(sha256, hash_)
    if expected is not None:
        if len(specs) != 1:
            raise InvalidValue("--sha256 and --hash check a single file: give one REMOTE LOCAL pair")
        specs = [jobs.FileSpec(specs[0].remote, specs[0].local, expected_hash=expected)]
    settings: dict[str, object] = {}  # every value checked before the job exists
    if acl_flags is not None:
        settings["acl_flags"] = parse_acl_flags(acl_flags)
    if max_bandwidth is not None:
        settings["max_bandwidth"] = parse_rate(max_bandwidth)
    if if_changed:
        settings["if_changed"] = True
    ctx = context()
    # SIGTERM (what `timeout` and service managers send) ends a transfer as Ctrl-C does: the job is cancelled,
    # exit 130. Before, it left the job QUEUED behind a command that had ended.
    signal.signal(signal.SIGTERM, _interrupt)
    job, daemon_runs = follow.start_transfer(
        ctx, name, job_type, parse_priority(priority), specs, dynamic, start_daemon=not no_daemon_start, **settings
    )
    if not daemon_runs:
        output.warning("no daemon runs for this queue, so the job waits in QUEUED; start one: bitscli daemon start")
    view: liveview.TransferView | liveview.BitsadminProgress | liveview.Quiet = (
        liveview.Quiet() if as_json else liveview.BitsadminProgress() if bitsadmin_output else liveview.TransferView()
    )
    try:
        result, final = follow.finish_transfer(ctx, job.id, view.update)
    finally:
        view.close()
    if as_json:
        output.info(result.job, verbose=False, as_json=True)  # as complete left it: ACKNOWLEDGED
    elif bitsadmin_output:  # /TRANSFER: what BitsAdmin prints, for the scripts that read it
        output.line("Transfer complete.")
    else:
        output.line(f"Transfer complete: {result.kept} file(s), {final.bytes_transferred} bytes.")
    if job_type is JobType.UPLOAD_REPLY:
        from bitscli.service import replies

        if not as_json:
            output.line(f"Reply saved to {replies.reply_file(result.job)}.")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command("wait", rich_help_panel=_PANEL)
def wait(
    job: JobsArg,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Give up after SECONDS (exit 12).")] = None,
    any_one: Annotated[
        bool, typer.Option("--any/--all", help="Return when the first job ends, or when all have [all].")
    ] = False,
    no_daemon_start: Annotated[
        bool, typer.Option("--no-daemon-start", help="Do not start the daemon: exit 11 if the job needs one.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job document (no progress).")] = False,
) -> None:
    """Block until the jobs are TRANSFERRED (exit 0) or one is in ERROR (exit 10), for scripts; starts the daemon
    if needed. With several jobs: --all (the default) waits for every one, --any for the first to end.

    Example: bitscli wait nightly && bitscli complete nightly
    """
    several = len(set(job)) > 1
    view: liveview.TransferView | liveview.Quiet = liveview.Quiet() if as_json else liveview.TransferView(several)
    try:
        finals = follow.wait(context(), job, view.update, timeout, start_daemon=not no_daemon_start, any_one=any_one)
    finally:
        view.close()
    if as_json and not several:
        output.info(finals[0], verbose=False, as_json=True)
    elif as_json:
        output.jobs(finals, verbose=False, as_json=True)
    else:
        for final in finals:
            state = final.state.name.lower()
            output.line(f"Job {final.id} ({final.display_name}) {state}." if several else f"Job {state}.")
