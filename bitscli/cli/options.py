"""Arguments and options shared by the command modules, and the service context they open."""

from typing import Annotated

import typer

from bitscli import service

JobArg = Annotated[str, typer.Argument(metavar="JOB", help="The job's GUID ({...}, braces optional) or display name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the schema is documented in README).")]
RawOpt = Annotated[bool, typer.Option("--raw", help="Print the bare value without a newline (like /RAWRETURN).")]
IndexArg = Annotated[int, typer.Argument(metavar="INDEX", min=0, help="The file's index in the job, from 0.")]


_opened: list[service.Context] = []


def context() -> service.Context:
    """The command's service context; ``close()`` releases it when the command ends."""
    if not _opened:
        _opened.append(service.open_context())
    return _opened[0]


def close() -> None:
    """Close the queue; a command that changed it wakes the daemon (which would notice within its poll anyway)."""
    wrote = False
    while _opened:
        queue = _opened.pop().queue
        wrote = wrote or queue.writes > 0
        queue.close()
    if wrote:
        from bitscli import wakeup

        wakeup.nudge()
