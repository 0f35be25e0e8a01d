"""serve (the compact server: ranged downloads and BITS uploads) and serve-passwd (its user file)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from bitscli import output
from bitscli.errors import InvalidValue

app = typer.Typer()
_PANEL = "Server"

_SETTINGS = (  # options whose value, when given, overrides the settings file (None: not given)
    "host", "port", "allow_overwrite", "max_upload_size", "max_fragment_size", "session_timeout",
    "sessions_per_user", "max_sessions", "empty_session_timeout", "header_timeout", "body_timeout", "min_body_rate",
    "max_connections", "upload_buffer", "host_id", "host_id_fallback", "notification_type", "notification_url",
    "password_file", "certfile", "keyfile",
)  # fmt: skip


@app.command("serve", rich_help_panel=_PANEL)
def serve(
    root: Annotated[Path | None, typer.Option(help="Directory to serve and upload into.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [8080]; 0 takes a free one.")] = None,
    uploads: Annotated[list[str] | None, typer.Option(help="Enable uploads under this URL path ('/': all).")] = None,
    allow_overwrite: Annotated[
        bool | None, typer.Option("--allow-overwrite/--no-overwrite", help="Replace existing files [409].")
    ] = None,
    max_upload_size: Annotated[int | None, typer.Option(min=1, help="Largest upload in bytes.")] = None,
    max_fragment_size: Annotated[int | None, typer.Option(min=1, help="Largest fragment [100 MiB].")] = None,
    session_timeout: Annotated[int | None, typer.Option(min=1, help="Idle seconds before cleanup [14 d].")] = None,
    sessions_per_user: Annotated[int | None, typer.Option(min=1, help="Open sessions per user [50].")] = None,
    max_sessions: Annotated[int | None, typer.Option(min=1, help="Open sessions of all users [10000].")] = None,
    empty_session_timeout: Annotated[
        int | None, typer.Option(min=1, help="Seconds a session may wait for its first byte [600].")
    ] = None,
    header_timeout: Annotated[int | None, typer.Option(min=1, help="Seconds for a request's headers [10].")] = None,
    body_timeout: Annotated[
        int | None, typer.Option(min=1, help="Seconds a body may fall below --min-body-rate [30].")
    ] = None,
    min_body_rate: Annotated[int | None, typer.Option(min=1, help="Slowest body, bytes/s [500].")] = None,
    max_connections: Annotated[int | None, typer.Option(min=1, help="Open connections [1000].")] = None,
    upload_buffer: Annotated[
        int | None, typer.Option(min=1, help="Upload bytes held in memory, all clients [64 MiB].")
    ] = None,
    host_id: Annotated[str | None, typer.Option(help="Host that later packets of a session go to.")] = None,
    host_id_fallback: Annotated[
        int | None, typer.Option(min=1, help="Seconds before clients give up the host id.")
    ] = None,
    notification_type: Annotated[int | None, typer.Option(help="0 store, 1 by reference, 2 by value.")] = None,
    notification_url: Annotated[str | None, typer.Option(help="Application URL that gets each upload.")] = None,
    notification_command: Annotated[str | None, typer.Option(help="Local command that gets each upload.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="Users file (serve-passwd); uploads need a login.")] = None,
    certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file with these settings.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request to stderr.")] = False,
) -> None:
    """Serve a directory: GET/HEAD with ranges, and BITS uploads where enabled (Ctrl-C stops it).

    Example: bitscli serve --root /srv/files --port 8080 --uploads /incoming
    """
    import shlex

    from bitscli.server import run, settings

    values: dict[str, object] = settings.load_toml(config_file) if config_file else {}
    given = locals()
    values.update({name: given[name] for name in _SETTINGS if given[name] is not None})
    if uploads is not None:
        values["upload_dirs"] = tuple(uploads)
    if notification_command is not None:
        values["notification_command"] = tuple(shlex.split(notification_command))
    if root is not None:
        values["root"] = root
    run.serve(settings.build(values), access_log=access_log)


@app.command("serve-passwd", rich_help_panel=_PANEL)
def serve_passwd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The password file (created 0600 if missing).")],
    user: Annotated[str, typer.Argument(metavar="USER", help="The user to add or change.")],
) -> None:
    """Add a user to a serve password file; the password is read from stdin, never from the command line.

    Example: printf '%s\\n' "$PASSWORD" | bitscli serve-passwd /etc/bitscli/users alice
    """
    from bitscli.server import auth

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"Password for {user}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidValue("the password is empty", hint="give it on stdin: printf '%s\\n' \"$PASSWORD\" | bitscli ...")
    auth.set_user(file, user, password)
    output.line(f"User {user} saved in {file}.")
