"""The set* commands of BitsAdmin (bits.md §1c): each checks its value, then stores it in one transaction."""

import shlex
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from bitscli import output
from bitscli.cli.params import IndexArg, JobArg, context
from bitscli.errors import InvalidValue
from bitscli.inputs import fields, names, network
from bitscli.service import properties

app = typer.Typer()
_PANEL = "Setters"
_ARGV_EXPOSURE_WARNING = "{what} given on the command line can be read by other users (ps, shell history); use {flag}"

# name -> (metavar, parser, Job field, label for the confirmation, help text)
_SIMPLE: dict[str, tuple[str, Callable[[str], object], str, str, str]] = {
    "setdisplayname": (
        "NAME",
        fields.check_display_name,
        "display_name",
        "Display name",
        "Rename the job (at most 256 characters).",
    ),
    "setdescription": (
        "TEXT",
        fields.check_description,
        "description",
        "Description",
        "Set the description (at most 1,024 characters).",
    ),
    "setpriority": (
        "PRIORITY",
        fields.parse_priority,
        "priority",
        "Priority",
        "FOREGROUND, HIGH, NORMAL or LOW.",
    ),
    "setnotifyflags": (
        "FLAGS",
        fields.parse_notify_flags,
        "notify_flags",
        "Notification flags",
        "1 transferred, 2 error, 4 disable, 8 modification (default 3).",
    ),
    "setminretrydelay": (
        "SECONDS",
        fields.parse_retry_delay,
        "min_retry_delay",
        "Minimum retry delay",
        "Seconds to wait after a transient error (default 600, at least 5).",
    ),
    "setnoprogresstimeout": (
        "SECONDS",
        lambda v: fields.parse_uint(v, "the no-progress timeout"),
        "no_progress_timeout",
        "No progress timeout",
        "Seconds of failed retries before ERROR (default 1209600).",
    ),
    "setmaxdownloadtime": (
        "SECONDS",
        lambda v: fields.parse_uint(v, "the maximum download time"),
        "max_download_time",
        "Maximum download time",
        "Seconds of transferring before ERROR (default 7776000).",
    ),
    "setsecurityflags": (
        "FLAGS",
        fields.parse_security_flags,
        "security_flags",
        "Security flags",
        "TLS checks and redirect policy bits (see README).",
    ),
    "sethttpmethod": (
        "METHOD",
        fields.parse_http_method,
        "http_method",
        "HTTP method",
        "The HTTP verb to use instead of GET.",
    ),
    "setaclflags": (
        "FLAGS",
        fields.parse_acl_flags,
        "acl_flags",
        "ACL flags",
        "Letters from O, G, D, S (owner, group, DACL, SACL).",
    ),
    "setcabundle": (
        "PATH",
        names.check_ca_bundle,
        "ca_bundle",
        "CA bundle",
        "Trust the CA certificates of this PEM file or directory instead of the system's (NULL: the system's).",
    ),
}


def _show(value: object) -> str:
    return "NULL" if value is None else getattr(value, "name", None) or str(value)


def _register(name: str, metavar: str, parse: Callable[[str], object], field: str, label: str, summary: str) -> None:
    def command(job: JobArg, value: Annotated[str, typer.Argument(metavar=metavar)]) -> None:
        parsed = parse(value)
        properties.set_properties(context(), job, **{field: parsed})
        output.line(f"{label} set to {_show(parsed)}.")

    command.__name__ = name
    app.command(name, rich_help_panel=_PANEL, help=f"{summary}\n\nExample: bitscli {name} nightly {metavar}")(command)


for _name, (_metavar, _parse, _field, _label, _summary) in _SIMPLE.items():
    _register(_name, _metavar, _parse, _field, _label, _summary)


@app.command("setdynamic", rich_help_panel=_PANEL)
def setdynamic(job: JobArg, value: Annotated[str, typer.Argument(metavar="TRUE|FALSE")]) -> None:
    """Dynamic content: no HEAD, no ranges, restart from zero after any interruption (set before resume).

    Example: bitscli setdynamic nightly TRUE
    """
    dynamic = fields.parse_bool(value, "dynamic content")
    properties.set_dynamic(context(), job, dynamic)
    output.line(f"Dynamic content set to {str(dynamic).upper()}.")


@app.command("setifchanged", rich_help_panel=_PANEL)
def setifchanged(job: JobArg, value: Annotated[str, typer.Argument(metavar="ON|OFF")]) -> None:
    """Fetch each file only if the server's copy differs from the local file bitscli last wrote (a 304 keeps it).

    Example: bitscli setifchanged nightly on
    """
    if_changed = fields.parse_bool(value, "if-changed")
    properties.set_properties(context(), job, if_changed=if_changed)
    output.line(f"Download only if changed set to {'ON' if if_changed else 'OFF'}.")


@app.command("setmaxbandwidth", rich_help_panel=_PANEL)
def setmaxbandwidth(job: JobArg, rate: Annotated[str, typer.Argument(metavar="RATE")]) -> None:
    """Cap the job's rate at any priority: 20MB (powers of 1000), 512KiB or 1.5M (of 1024), bytes; 0 or none: no cap.

    Example: bitscli setmaxbandwidth nightly 2MB
    """
    parsed = fields.parse_rate(rate)
    properties.set_properties(context(), job, max_bandwidth=parsed)
    output.line(f"Maximum bandwidth set to {fields.format_rate(parsed)}.")


@app.command("setstartjitter", rich_help_panel=_PANEL)
def setstartjitter(job: JobArg, seconds: Annotated[str, typer.Argument(metavar="SECONDS|NULL")]) -> None:
    """Wait a random 0 to SECONDS at each resume, so that a fleet given one job does not start at once.

    NULL goes back to the config's default (bandwidth.start_jitter).

    Example: bitscli setstartjitter nightly 900
    """
    value = None if seconds.strip().upper() in ("NULL", "") else fields.parse_uint(seconds, "the start jitter", 604_800)
    properties.set_properties(context(), job, start_jitter=value)
    output.line(f"Start jitter set to {'the default' if value is None else f'{value} s'}.")


@app.command("setclientcertificate", rich_help_panel=_PANEL)
def setclientcertificate(
    job: JobArg,
    certificate: Annotated[str, typer.Argument(metavar="CERT.pem", help="A PEM certificate, or NULL to remove it.")],
    key: Annotated[str | None, typer.Argument(metavar="[KEY.pem]", help="Its PEM key, if not in CERT.pem.")] = None,
) -> None:
    """Present a client certificate to HTTPS servers (the stand-in for BITS's certificate-store switches).

    Example: bitscli setclientcertificate nightly /etc/bitscli/client.pem /etc/bitscli/client.key
    """
    cert, key_path = names.check_client_certificate(certificate, key)
    properties.set_properties(context(), job, client_certificate=cert, client_key=key_path)
    output.line(f"Client certificate set to {_show(cert)}.")


@app.command("setreplyfilename", rich_help_panel=_PANEL)
def setreplyfilename(job: JobArg, path: Annotated[str, typer.Argument(metavar="PATH")]) -> None:
    """Where an upload-reply job stores the server's reply.

    Example: bitscli setreplyfilename upload1 /srv/replies/upload1.xml
    """
    updated = properties.set_reply_file_name(context(), job, path)
    output.line(f"Reply file name set to {updated.reply_file_name}.")


@app.command("setvalidationstate", rich_help_panel=_PANEL)
def setvalidationstate(
    job: JobArg, index: IndexArg, value: Annotated[str, typer.Argument(metavar="TRUE|FALSE")]
) -> None:
    """Record whether downloaded file INDEX is valid; FALSE puts the job in ERROR to fetch it again.

    Example: bitscli setvalidationstate nightly 0 TRUE
    """
    valid = fields.parse_bool(value, "the validation state")
    properties.set_validation_state(context(), job, index, valid)
    output.line(f"Validation state of file {index} set to {str(valid).upper()}.")


@app.command("setnotifycmdline", rich_help_panel=_PANEL)
def setnotifycmdline(
    job: JobArg,
    program: Annotated[str, typer.Argument(metavar="PROGRAM", help="Full path of the program, or NULL.")],
    parameters: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PARAMETERS]...", help="The whole command line, program first; or NULL."),
    ] = None,
) -> None:
    """Run a program when the job is TRANSFERRED or in ERROR; NULL NULL clears it.

    Example: bitscli setnotifycmdline nightly /usr/bin/env "env bitscli complete nightly"
    """
    words = parameters or []
    params = words[0] if len(words) == 1 else shlex.join(words) if words else None
    updated = properties.set_notify_command(context(), job, program, params)
    output.line(f"Notification command line set to {output.notify_command_text(updated)}.")


@app.command("setproxysettings", rich_help_panel=_PANEL)
def setproxysettings(
    job: JobArg,
    usage: Annotated[str, typer.Argument(metavar="USAGE", help="PRECONFIG, AUTODETECT, NO_PROXY or OVERRIDE.")],
    proxy_list: Annotated[str | None, typer.Argument(metavar="[LIST]", help="host:port,... (OVERRIDE only).")] = None,
    bypass: Annotated[
        str | None, typer.Argument(metavar="[BYPASS]", help="Hosts that skip the proxy, or NULL.")
    ] = None,
) -> None:
    """Choose how the job reaches the server.

    Example: bitscli setproxysettings nightly OVERRIDE proxy.lan:3128 "<local>"
    """
    mode, plist, blist = network.parse_proxy_settings(usage, proxy_list, bypass)
    properties.set_properties(context(), job, proxy_usage=mode, proxy_list=plist, proxy_bypass_list=blist)
    output.line(f"Proxy usage set to {mode.name}.")


def _read_secret(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise InvalidValue(f"cannot read {path}: {exc.strerror}") from None
    return text[:-1] if text.endswith("\n") else text


@app.command("setcredentials", rich_help_panel=_PANEL)
def setcredentials(
    job: JobArg,
    target: Annotated[str, typer.Argument(metavar="TARGET", help="SERVER or PROXY.")],
    scheme: Annotated[str, typer.Argument(metavar="SCHEME", help="BASIC, DIGEST, NTLM or NEGOTIATE.")],
    username: Annotated[str, typer.Argument(metavar="USER", help="User name, or NULL for implicit credentials.")],
    password_arg: Annotated[
        str | None,
        typer.Argument(metavar="[PASSWORD]", help="Discouraged (visible in ps): use --password-file."),
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option("--password-file", metavar="FILE", help="Read the password from FILE (- for stdin)."),
    ] = None,
) -> None:
    """Store credentials for the server or proxy; they can never be read back.

    Example: printf %s "$PW" | bitscli setcredentials nightly SERVER BASIC alice --password-file -
    """
    if password_arg is not None and password_file is not None:
        raise InvalidValue("give the password either as an argument or with --password-file, not both")
    user = None if username.upper() == "NULL" else username
    password = None
    if password_file is not None:
        password = _read_secret(password_file)
    elif password_arg is not None and password_arg.upper() != "NULL":
        output.warning(_ARGV_EXPOSURE_WARNING.format(what="a password", flag="--password-file - (stdin)"))
        password = password_arg
    parsed_target, parsed_scheme = network.parse_auth_target(target), network.parse_auth_scheme(scheme)
    if user is not None and password is None and parsed_scheme.name in ("BASIC", "DIGEST"):
        raise InvalidValue(
            f"{parsed_scheme.name} needs a password",
            hint="pass it with --password-file FILE (or - for stdin)",
        )
    properties.set_credentials(context(), job, parsed_target, parsed_scheme, user, password)
    output.line(f"Credentials set for {parsed_target.name} {parsed_scheme.name}.")


@app.command("removecredentials", rich_help_panel=_PANEL)
def removecredentials(
    job: JobArg,
    target: Annotated[str, typer.Argument(metavar="TARGET", help="SERVER or PROXY.")],
    scheme: Annotated[str, typer.Argument(metavar="SCHEME", help="BASIC, DIGEST, NTLM, NEGOTIATE.")],
) -> None:
    """Remove the stored credentials for TARGET and SCHEME.

    Example: bitscli removecredentials nightly SERVER BASIC
    """
    parsed_target, parsed_scheme = network.parse_auth_target(target), network.parse_auth_scheme(scheme)
    _, removed = properties.remove_credentials(context(), job, parsed_target, parsed_scheme)
    state = "removed" if removed else "were not set; nothing removed"
    output.line(f"Credentials for {parsed_target.name} {parsed_scheme.name} {state}.")


@app.command("setcustomheaders", rich_help_panel=_PANEL)
def setcustomheaders(
    job: JobArg,
    headers: Annotated[
        list[str] | None, typer.Argument(metavar="[HEADER]...", help='"Name: value" each, or NULL to clear.')
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", metavar="FILE", help="Read one header per line from FILE (- for stdin)."),
    ] = None,
) -> None:
    """Replace the headers sent with every request of the job.

    Example: bitscli setcustomheaders nightly --from-file headers.txt
    """
    if headers and from_file is not None:
        raise InvalidValue("give headers either as arguments or with --from-file, not both")
    if not headers and from_file is None:
        raise InvalidValue("no headers given", hint='pass "Name: value" arguments, --from-file FILE, or NULL to clear')
    lines = _read_secret(from_file).splitlines() if from_file is not None else headers or []
    parsed = network.parse_custom_headers(lines)
    if from_file is None and any(network.redact_header(h) != h for h in parsed):
        output.warning(_ARGV_EXPOSURE_WARNING.format(what="secret headers", flag="--from-file"))
    properties.set_properties(context(), job, custom_headers=parsed)
    output.line(f"{len(parsed)} custom header(s) set.")


@app.command("makecustomheaderswriteonly", rich_help_panel=_PANEL)
def makecustomheaderswriteonly(job: JobArg) -> None:
    """Make the custom headers unreadable for good (they are still sent).

    Example: bitscli makecustomheaderswriteonly nightly
    """
    properties.make_headers_write_only(context(), job)
    output.line("Custom headers are now write-only.")
