"""Arguments and options shared by the command modules, and the service context they open."""

from typing import Annotated

import typer

from bitscli.service.context import Context, open_context

JobArg = Annotated[str, typer.Argument(metavar="JOB", help="The job's GUID ({...}, braces optional) or display name.")]
JobsArg = Annotated[
    list[str], typer.Argument(metavar="JOB...", help="One or more jobs, each by GUID ({...}, braces optional) or name.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the schema is documented in README).")]
RawOpt = Annotated[bool, typer.Option("--raw", help="Print the bare value without a newline (like /RAWRETURN).")]
IndexArg = Annotated[int, typer.Argument(metavar="INDEX", min=0, help="The file's index in the job, from 0.")]


def _refuse_all_users(value: bool) -> bool:
    if value:
        from bitscli.errors import NotSupported

        raise NotSupported(
            "--all-users (/ALLUSERS) is not supported: the queue is per-user, so other users' jobs are in their own",
            hint="run the command as that user, or as root with BITSCLI_HOME set to their state directory",
        )
    return value


AllUsersOpt = Annotated[
    bool,
    typer.Option(
        "--all-users", callback=_refuse_all_users, help="Refused: the queue is per-user (BitsAdmin's /ALLUSERS)."
    ),
]


_opened: list[Context] = []
_left_open: list[Context] = []  # referenced until the process exits: dropping one would close it


def context() -> Context:
    """The command's service context; ``close()`` releases it when the command ends."""
    if not _opened:
        _opened.append(open_context())
    return _opened[0]


def close(checkpoint: bool = True) -> None:
    """Close the queue; a command that changed it wakes the daemon (which would notice within its poll anyway).

    With ``checkpoint=False`` (the process exits next) the connection is left for the exit to drop. Closing
    the last connection copies the WAL into the database and deletes it: three more fsyncs, and a WAL the next
    command creates again, a tenth of a short command's time. Every commit is already durable in the WAL
    (synchronous=FULL), an exit without closing is one SQLite is made to survive at any moment, and the
    WAL is copied back once it grows past wal_autocheckpoint, or when the daemon, which keeps it open, stops.
    """
    wrote = False
    while _opened:
        ctx = _opened.pop()
        wrote = wrote or ctx.queue.writes > 0
        if checkpoint:
            ctx.queue.close()
        else:
            _left_open.append(ctx)
    if wrote:
        from bitscli.daemon import wakeup

        wakeup.nudge()
