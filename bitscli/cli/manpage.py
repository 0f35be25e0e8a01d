"""The manual page, bitscli.1, rendered from the same command definitions as --help (man/ ships the output)."""

from __future__ import annotations

from typing import Any

import typer

from bitscli import __version__
from bitscli.errors import ExitCode

app = typer.Typer()
PAGE_FILE = "man/bitscli.1"

# What each exit status means, for the EXIT STATUS section (README's table says the same, at more length).
_EXIT_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "an internal error, a bug; --debug shows the traceback",
    ExitCode.USAGE: "bad arguments or values",
    ExitCode.NOT_FOUND: "no job has that GUID or name",
    ExitCode.AMBIGUOUS: "a display name that matches several live jobs",
    ExitCode.INVALID_STATE: "the job's state does not allow the operation",
    ExitCode.LIMIT: "a BITS quota: jobs per user, files per job, ranges per file",
    ExitCode.QUEUE: "the queue is corrupt, not ours, newer, unwritable or locked; queue check found a problem",
    ExitCode.CONFIG: "the configuration file is malformed",
    ExitCode.NOT_SUPPORTED: "a BitsAdmin switch bitscli leaves out, or a feature disabled by policy",
    ExitCode.TRANSFER_FAILED: "transfer or wait: the job ended in ERROR; complete kept no file",
    ExitCode.DAEMON: "no daemon runs, or it could not be started or stopped, or one already runs",
    ExitCode.TIMEOUT: "wait --timeout ran out",
    ExitCode.INTERRUPTED: "Ctrl-C, or SIGTERM during transfer",
}


def _roff(text: str) -> str:
    """Text safe in a roff paragraph: backslashes escaped, no line that starts a request."""
    lines = text.replace("\\", "\\e").replace("-", "\\-").splitlines()
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line for line in lines)


def _options(command: Any) -> list[str]:
    out: list[str] = []
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        names = ", ".join(f"\\fB{_roff(name)}\\fR" for name in (*param.opts, *param.secondary_opts))
        value = "" if param.is_flag else f" \\fI{_roff(param.metavar or param.name.upper())}\\fR"
        out += [".TP", f"{names}{value}", _roff(param.help or "")]
    return out


def _usage(path: str, command: Any) -> str:
    arguments = " ".join(_roff(p.metavar or p.name.upper()) for p in command.params if p.param_type_name == "argument")
    return f"\\fBbitscli {path}\\fR [\\fIOPTIONS\\fR] {arguments}".rstrip()


def _commands(group: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        path = f"{prefix}{name}"
        if getattr(command, "commands", None):
            out += _commands(command, f"{path} ")
            continue
        out += [
            ".SS " + _roff(path),
            _usage(path, command),
            ".PP",
            _roff((command.help or "").strip()),
            *_options(command),
        ]
    return out


def render() -> str:
    from bitscli.cli import _HELP, build_app

    group = typer.main.get_command(build_app())
    page = [
        f'.TH BITSCLI 1 "" "bitscli {__version__}" "User Commands"',
        ".SH NAME",
        "bitscli \\- a persistent, per\\-user background transfer queue modelled on Windows BITS and BitsAdmin",
        ".SH SYNOPSIS",
        "\\fBbitscli\\fR [\\fB\\-\\-debug\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".br",
        "\\fBbitscli\\fR \\fI/SWITCH\\fR [\\fIARGS\\fR]...  (BitsAdmin syntax)",
        ".br",
        "\\fBbitscli help\\fR [\\fICOMMAND\\fR]",
        ".SH DESCRIPTION",
        _roff(_HELP.strip()),
        ".SH COMMANDS",
        *_commands(group),
        ".SH EXIT STATUS",
    ]
    for code in ExitCode:
        page += [".TP", f"\\fB{int(code)}\\fR ({code.name})", _roff(_EXIT_MEANINGS[code])]
    page += [
        ".SH ENVIRONMENT",
        ".TP", "\\fBBITSCLI_HOME\\fR", "One directory for the queue, the configuration and the daemon's files.",
        ".TP", "\\fBBITSCLI_NO_AUTOSTART\\fR", "When set, resume, transfer and wait do not start the daemon.",
        ".TP", "\\fBBITSCLI_DEBUG\\fR", "When set, an internal error shows its traceback (as \\fB\\-\\-debug\\fR).",
        ".SH FILES",
        ".TP", "\\fI~/.local/state/bitscli/queue.db\\fR", "The job queue (SQLite), with daemon.log and daemon.pid.",
        ".TP", "\\fI~/.config/bitscli/config.toml\\fR", "Limits, history, bandwidth policy, hooks.",
        ".SH SEE ALSO",
        "The README (https://pypi.org/project/bitscli/) describes every command, the JSON documents and the",
        "bandwidth policy at more length.",
    ]  # fmt: skip
    return "\n".join(page) + "\n"


@app.command("manpage", rich_help_panel="Setup")
def manpage() -> None:
    """Print the manual page, bitscli.1, in roff (the same file ships in man/).

    Example: bitscli manpage | man -l -
    """
    typer.echo(render(), nl=False)
