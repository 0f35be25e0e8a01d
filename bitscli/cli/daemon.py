"""The daemon command group: start, stop, status, run (foreground) and log."""

import time
from typing import Annotated

import typer

from bitscli import output, paths
from bitscli.errors import DaemonError

app = typer.Typer()
group = typer.Typer(help="Run, inspect and stop the background daemon that moves the bytes.")
app.add_typer(group, name="daemon", rich_help_panel="Daemon")


@group.command("start")
def start() -> None:
    """Start the daemon in the background (resume and transfer do this by themselves).

    Example: bitscli daemon start
    """
    from bitscli.daemon import process, spawn

    before = process.running()
    running = spawn.start()
    output.line(f"Daemon {'already running' if before else 'started'} (pid {running.pid}).")


@group.command("stop")
def stop() -> None:
    """Stop the daemon; running jobs go back to QUEUED with their progress saved.

    Example: bitscli daemon stop
    """
    from bitscli.daemon import spawn

    output.line("Daemon stopped." if spawn.stop() else "Daemon is not running.")


@group.command("status")
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status document (README), running or not.")
    ] = False,
) -> None:
    """Show whether the daemon runs, its pid, uptime, queue and active jobs (exit 11 when it does not run).

    Example: bitscli daemon status
    """
    from bitscli.cli.params import context
    from bitscli.daemon import process
    from bitscli.model import ACTIVE_STATES
    from bitscli.service import jobs

    running = process.running()
    active = [j for j in jobs.list_jobs(context()) if j.state in ACTIVE_STATES] if running else []
    if as_json:
        output.document({
            "running": running is not None, "pid": running.pid if running and running.pid > 0 else None,
            "started": output.iso_time(running.started) if running else None,
            "uptime_seconds": int(time.time() - running.started) if running else None,
            "queue": str(paths.queue_path()), "log": str(process.log_path()),
            "active_jobs": [output.job_json(j) for j in active],
        })  # fmt: skip
    if running is None:
        if not as_json:
            output.line("Daemon is not running.")
        raise DaemonError("no daemon runs for this queue", hint="start one: bitscli daemon start")
    if as_json:
        return
    uptime = int(time.time() - running.started)
    output.line(
        f"Daemon running (pid {running.pid}), up {uptime // 3600}h{uptime % 3600 // 60:02d}m{uptime % 60:02d}s."
    )
    output.line(f"Queue: {paths.queue_path()}")
    output.line(f"Log: {process.log_path()}")
    output.line(f"Active jobs: {len(active)}")
    for job in active:
        output.line(output.job_line(job))


@group.command("run")
def run(
    slice_seconds: Annotated[
        float, typer.Option("--slice", min=1.0, help="Seconds each background job of equal priority runs in turn.")
    ] = 300.0,
) -> None:
    """Run the daemon in the foreground (for systemd, containers, or to watch its log); exit 11 if one runs.

    Example: bitscli daemon run
    """
    from bitscli.daemon import process

    other = process.run_foreground(slice_seconds)
    if other is not None:
        # Not a success: under systemd, exit 0 would say the service finished, and nothing would be supervised.
        raise DaemonError(
            f"a daemon is already running for this queue (pid {other.pid if other.pid > 0 else '?'})",
            hint="stop it first (bitscli daemon stop), then run this one; resume and transfer start one when none runs",
        )


@group.command("unit")
def unit() -> None:
    """Print a systemd user unit that runs this bitscli's daemon (with BITSCLI_HOME, when it is set).

    Example: bitscli daemon unit > ~/.config/systemd/user/bitscli.service
    """
    import shlex
    import sys

    from bitscli.daemon import process

    exec_start = shlex.join([sys.executable, "-m", "bitscli", "daemon", "run"])
    sys.stdout.write(process.unit(exec_start, paths.home_override()))


@group.command("log")
def log(lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many lines to show.")] = 40) -> None:
    """Show the end of the daemon's log.

    Example: bitscli daemon log -n 100
    """
    from bitscli.daemon import process

    try:
        text = process.log_path().read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        output.line("The daemon has not written a log yet.")
        return
    for entry in text.splitlines()[-lines:]:
        output.line(entry)
