"""Structure: one-way layers, the command table, help on every command, lean start-up, completions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import typer

from bitscli.cli import COMMANDS, build_app
from bitscli.cli.completion import SCRIPT_FILES, render

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "bitscli"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (a deferred import is still a dependency)."""
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """bitscli's modules and the bitscli modules each imports (``from bitscli import x`` counts as x)."""
    modules = {_module_name(path): path for path in _modules()}
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """design.md: dependencies point one way; a cycle, even through a deferred import, is a layering bug."""
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def _starts(imports: set[str], *prefixes: str) -> set[str]:
    return {i for i in imports if any(i == p or i.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layering(path: Path) -> None:
    """design.md: cli -> service -> store -> model; the transfer engine and the server know no queue."""
    rel = path.relative_to(PACKAGE).as_posix()
    imports = _imports(path)
    in_cli = rel.startswith("cli/") or rel == "__main__.py"
    if not in_cli:
        assert not _starts(imports, "typer", "bitscli.cli"), f"{rel} imports typer or the CLI"
    if not in_cli and rel not in ("output.py", "liveview.py"):
        assert not _starts(imports, "rich", "bitscli.output", "bitscli.liveview"), f"{rel} imports rich or output"
    if rel.startswith("transfer/"):  # moving bytes: never the queue, the use cases or the daemon
        forbidden = ("bitscli.store", "bitscli.transaction", "bitscli.service", "bitscli.daemon", "bitscli.partfiles")
        assert not _starts(imports, *forbidden), rel
    if rel.startswith("service/"):  # the use cases reach the engine only through the daemon
        assert not _starts(imports, "bitscli.transfer"), rel
        assert _starts(imports, "bitscli.daemon") <= {
            "bitscli.daemon", "bitscli.daemon.wakeup", "bitscli.daemon.spawn", "bitscli.daemon.process",
        }, rel  # fmt: skip
    if rel.startswith("daemon/"):
        assert not _starts(imports, "bitscli.service"), rel
    if rel.startswith("server/") or rel == "protocol.py":  # the server shares only the protocol with the client
        assert not _starts(imports, "bitscli.store", "bitscli.service", "bitscli.daemon", "bitscli.transfer"), rel
    if rel in ("model.py", "actions.py", "errors.py", "schema.py", "partfiles.py", "policy.py") or rel.startswith(
        "inputs/"
    ):
        assert not _starts(imports, "bitscli.store", "bitscli.service", "bitscli.daemon", "bitscli.transfer"), rel


def test_the_wheel_holds_every_package(tmp_path: Path) -> None:
    """What users install: a wheel built from this tree carries every package and module (the wheel once lacked
    bitscli/server/, and editable installs hid it)."""
    source = tmp_path / "source"  # a copy: setuptools' build/ directory in a checkout keeps deleted modules
    shutil.copytree(PACKAGE, source / "bitscli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "man/bitscli.1"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("bitscli-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {name for name in names if name.startswith("bitscli/") and name.endswith(".py")}
    assert shipped == {path.relative_to(ROOT).as_posix() for path in _modules()}
    assert any(name.endswith(".data/data/share/man/man1/bitscli.1") for name in names)  # `man bitscli` works


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
        "bitscli.daemon.loop",
        "bitscli.daemon.worker",
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


def test_the_man_page_is_in_sync_and_well_formed() -> None:
    """Issue 16 item 3: man/bitscli.1 is rendered from the command definitions, so it cannot drift."""
    from bitscli.cli.manpage import PAGE_FILE
    from bitscli.cli.manpage import render as render_page

    page = (ROOT / PAGE_FILE).read_text()
    assert page == render_page(), f"run: bitscli manpage > {PAGE_FILE}"
    for name in (c for c in COMMANDS if not c.startswith("_")):  # __complete is hidden: only the scripts use it
        assert f".SS {name}" in page.replace("\\-", "-") or f".SS {name} " in page, name
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed: the page's text was checked above")
    checked = subprocess.run([groff, "-man", "-ww", "-z", str(ROOT / PAGE_FILE)], capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert checked.returncode == 0
    assert checked.stderr == ""


def test_pwsh_is_powershell(ok) -> None:
    assert ok("completion", "pwsh").stdout == render("powershell")


def test_systemd_unit_runs_the_daemon_in_the_foreground() -> None:
    unit = (ROOT / "packaging" / "systemd" / "bitscli.service").read_text()
    assert "ExecStart=%h/.local/bin/bitscli daemon run" in unit
    assert "KillSignal=SIGTERM" in unit  # graceful: progress saved, jobs back to QUEUED
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit  # SIGHUP reloads the config file
    assert "WantedBy=default.target" in unit
