"""Structure: one-way layers, the command table, help on every command, lean start-up, completions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from bitscli.cli import COMMANDS, build_app
from bitscli.cli.completion import SCRIPT_FILES, render

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "bitscli"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layering(path: Path) -> None:
    """design.md: only cli imports typer; only cli/output import rich; nothing imports cli or output back."""
    rel = path.relative_to(PACKAGE).as_posix()
    imports = _imports(path)
    in_cli = rel.startswith("cli/") or rel == "__main__.py"
    if not in_cli:
        assert not any(i == "typer" or i.startswith("typer.") for i in imports), f"{rel} imports typer"
        assert not any(i.startswith("bitscli.cli") for i in imports), f"{rel} imports the CLI"
    if not in_cli and rel not in ("output.py", "liveview.py"):
        assert not any(i == "rich" or i.startswith("rich.") for i in imports), f"{rel} imports rich"
        assert not any(i.startswith(("bitscli.output", "bitscli.liveview")) for i in imports), f"{rel} imports output"
    if rel.startswith("transfer/"):
        assert not any(i.startswith(("bitscli.store", "bitscli.service")) for i in imports), rel
    if rel.startswith("server/") or rel == "protocol.py":  # the server shares only the protocol with the client
        queue_side = ("bitscli.store", "bitscli.service", "bitscli.daemon", "bitscli.worker", "bitscli.transfer")
        assert not any(i.startswith(queue_side) for i in imports), rel
    for layer in ("model.py", "errors.py", "values.py"):
        if rel == layer:
            assert not any(i.startswith(("bitscli.store", "bitscli.service")) for i in imports), rel


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_small_and_documented(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= 400, f"{path.name} is over 400 lines; split it"
    doc = ast.get_docstring(ast.parse(source))
    assert doc, f"{path.name} needs a module docstring"
    assert "\n" not in doc.strip(), f"{path.name}: the module docstring should be one line"


def test_command_table_matches_the_modules() -> None:
    app = build_app()
    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert registered == set(COMMANDS)


def test_every_command_has_help_with_an_example() -> None:
    root = typer.main.get_command(build_app())
    pending = [(name, command) for name, command in root.commands.items()]  # type: ignore[attr-defined]
    while pending:
        name, command = pending.pop()
        assert command.help, name
        if hasattr(command, "commands"):  # a group such as `daemon`: check its subcommands
            pending.extend((f"{name} {sub}", c) for sub, c in command.commands.items())
            continue
        example = command.help.partition("Example:")[2]
        assert f"bitscli {name}" in example, name


def test_help_runs_for_every_command(cli) -> None:
    for name in COMMANDS:
        result = cli(name, "--help")
        assert result.exit_code == 0, name
        assert "Usage:" in result.stdout, name
    top = cli("--help")
    assert top.exit_code == 0
    assert all(name in top.stdout for name in ("create", "getstate", "setpriority"))


def test_version(cli) -> None:
    assert cli("--version").stdout.startswith("bitscli 0.")
    done = subprocess.run([sys.executable, "-m", "bitscli", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("bitscli 0.")


def _modules_after(argv: list[str]) -> set[str]:
    script = (
        "import sys; from bitscli.cli import main; main(sys.argv[1:]); "
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True)
    return set(done.stderr.split())


@pytest.mark.parametrize("argv", [["getstate", "nosuch"], ["create", "fast"], ["list"], ["addfile", "x", "y", "z"]])
def test_queue_commands_import_only_what_they_run(ok, argv: list[str]) -> None:
    """cli_latency.py's budget: no requests, no transfer engine, no other command modules, no filelock."""
    ok("list")  # an existing queue: only creating or migrating one needs filelock
    loaded = _modules_after(argv)
    for heavy in (
        "requests",
        "urllib3",
        "filelock",
        "bitscli.transfer.http",
        "bitscli.daemon",
        "rich.console",
        "pydantic",  # typer 0.29 and later import it for every command (pyproject.toml pins 0.28)
    ):
        assert heavy not in loaded, heavy
    own = COMMANDS[argv[0]]
    others = {f"bitscli.cli.{m}" for m in set(COMMANDS.values()) - {own}}
    assert not (loaded & others), loaded & others


@pytest.mark.parametrize("shell", sorted(SCRIPT_FILES))
def test_completion_scripts_are_in_sync(shell: str) -> None:
    shipped = (ROOT / "completions" / SCRIPT_FILES[shell]).read_text()
    assert shipped == render(shell), f"run: bitscli completion {shell} > completions/{SCRIPT_FILES[shell]}"


def test_bash_completion_works(ok, home: Path) -> None:
    ok("create", "alpha-job")
    script = ROOT / "completions" / "bitscli.bash"

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        program = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _bitscli; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete("bitscli", "getst") == ["getstate"]
    assert complete("bitscli", "resume", "alp") == ["alpha-job"]
    assert complete("bitscli", "create", "--upload") == ["--upload", "--upload-reply"]


def test_systemd_unit_runs_the_daemon_in_the_foreground() -> None:
    unit = (ROOT / "packaging" / "systemd" / "bitscli.service").read_text()
    assert "ExecStart=%h/.local/bin/bitscli daemon run" in unit
    assert "KillSignal=SIGTERM" in unit  # graceful: progress saved, jobs back to QUEUED
    assert "WantedBy=default.target" in unit
