"""The daemon command group: start, stop, status, run (foreground) and log."""

import logging
import os
import sys
import time
from typing import Annotated

import typer

from bitscli import config, output, paths
from bitscli.errors import ExitCode

app = typer.Typer()
group = typer.Typer(help="Run, inspect and stop the background daemon that moves the bytes.")
app.add_typer(group, name="daemon", rich_help_panel="Daemon")


@group.command("start")
def start() -> None:
    """Start the daemon in the background (resume and transfer do this by themselves).

    Example: bitscli daemon start
    """
    from bitscli import instance, spawn

    before = instance.running()
    running = spawn.start()
    output.line(f"Daemon {'already running' if before else 'started'} (pid {running.pid}).")


@group.command("stop")
def stop() -> None:
    """Stop the daemon; running jobs go back to QUEUED with their progress saved.

    Example: bitscli daemon stop
    """
    from bitscli import spawn

    output.line("Daemon stopped." if spawn.stop() else "Daemon is not running.")


@group.command("status")
def status() -> None:
    """Show whether the daemon runs, its pid, uptime, queue and active jobs (exit 11 when it does not run).

    Example: bitscli daemon status
    """
    from bitscli import instance, service
    from bitscli.cli.options import context
    from bitscli.lifecycle import ACTIVE

    running = instance.running()
    if running is None:
        output.line("Daemon is not running.")
        raise typer.Exit(ExitCode.DAEMON)
    active = [j for j in service.list_jobs(context()) if j.state in ACTIVE]
    uptime = int(time.time() - running.started)
    output.line(
        f"Daemon running (pid {running.pid}), up {uptime // 3600}h{uptime % 3600 // 60:02d}m{uptime % 60:02d}s."
    )
    output.line(f"Queue: {paths.queue_path()}")
    output.line(f"Log: {instance.log_path()}")
    output.line(f"Active jobs: {len(active)}")
    for job in active:
        output.line(output.job_line(job))


@group.command("run")
def run(
    slice_seconds: Annotated[
        float, typer.Option("--slice", min=1.0, help="Seconds each background job of equal priority runs in turn.")
    ] = 300.0,
) -> None:
    """Run the daemon in the foreground (for systemd, containers, or to watch its log).

    Example: bitscli daemon run
    """
    from filelock import FileLock, Timeout

    from bitscli import instance, libc, wakeup
    from bitscli.clock import SystemClock
    from bitscli.daemon import Daemon

    paths.ensure_private_dir(paths.state_dir())
    lock = FileLock(instance.lock_path(), mode=0o600)
    try:
        lock.acquire(timeout=2)  # a short wait: `daemon status` may be probing the lock right now
    except Timeout:
        running = instance.running()
        output.line(f"A daemon is already running for this queue (pid {running.pid if running else '?'}).")
        return
    wake: wakeup.Listener | None = None
    try:
        instance.write_pid()
        instance.setup_logging(to_stderr=sys.stderr.isatty())
        libc.keep_io_buffers()
        # Import the transfer stack now, so the first job does not wait for it.
        from bitscli.transfer import client, http, local, options, ranges  # noqa: F401

        settings = config.load()
        wake = wakeup.Listener()
        daemon = Daemon(
            paths.queue_path(), SystemClock(), slice_seconds, settings.job_inactivity_days * 86_400,
            settings.allow_notify_command_line, wake,
        )  # fmt: skip

        def terminate() -> None:
            daemon.stop_event.set()
            wakeup.nudge()  # the loop may be waiting for a nudge: this is one

        instance.on_termination(terminate)
        logging.getLogger("bitscli.daemon").info("daemon started, pid %s, queue %s", os.getpid(), paths.queue_path())
        daemon.run()
    finally:
        if wake is not None:
            wake.close()
        instance.remove_pid()
        lock.release()


@group.command("log")
def log(lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many lines to show.")] = 40) -> None:
    """Show the end of the daemon's log.

    Example: bitscli daemon log -n 100
    """
    from bitscli import instance

    try:
        text = instance.log_path().read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        output.line("The daemon has not written a log yet.")
        return
    for entry in text.splitlines()[-lines:]:
        output.line(entry)
