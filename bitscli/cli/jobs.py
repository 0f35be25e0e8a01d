"""Commands that create jobs, add files and move jobs through their states."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bitscli import output
from bitscli.cli.params import AllUsersOpt, JobArg, JobsArg, JsonOpt, RawOpt, context
from bitscli.errors import BitsError, ExitCode, InvalidValue, TransferFailed
from bitscli.inputs.fields import hash_options, parse_priority
from bitscli.inputs.names import redact_url
from bitscli.model import JobType
from bitscli.service import completion, jobs

app = typer.Typer()
_PANEL = "Jobs"

RemoteArg = Annotated[str, typer.Argument(metavar="REMOTE", help="http(s):// or file:// URL, or an absolute path.")]
LocalArg = Annotated[str, typer.Argument(metavar="LOCAL", help="Absolute local path.")]


@app.command("create", rich_help_panel=_PANEL)
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Display name for the job.")],
    download: Annotated[bool, typer.Option("--download", help="A download job (the default).")] = False,
    upload: Annotated[bool, typer.Option("--upload", help="An upload job (exactly one file).")] = False,
    upload_reply: Annotated[bool, typer.Option("--upload-reply", help="An upload whose reply is downloaded.")] = False,
    priority: Annotated[str, typer.Option("--priority", help="FOREGROUND, HIGH, NORMAL or LOW.")] = "NORMAL",
    raw: RawOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a job in the SUSPENDED state and print its GUID.

    Example: bitscli create --download nightly-images
    """
    if download + upload + upload_reply > 1:
        raise InvalidValue("choose one of --download, --upload and --upload-reply")
    job_type = JobType.UPLOAD if upload else JobType.UPLOAD_REPLY if upload_reply else JobType.DOWNLOAD
    job = jobs.create_job(context(), name, job_type, parse_priority(priority))
    if as_json:
        output.info(job, verbose=True, as_json=True)
    elif raw:
        sys.stdout.write(job.id)
    else:
        output.line(f"Created job {job.id}.")


@app.command("addfile", rich_help_panel=_PANEL)
def addfile(
    job: JobArg,
    remote: RemoteArg,
    local: LocalArg,
    sha256: Annotated[
        str | None, typer.Option("--sha256", metavar="HEX", help="The file's SHA-256: it counts only if it matches.")
    ] = None,
    hash_: Annotated[
        str | None, typer.Option("--hash", metavar="ALGO:HEX", help="As --sha256: sha256, sha512, sha1 or md5.")
    ] = None,
    if_changed: Annotated[
        bool, typer.Option("--if-changed", help="Fetch only if the server's copy differs from the local file.")
    ] = False,
) -> None:
    """Add one file to a job.

    Example: bitscli addfile nightly https://example.org/a.iso /srv/images/a.iso --sha256 9f86d0...
    """
    expected = hash_options(sha256, hash_)
    spec = jobs.FileSpec(remote, local, expected_hash=expected, if_changed=if_changed)
    updated, added = jobs.add_files(context(), job, [spec])
    output.line(f"Added {redact_url(added[0].remote_name)} -> {added[0].local_name} to job {updated.id}.")


@app.command("addfileset", rich_help_panel=_PANEL)
def addfileset(
    job: JobArg,
    listfile: Annotated[
        str, typer.Argument(metavar="LISTFILE", help="A file of 'REMOTE LOCAL [ALGO:HEX]' lines, or - for stdin.")
    ],
) -> None:
    """Add every file listed in LISTFILE, all or none: 'REMOTE LOCAL [sha256:HEX]' per line, # for comments.

    Example: bitscli addfileset nightly files.txt
    """
    from bitscli.inputs.names import decode_listfile

    try:
        if listfile == "-":  # bytes, to see a byte-order mark; a text stream stands in for stdin in tests
            stdin = getattr(sys.stdin, "buffer", None)
            raw = stdin.read() if stdin is not None else sys.stdin.read().encode()
        else:
            raw = Path(listfile).read_bytes()
    except OSError as exc:
        raise InvalidValue(f"cannot read {listfile}: {exc.strerror}") from None
    text = decode_listfile(raw, "standard input" if listfile == "-" else listfile)
    specs = jobs.fileset_specs(text.splitlines())
    if not specs:
        raise InvalidValue(f"{listfile} lists no files", hint="write one 'REMOTE LOCAL' pair per line")
    updated, added = jobs.add_files(context(), job, specs)
    output.line(f"Added {len(added)} file(s) to job {updated.id}.")


@app.command("addfilewithranges", rich_help_panel=_PANEL)
def addfilewithranges(
    job: JobArg,
    remote: RemoteArg,
    local: LocalArg,
    ranges: Annotated[str, typer.Argument(metavar="RANGES", help="offset:length,... (the last length may be eof).")],
) -> None:
    """Add a file of which only the given byte ranges are downloaded.

    Example: bitscli addfilewithranges nightly https://example.org/a.iso /srv/a.part 0:1024,4096:eof
    """
    updated, added = jobs.add_files(context(), job, [jobs.FileSpec(remote, local, ranges)])
    output.line(
        f"Added {redact_url(added[0].remote_name)} -> {added[0].local_name} ({len(added[0].ranges)} range(s)) "
        f"to job {updated.id}."
    )


@app.command("replaceremoteprefix", rich_help_panel=_PANEL)
def replaceremoteprefix(
    job: JobArg,
    old: Annotated[str, typer.Argument(metavar="OLD", help="The prefix to replace.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="Its replacement.")],
) -> None:
    """Rewrite the remote name of every file that starts with OLD.

    Example: bitscli replaceremoteprefix nightly http://old-mirror/ https://new-mirror/
    """
    updated, count = jobs.replace_remote_prefix(context(), job, old, new)
    output.line(f"{count} remote name(s) changed in job {updated.id}.")


NoDaemonOpt = Annotated[
    bool, typer.Option("--no-daemon-start", help="Do not start the daemon (also: BITSCLI_NO_AUTOSTART=1).")
]


def _each(refs: list[str], act: Callable[[str], tuple[str, str]]) -> int:
    """Act on each job in turn; ``act`` returns (GUID, what happened). One job speaks as before (``Job resumed.``);
    several each get a line with their GUID, a failure is reported and the rest go on, and the exit status is
    the first failure's."""
    if len(refs) == 1:
        output.line(f"Job {act(refs[0])[1]}.")
        return ExitCode.OK
    failed: list[BitsError] = []
    for ref in refs:
        try:
            job_id, outcome = act(ref)
        except BitsError as exc:
            output.bits_error(exc)
            failed.append(exc)
            continue
        output.line(f"Job {job_id} {outcome}.")
    return failed[0].exit_code if failed else ExitCode.OK


@app.command("resume", rich_help_panel=_PANEL)
def resume(refs: JobsArg, no_daemon_start: NoDaemonOpt = False) -> int:
    """Queue jobs for transfer (from SUSPENDED, ERROR or TRANSIENT_ERROR); starts the daemon if needed.

    Example: bitscli resume nightly
    """
    ctx = context()
    code = _each(refs, lambda ref: (jobs.resume(ctx, ref).id, "resumed"))
    if not no_daemon_start:
        from bitscli.daemon import spawn

        spawn.ensure_running()
    return code


@app.command("suspend", rich_help_panel=_PANEL)
def suspend(refs: JobsArg) -> int:
    """Pause jobs; their progress is kept.

    Example: bitscli suspend nightly weekly
    """
    ctx = context()
    return _each(refs, lambda ref: (jobs.suspend(ctx, ref).id, "suspended"))


@app.command("cancel", rich_help_panel=_PANEL)
def cancel(refs: JobsArg) -> int:
    """Cancel jobs and delete their partial and unpublished files.

    Example: bitscli cancel nightly
    """
    ctx = context()
    return _each(refs, lambda ref: (jobs.cancel(ctx, ref).id, "canceled"))


@app.command("complete", rich_help_panel=_PANEL)
def complete(refs: JobsArg) -> int:
    """Finish jobs: move their transferred files to their final names, drop unfinished ones.

    Example: bitscli complete nightly
    """
    ctx = context()

    def one(ref: str) -> tuple[str, str]:
        result = completion.complete(ctx, ref)
        if result.total and not result.kept:
            # Completed (as BITS does), but a script must not take "nothing kept" for success.
            raise TransferFailed(
                f"job {result.job.id} was completed, but none of its {result.total} file(s) had been transferred: "
                "nothing was kept",
                hint="look before you complete: bitscli info JOB --verbose (or bitscli wait JOB)",
            )
        if result.partial:  # BG_S_PARTIAL_COMPLETE is a success code in BITS; the message says what was dropped
            return result.job.id, f"partially completed: {result.kept} of {result.total} file(s) kept"
        return result.job.id, "completed"

    return _each(refs, one)


@app.command("reset", rich_help_panel=_PANEL)
def reset(
    all_users: AllUsersOpt = False,
) -> None:
    """Cancel all of your jobs.

    Example: bitscli reset
    """
    cancelled, total = jobs.reset(context())
    for job in cancelled:
        output.line(f"{job.id} canceled.")
    output.line(f"{len(cancelled)} out of {total} jobs canceled.")
