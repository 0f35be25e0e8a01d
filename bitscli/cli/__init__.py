"""The bitscli command line: argv (ours or BitsAdmin's) -> one typer command; errors -> exit codes, once."""

from __future__ import annotations

import atexit
import contextlib
import errno
import importlib
import os
import sys
from typing import Annotated, NoReturn

import typer

from bitscli import __version__
from bitscli.cli.table import COMMANDS
from bitscli.errors import BitsError, ExitCode

_HELP = """A persistent, per-user background transfer queue modelled on Windows BITS and BitsAdmin.

Jobs are lists of files; they start SUSPENDED, run after `resume`, and their files appear under
their final names only at `complete`. BitsAdmin syntax works too: bitscli /create /download myjob

Help on one command: bitscli help COMMAND (or bitscli COMMAND --help); the manual: man bitscli.
"""


def build_app(only: str | None = None) -> typer.Typer:
    """The typer app with every command, or with only the command ``only`` (fast start-up)."""
    app = typer.Typer(
        name="bitscli",
        help=_HELP,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,  # main() reports errors itself; tracebacks never show secrets
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    modules = {COMMANDS[only]} if only in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module_name in modules:
        module = importlib.import_module(f"bitscli.cli.{module_name}")
        wanted = only if only in COMMANDS else None
        app.registered_commands.extend(c for c in module.app.registered_commands if wanted in (None, c.name))
        app.registered_groups.extend(g for g in module.app.registered_groups if wanted in (None, g.name))
    return app


def _root(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print the version and exit.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error (anywhere on the line).")
    ] = False,
) -> None:
    """A persistent, per-user background transfer queue modelled on Windows BITS."""
    # main() acts on both before typer runs (so they work anywhere); they are declared here for the help.


def _command_name(args: list[str]) -> str | None:
    for arg in args:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None, exiting: bool = False) -> int:
    """Run one command; returns the exit code (README lists them). ``exiting``: the process ends right after."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("BITSCLI_DEBUG"))
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:  # anywhere before "--", for a line that failed once and is run again
        debug = True
        args = [a for i, a in enumerate(args) if i >= end or a != "--debug"]
        end = args.index("--") if "--" in args else len(args)
    from bitscli import output

    output.json_errors = "--json" in args[:end]  # a script that asked for JSON reads its errors as JSON too
    if args and args[0] in ("--version", "-V"):
        sys.stdout.write(f"bitscli {__version__}\n")
        return ExitCode.OK
    if args and args[0] == "help":  # `bitscli help [COMMAND [SUBCOMMAND]]`, as git and pip have it
        args = [*args[1:], "--help"]
    try:
        if args and args[0].startswith("/"):
            from bitscli.cli import compat

            if compat.wants_banner(args):
                sys.stdout.write(compat.banner(__version__))
            args = compat.translate(args)
            if args == ["--version"]:
                sys.stdout.write(f"bitscli {__version__}\n")
                return ExitCode.OK
        command = typer.main.get_command(build_app(_command_name(args)))
        result = command.main(args=args, prog_name="bitscli", standalone_mode=False)
        return result if isinstance(result, int) else ExitCode.OK
    except BitsError as exc:
        output.bits_error(exc)
        return exc.exit_code
    except typer.TyperException as exc:  # click's usage errors: unknown option, missing argument, ...
        if exc.format_message():  # none after the help shown for a bare `bitscli`: nothing more to say
            output.error(*_usage_error(exc), status=ExitCode.USAGE)
        return ExitCode.USAGE
    except SystemExit as exc:
        # click and rich end with sys.exit(1) when their output meets a closed pipe (`bitscli --help | head -1`):
        # as for `yes | head`, a reader that had enough is a quiet, successful end.
        if _after_a_closed_pipe(exc):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return ExitCode.OK
        raise
    except (KeyboardInterrupt, typer.Abort):
        output.error("interrupted", status=ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`bitscli list | head`): not an error worth a message. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:
        output.internal_error(exc, debug)
        return ExitCode.FAILURE
    finally:
        if "bitscli.cli.params" in sys.modules:
            sys.modules["bitscli.cli.params"].close(checkpoint=not exiting)


def run() -> NoReturn:
    """The console entry point: main(), then exit without the interpreter's teardown.

    Freeing every module at exit is a tenth or more of a short command's time. Exit handlers still run and the
    output is flushed first, so nothing a command wrote is lost; a failed flush is reported, not ignored.
    The queue is left open (see params.close).
    """
    code = main(exiting=True)
    atexit._run_exitfuncs()  # filelock's and logging's handlers, as at a normal exit
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`bitscli list | head`), as main() treats it
    except OSError as exc:  # a full disk under `bitscli list > file`: the output is incomplete
        from bitscli import output

        output.error(f"could not write the output: {exc.strerror or exc}", "check the space left where it goes")
        code = ExitCode.FAILURE
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def _after_a_closed_pipe(exc: BaseException) -> bool:
    """Whether an exit was caused, directly or not, by writing to a pipe whose reader has gone (EPIPE)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BrokenPipeError) or (isinstance(cause, OSError) and cause.errno == errno.EPIPE):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _usage_error(exc: typer.TyperException) -> tuple[str, str]:
    ctx = getattr(exc, "ctx", None)
    hint = f"see '{ctx.command_path if ctx is not None else 'bitscli'} --help'"
    message = exc.format_message()
    option = message.removeprefix("No such option: ")
    if option != message and option[1:].isdigit():
        # click reads "-1" as an option; say what the user most likely meant.
        return (
            f"negative numbers are not accepted: {option}",
            "values are 0 or more; put -- before a value that starts with '-'",
        )
    return message, hint
