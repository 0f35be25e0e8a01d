"""The queue command group: check the queue file, and recover the jobs a damaged one still holds."""

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from bitscli import output, paths
from bitscli.cli.params import JsonOpt
from bitscli.errors import ExitCode

app = typer.Typer()
group = typer.Typer(help="Check the queue file, and recover the jobs of a damaged one.")
app.add_typer(group, name="queue", rich_help_panel="Setup")


@group.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(metavar="[FILE]", help="The queue file to check (default: the one in use).")
    ] = None,
    as_json: JsonOpt = False,
) -> int:
    """Check the queue: SQLite's integrity and foreign-key checks, the schema version, every row readable.

    Exit 0 when it is healthy, 7 (and what is wrong) when not. Safe while the daemon runs.

    Example: bitscli queue check
    """
    from bitscli import queuecheck

    report = queuecheck.check(file or paths.queue_path())
    healthy = not report.problems
    if as_json:
        document = {
            "path": str(report.path), "healthy": healthy, "schema_version": report.schema_version,
            "jobs": report.jobs, "files": report.files, "problems": report.problems,
        }  # fmt: skip
        output.line(json.dumps(document, indent=2))
    else:
        schema = "unknown" if report.schema_version is None else str(report.schema_version)
        output.line(f"Queue: {report.path}")
        output.line(f"Schema: {schema}; {report.jobs} jobs, {report.files} files")
        for problem in report.problems:
            output.line(f"problem: {output.printable(problem)}")
        output.line("The queue is healthy." if healthy else f"{len(report.problems)} problems found.")
    if healthy:
        return ExitCode.OK
    output.error("the queue is not healthy", "bitscli queue recover keeps every job that can still be read")
    return ExitCode.QUEUE


@group.command("recover")
def recover(
    as_json: JsonOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even a file whose header names another program or a newer schema.")
    ] = False,
) -> None:
    """Rebuild the queue from what a damaged one still holds, and move the damaged file aside.

    The daemon must be stopped. Uses the sqlite3 shell's .recover where it is installed and works, else reads
    the rows one by one, skipping what cannot be read; prints which jobs were kept and which were lost.

    Example: bitscli daemon stop && bitscli queue recover
    """
    from bitscli import salvage
    from bitscli.daemon import process

    with process.stopped():
        report = salvage.recover(paths.queue_path(), shutil.which("sqlite3"), force)
    if as_json:
        document = {
            "path": str(report.path), "moved_to": str(report.moved_to), "method": report.method,
            "kept": [{"id": job_id, "name": name} for job_id, name in report.kept],
            "lost": [{"id": x.job_id, "name": x.name, "seq": x.seq, "why": x.why} for x in report.lost],
            "notes": report.notes,
        }  # fmt: skip
        output.line(json.dumps(document, indent=2))
        return
    output.line(f"Moved the damaged queue to {report.moved_to}")
    output.line(f"Read with: {output.printable(report.method)}")
    output.line(f"Kept {len(report.kept)} jobs; lost {len(report.lost)}.")
    for job_id, name in report.kept:
        output.line(f"  kept {job_id} {output.printable(name)}")
    for lost in report.lost:
        label = f"{lost.job_id or '(GUID unreadable)'} {output.printable(lost.name or '(name unreadable)')}"
        output.line(f"  lost {label}: {output.printable(lost.why)}")
    for note in report.notes:
        output.line(f"note: {output.printable(note)}")
