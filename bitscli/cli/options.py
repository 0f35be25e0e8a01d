"""Arguments and options shared by the command modules, and the service context they open."""

from typing import Annotated

import typer

from bitscli import service

JobArg = Annotated[str, typer.Argument(metavar="JOB", help="The job's GUID ({...}, braces optional) or display name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the schema is documented in README).")]
RawOpt = Annotated[bool, typer.Option("--raw", help="Print the bare value without a newline (like /RAWRETURN).")]
IndexArg = Annotated[int, typer.Argument(metavar="INDEX", min=0, help="The file's index in the job, from 0.")]


def context() -> service.Context:
    return service.open_context()
