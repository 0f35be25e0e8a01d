"""What a shell should offer for the word being completed: job GUIDs and names, fixed values, or files."""

# The completion scripts (cli/completion.py) know commands and options by heart; for an argument they run the
# hidden `bitscli __complete -- WORD...` with the words typed after `bitscli`, the last being the one under the
# cursor, and get one candidate a line, or __files__ to complete file names themselves.

from __future__ import annotations

from typing import Annotated, Any

import typer

from bitscli.model import JobPriority, JobState, NotifyFlags, ProxyUsage

app = typer.Typer()

FILES = "__files__"
_BOOLEANS = ("true", "false")
_PRIORITIES = tuple(p.name for p in JobPriority)
_SCHEMES = ("BASIC", "DIGEST", "NTLM", "NEGOTIATE", "PASSPORT")
# (command, argument) -> the values it takes; JOB arguments and paths are found by name below.
_ARGUMENT_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("setpriority", "value"): _PRIORITIES,
    ("setproxysettings", "usage"): tuple(u.name for u in ProxyUsage),
    ("setnotifyflags", "value"): ("3", *(str(int(f)) for f in NotifyFlags)),  # 3: the default, 1 | 2
    ("setdynamic", "value"): _BOOLEANS,
    ("setvalidationstate", "value"): _BOOLEANS,
    ("setifchanged", "value"): ("on", "off"),
    ("setcredentials", "target"): ("SERVER", "PROXY"),
    ("setcredentials", "scheme"): _SCHEMES,
    ("removecredentials", "target"): ("SERVER", "PROXY"),
    ("removecredentials", "scheme"): _SCHEMES,
    ("sethttpmethod", "value"): ("GET", "POST", "PUT"),
    ("completion", "shell"): ("bash", "zsh", "fish", "powershell", "pwsh"),
}
_OPTION_VALUES: dict[str, tuple[str, ...]] = {
    "--priority": _PRIORITIES,
    "--state": tuple(s.name for s in JobState),
}
_JOB_ARGUMENTS = {"job", "refs"}
_FILE_ARGUMENTS = {"local", "listfile", "file", "path", "certificate", "key", "program", "pairs"}
_FILE_VALUES = {("setcabundle", "value"), ("setreplyfilename", "path")}


def candidates(words: list[str]) -> list[str]:
    """The candidates for ``words[-1]`` on the line ``bitscli WORDS...`` (prefix filtering is the shell's)."""
    from bitscli.cli import build_app
    from bitscli.cli.table import COMMANDS

    *before, _current = words or [""]
    if not before:
        return sorted(c for c in COMMANDS if not c.startswith("_"))
    name = before[0].lstrip("/").lower() if before[0].startswith("/") else before[0]
    name = {"setaclflag": "setaclflags"}.get(name, name)
    if name not in COMMANDS:
        return []
    command = typer.main.get_command(build_app(only=name))
    command = getattr(command, "commands", {}).get(name, command)
    rest = before[1:]
    if hasattr(command, "commands"):  # daemon, queue, config: the subcommand comes first
        if not rest:
            return sorted(command.commands)
        sub = command.commands.get(rest[0])
        if sub is None:
            return []
        command, rest = sub, rest[1:]
    return _for_argument(name, command, rest)


def _for_argument(name: str, command: Any, rest: list[str]) -> list[str]:
    """(typer vendors its own click: its classes are looked at by their attributes, not imported.)"""
    params = command.params
    options = {o: p for p in params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)}
    position, pending = 0, None
    for word in rest:
        if pending is not None:
            pending = None
        elif word in options:
            option = options[word]
            pending = None if option.is_flag or option.count else option
        elif word.startswith("/") and len(word) > 1 and word[1:].isalpha() and word.upper() == word:
            continue  # a BitsAdmin option switch (/DOWNLOAD)
        elif word != "--":
            position += 1
    if pending is not None:
        if _is_path(pending):
            return [FILES]
        return list(_OPTION_VALUES.get(pending.opts[0], ()))
    arguments = [p for p in params if p.param_type_name == "argument"]
    argument = None
    for index, candidate in enumerate(arguments):
        if index == position or (candidate.nargs == -1 and position >= index):
            argument = candidate
            break
    if argument is None or argument.name is None:
        return []
    if argument.name in _JOB_ARGUMENTS:
        return _jobs()
    if (name, argument.name) in _ARGUMENT_VALUES:
        return list(_ARGUMENT_VALUES[name, argument.name])
    if argument.name in _FILE_ARGUMENTS or (name, argument.name) in _FILE_VALUES or _is_path(argument):
        return [FILES]
    return []


def _is_path(param: Any) -> bool:
    return getattr(param.type, "name", "") == "path"


def _jobs() -> list[str]:
    """Every live job's GUID and display name; nothing (never an error) when there is no queue yet."""
    from bitscli import paths
    from bitscli.store import open_queue

    path = paths.queue_path()
    if not path.exists():
        return []
    try:
        queue = open_queue(path, durable=False)
        try:
            with queue.read() as tx:
                headers = tx.job_headers()
        finally:
            queue.close()
    except Exception:  # a damaged or locked queue: completion offers nothing rather than a traceback
        return []
    return [value for job in headers if not job.state.is_final for value in (job.id, job.display_name)]


@app.command("__complete", hidden=True)
def complete_words(
    words: Annotated[list[str] | None, typer.Argument(help="The words after bitscli; the last is completed.")] = None,
) -> None:
    """For the completion scripts: one candidate a line (__files__: complete file names).

    Example: bitscli __complete -- setpriority nightly ''
    """
    for value in candidates(list(words or [])):
        typer.echo(value)
