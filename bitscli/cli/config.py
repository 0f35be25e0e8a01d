"""The config command group: check a config file and print the policy in force now."""

import time
from pathlib import Path
from typing import Annotated

import typer

from bitscli import config, output, paths, policy
from bitscli.model import Job, JobPriority, JobType

app = typer.Typer()
group = typer.Typer(help="Check the configuration file and the bandwidth policy it sets.")
app.add_typer(group, name="config", rich_help_panel="Setup")


@group.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(metavar="[FILE]", help="The file to check (default: the one in use).")
    ] = None,
) -> None:
    """Validate a config file (exit 8 and the reason when it is not valid) and print the policy for now.

    Example: bitscli config check ~/.config/bitscli/config.toml
    """
    path = file or paths.config_file()
    settings = config.load(path)  # a ConfigError says what is wrong, and exits 8
    exists = path.exists()
    output.line(f"Config file: {path} ({'valid' if exists else 'absent: the defaults apply'})")
    output.line(
        f"Limits: {settings.max_jobs_per_user} jobs, {settings.max_files_per_job} files a job, "
        f"{settings.max_ranges_per_file} ranges a file; history {settings.history_days} days; "
        f"inactivity {settings.job_inactivity_days} days"
    )
    now = time.time()
    output.line(
        f"Bandwidth now ({time.strftime('%a %H:%M', time.localtime(now))}), for a job without a cap of its own:"
    )
    for priority in JobPriority:
        sample = Job(id="", display_name="", type=JobType.DOWNLOAD, owner="", creation_time=now,
                     modification_time=now, priority=priority)  # fmt: skip
        allowed = policy.allowed(settings.bandwidth, sample, now)
        output.line(f"  {priority.name:<10} {output.allowed_text(allowed).removeprefix('ALLOWED RATE: ')}")
    if not settings.bandwidth.yield_to_others:
        output.line("Yield to other traffic: off")
    else:
        from bitscli.transfer import tcpinfo

        signal = "the kernel reports TCP round-trip times" if tcpinfo.supported() else (
            "but this platform reports no TCP round-trip times: jobs will not yield")  # fmt: skip
        output.line(f"Yield to other traffic: on, for every priority but FOREGROUND ({signal})")
