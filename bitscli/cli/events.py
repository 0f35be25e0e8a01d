"""events: what happened to jobs and when, from the queue's event log; --follow streams it as it happens."""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from typing import Annotated, Any

import typer

from bitscli import output
from bitscli.cli.params import context
from bitscli.errors import InvalidValue, format_hresult
from bitscli.events import Event

app = typer.Typer()
_PANEL = "Jobs"
FOLLOW_SECONDS = 0.2  # how often --follow looks at the queue's data_version (one cheap read, no rows)
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@app.command("events", rich_help_panel=_PANEL)
def events(
    job: Annotated[str | None, typer.Argument(metavar="[JOB]", help="Only this job (GUID or name).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing events as they happen.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line (JSON Lines).")] = False,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="From TIME: RFC 3339, or 30s, 10m, 2h, 1d ago.")
    ] = None,
) -> None:
    """What happened and when: jobs created, state changes with their errors, retries and their delay, notification
    command lines and their exit status; kept for the queue's history (queue.history_days).

    Example: bitscli events nightly --follow --json
    """
    from bitscli.service import jobs

    ctx = context()
    job_id = jobs.get_job(ctx, job).id if job is not None else None
    start = _since(since)
    seq = 0
    try:
        while True:
            version = jobs.queue_version(ctx)
            with ctx.queue.read() as tx:
                found = tx.events(job_id, seq, start)
            for event in found:
                output.line(json.dumps(_document(event), ensure_ascii=False) if as_json else _text(event))
                seq = event.seq
            if not follow:
                return
            sys.stdout.flush()  # a pipe reader (jq, a dashboard) sees each batch as it comes
            while jobs.queue_version(ctx) == version:  # nothing committed since: wait, no rows read
                time.sleep(FOLLOW_SECONDS)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    ago = _AGO.match(text)
    if ago:
        return time.time() - float(ago.group(1)) * _UNITS[ago.group(2).lower()]
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(
            f"--since {text!r} is not a time", hint="give RFC 3339 (2026-11-30T08:00:00+00:00) or 30s, 10m, 2h, 1d"
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _document(event: Event) -> dict[str, Any]:
    error = None
    if event.code is not None:
        error = {"code": f"0x{event.code & 0xFFFFFFFF:08x}", "message": event.message}  # as in a job's error
    return {
        "schema": output.JSON_SCHEMA_VERSION, "seq": event.seq, "time": output.iso_time(event.time),
        "job": {"id": event.job_id, "name": event.name}, "event": event.kind, "from": event.from_state,
        "to": event.to_state, "error": error, **event.detail,
    }  # fmt: skip


def _text(event: Event) -> str:
    head = f"{output.iso_time(event.time)} {event.job_id} '{output.printable(event.name)}' {event.kind.upper()}"
    if event.kind == "notify":
        status = event.detail.get("exit_status")
        return f"{head} {event.to_state} command line " + ("did not finish" if status is None else f"exit {status}")
    text = f"{head} {event.from_state} -> {event.to_state}" if event.from_state else f"{head} {event.to_state}"
    if event.code is not None:
        text += f" {format_hresult(event.code)} - {output.printable(event.message or '')}"
    if "retry_in" in event.detail:
        text += f"; next try in {event.detail['retry_in']:g} s"
    return text
