"""Live terminal views, part of output: one job's transfer progress, and the monitor of every job."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bitscli.inputs.fields import format_rate
from bitscli.inputs.names import redact_text
from bitscli.model import UNKNOWN, Job, JobState
from bitscli.output import (
    JSON_SCHEMA_VERSION,
    allowed_json,
    allowed_text,
    human_size,
    job_json,
    job_line,
    line,
    printable,
)
from bitscli.policy import Allowed


def _transient(job: Job) -> str:
    """Why a job waits in TRANSIENT_ERROR, and when it tries again: `` - connection refused; next try 14:05:10``."""
    if job.state.name != "TRANSIENT_ERROR" or job.error is None:
        return ""
    when = f"next try {time.strftime('%H:%M:%S', time.localtime(job.retry_at))}" if job.retry_at else "retrying"
    return f" - {job.error.message}; {when}"


class TransferView:
    """Progress of one job: a rich bar with rate and ETA on a terminal, plain lines when piped."""

    PLAIN_EVERY = 5.0  # seconds between plain progress lines while nothing else changes

    def __init__(self, several: bool = False) -> None:
        self._several = several  # several jobs: a bar each, and plain lines that start with the job's name
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, tuple[str, str, float]] = {}  # job -> (its last plain line, its state then, when)
        if sys.stdout.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True), _rate_column(),
                TimeRemainingColumn(elapsed_when_finished=True),  # a finished bar shows how long it took
            )  # fmt: skip
            self._bar.start()

    def update(self, job: Job) -> None:
        total = None if job.bytes_total == UNKNOWN else job.bytes_total
        if total is None and job.state.name in ("TRANSFERRED", "ACKNOWLEDGED"):
            total = job.bytes_transferred  # a body of unknown length is complete now: the bar ends full
        if self._bar is not None:
            description = f"{job.display_name} {job.state.name}{_transient(job)}"
            task = self._tasks.get(job.id)
            if task is None:
                task = self._tasks[job.id] = self._bar.add_task(
                    description, total=total, completed=job.bytes_transferred, first=job.bytes_transferred
                )  # fmt: skip
            self._bar.update(task, completed=job.bytes_transferred, total=total, description=description)
            return
        percent = f" ({100 * job.bytes_transferred // total}%)" if total else ""
        text = (
            f"{job.state.name} {job.files_transferred} / {job.files_total} files, {human_size(job.bytes_transferred)}"
        )
        text += f" / {human_size(job.bytes_total)}{percent}"
        text += _transient(job)
        if self._several:
            text = f"{printable(job.display_name)}: {text}"
        now = time.monotonic()
        last_line, last_state, last_time = self._last.get(job.id, ("", "", 0.0))
        if text != last_line and (job.state.name != last_state or now - last_time >= self.PLAIN_EVERY):
            line(text)
            self._last[job.id] = (text, job.state.name, now)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class Quiet:
    """No progress at all: `--json` prints only the final document."""

    def update(self, job: Job) -> None:
        pass

    def close(self) -> None:
        pass


class BitsadminProgress:
    """/TRANSFER's progress as BitsAdmin prints it, a line per change (at most one a second but for a new state):
    ``DISPLAY: 'name' STATE: TRANSFERRING FILES: 0 / 1 BYTES: 26895 / 2009296 (1%)``."""

    EVERY = 1.0

    def __init__(self) -> None:
        self._last: tuple[str, int] | None = None
        self._last_time = 0.0

    def update(self, job: Job) -> None:
        total = "UNKNOWN" if job.bytes_total == UNKNOWN else str(job.bytes_total)
        percent = f" ({100 * job.bytes_transferred // job.bytes_total}%)" if job.bytes_total > 0 else ""
        now = time.monotonic()
        key = (job.state.name, job.bytes_transferred)
        if key == self._last or (self._last and self._last[0] == key[0] and now - self._last_time < self.EVERY):
            return
        line(f"DISPLAY: '{job.display_name}' STATE: {job.state.name} FILES: {job.files_transferred} / "
             f"{job.files_total} BYTES: {job.bytes_transferred} / {total}{percent}")  # fmt: skip
        self._last, self._last_time = key, now

    def close(self) -> None:
        pass


class JsonStream:
    """`monitor --json`: JSON Lines, one job document (as `info --json` has it) per job each time it changes,
    and once for a job that left the list (``"removed": true``)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def show(self, jobs: list[Job], allowed: dict[str, Allowed] | None = None) -> None:
        current: dict[str, str] = {}
        for job in jobs:
            document = job_json(job)
            if allowed and job.id in allowed:
                document["allowed_rate"] = allowed_json(allowed[job.id])
            text = json.dumps({"schema": JSON_SCHEMA_VERSION, "job": document}, ensure_ascii=False)
            current[job.id] = text
            if self._seen.get(job.id) != text:
                line(text)
        for gone in self._seen.keys() - current.keys():
            line(json.dumps({"schema": JSON_SCHEMA_VERSION, "job": {"id": gone}, "removed": True}))
        self._seen = current
        sys.stdout.flush()  # a stream: the reader sees each line when it happens

    def close(self) -> None:
        pass


def _rate_column() -> Any:
    """The transfer rate in the same binary units as the byte counts (rich's own column shows MB/s); a finished
    bar shows its average rate, not ``?``."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.finished and task.elapsed:  # the bytes this bar saw move, not those done before it began
                rate = (task.completed - task.fields.get("first", 0)) / task.elapsed
            else:
                rate = task.speed
            return Text(f"{human_size(int(rate))}/s" if rate is not None else "", style="progress.data.speed")

    return RateColumn()


RATE_WINDOW = 5.0  # seconds a monitor's rate is averaged over


class Monitor:
    """All jobs, redrawn every refresh: a live table on a terminal, BitsAdmin-style blocks when piped."""

    def __init__(self, refresh: float) -> None:
        self.refresh = refresh
        self._samples: dict[str, list[tuple[int, float]]] = {}  # job -> (bytes, time) of recent redraws
        self._live: Any = None
        if sys.stdout.isatty():
            from rich.live import Live

            self._live = Live(auto_refresh=False)
            self._live.start()
        else:
            line(f"MONITORING BACKGROUND COPY MANAGER({self.refresh:g} second refresh)")

    def show(self, jobs: list[Job], allowed: dict[str, Allowed] | None = None) -> None:
        """Redraw; ``allowed``: what the bandwidth policy gives each job the daemon has work for."""
        rates = self._rates(jobs)
        allowed = allowed or {}
        if self._live is None:
            for job in jobs:  # the same fields on every line: the /LIST line, the rate, the bandwidth policy
                rate = f"{human_size(int(rates.get(job.id) or 0))}/s"
                line(f"{job_line(job)} | {rate} | {_policy_text(allowed.get(job.id))}")
            line("")
            sys.stdout.flush()
            return
        self._live.update(self._table(jobs, rates, allowed), refresh=True)

    def _rates(self, jobs: list[Job]) -> dict[str, float]:
        """Each job's rate over the last RATE_WINDOW seconds: the daemon records bytes at checkpoints, so a rate
        over one short refresh swings above a job's cap and below it (12 MiB/s for a 10 MiB/s cap)."""
        now = time.monotonic()
        rates = {}
        for job in jobs:
            samples = self._samples.setdefault(job.id, [])
            samples.append((job.bytes_transferred, now))
            while len(samples) > 2 and now - samples[1][1] >= RATE_WINDOW:
                samples.pop(0)  # keep one sample at or before the window's start
            first_bytes, first_time = samples[0]
            if now > first_time:
                rates[job.id] = max(0.0, (job.bytes_transferred - first_bytes) / (now - first_time))
        return rates

    def _table(self, jobs: list[Job], rates: dict[str, float], allowed: dict[str, Allowed]) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        width = self._live.console.width
        # The GUID stays whole and the state unabbreviated; more columns as the terminal allows.
        columns = ["GUID", "STATE", *(["FILES", "RATE"] if width >= 100 else []), "BYTES",
                   *(["PROGRESS"] if width >= 160 else []), "NAME"]  # fmt: skip
        title = f"bitscli monitor ({self.refresh:g} s; q quits)"
        table = Table(box=None, header_style="bold", pad_edge=False, title=title)
        for title in columns:
            last = title == "NAME"
            width = {"GUID": 38, "NAME": 8}.get(title)
            table.add_column(title, no_wrap=not last, overflow="fold" if last else "ellipsis", min_width=width)
        for job in jobs:
            total = None if job.bytes_total == UNKNOWN else job.bytes_total
            note = job.display_name
            if job.error is not None and job.state in (JobState.ERROR, JobState.TRANSIENT_ERROR):
                note += f": {job.error.message}"
            rate = rates.get(job.id)
            percent = f" {100 * job.bytes_transferred // total}%" if total else ""
            cells: dict[str, Any] = {
                "GUID": job.id,
                "STATE": job.state.name,
                "FILES": f"{job.files_transferred}/{job.files_total}",
                "RATE": _rate_cell(rate, allowed.get(job.id)),
                "BYTES": f"{human_size(job.bytes_transferred)}/{human_size(job.bytes_total)}{percent}",
                "PROGRESS": ProgressBar(total=total or 1, completed=job.bytes_transferred if total else 0, width=20),
                "NAME": redact_text(note),
            }
            table.add_row(*(cells[c] for c in columns))
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


def _policy_text(allowed: Allowed | None) -> str:
    """What the bandwidth policy lets a job use: ``-`` (no work for the daemon), ``no cap``, ``cap 2 MiB/s: ...``."""
    if allowed is None:
        return "-"
    yields = "; yields" if allowed.yields else ""
    if allowed.rate is None:
        return f"no cap{yields}"
    if allowed.rate == 0:
        return allowed_text(allowed).strip("()")
    return f"cap {format_rate(allowed.rate)}: {allowed.why}{yields}"


def _rate_cell(rate: float | None, allowed: Allowed | None) -> str:
    """The rate seen, and the cap beside it: ``1.9 MiB/s (cap 2 MiB/s)``, ``(waiting)``; the reasons are in
    the piped lines and in ``info``."""
    seen = f"{human_size(int(rate))}/s" if rate else ""
    if allowed is None or allowed.rate is None:
        return f"{seen} (yields)".strip() if allowed is not None and allowed.yields else seen
    if allowed.rate == 0:
        return f"{seen} (waiting)".strip()
    return f"{seen} (cap {format_rate(allowed.rate)})".strip()
