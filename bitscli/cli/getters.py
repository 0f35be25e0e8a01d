"""The get* commands of BitsAdmin (bits.md §1b), the reply's included: bare values, --raw like /RAWRETURN, or --json."""

from collections.abc import Callable

import typer

from bitscli import output
from bitscli.cli.params import IndexArg, JobArg, JsonOpt, RawOpt, context
from bitscli.errors import HResult, InvalidState
from bitscli.inputs import fields
from bitscli.inputs.fields import format_acl_flags
from bitscli.model import UNKNOWN, Job
from bitscli.service import jobs, properties, replies

app = typer.Typer()
_PANEL = "Getters"

Render = Callable[[Job], tuple[str, object]]


def _number(n: int) -> tuple[str, object]:
    return str(n), n


def _size(n: int) -> tuple[str, object]:
    return output.fmt_size(n), None if n == UNKNOWN else n


def _time(t: float | None) -> tuple[str, object]:
    return output.fmt_time(t), output.iso_time(t)


def _text(s: str | None) -> tuple[str, object]:
    return ("NULL" if s is None else s), s


def _notify_command(job: Job) -> tuple[str, object]:
    command = (
        None if job.notify_program is None else {"program": job.notify_program, "parameters": job.notify_parameters}
    )
    return output.notify_command_text(job), command


def _error(job: Job) -> tuple[str, object]:
    if job.error is None:
        raise InvalidState(
            f"job {job.id} has no error to report (it is {job.state.name})",
            code=HResult.BG_E_ERROR_INFORMATION_UNAVAILABLE,
        )
    return "\n".join(output.error_lines(job)), output.job_json(job)["error"]


def _reply_file(job: Job) -> tuple[str, object]:
    return _text(replies.reply_file(job))


# name -> (property name in JSON, renderer, help text)
_GETTERS: dict[str, tuple[str, Render, str]] = {
    "getstate": (
        "state",
        lambda j: (j.state.name, j.state.name),
        "The job's state (QUEUED, ..., CANCELLED).",
    ),
    "gettype": ("type", lambda j: (j.type.label, j.type.label), "DOWNLOAD, UPLOAD or UPLOAD-REPLY."),
    "getpriority": (
        "priority",
        lambda j: (j.priority.name, j.priority.name),
        "FOREGROUND, HIGH, NORMAL or LOW.",
    ),
    "getbytestotal": ("bytes_total", lambda j: _size(j.bytes_total), "Total bytes, or UNKNOWN."),
    "getbytestransferred": (
        "bytes_transferred",
        lambda j: _number(j.bytes_transferred),
        "Bytes transferred.",
    ),
    "getfilestotal": ("files_total", lambda j: _number(j.files_total), "Number of files."),
    "getfilestransferred": (
        "files_transferred",
        lambda j: _number(j.files_transferred),
        "Files transferred.",
    ),
    "getcreationtime": ("creation_time", lambda j: _time(j.creation_time), "When the job was created."),
    "getmodificationtime": (
        "modification_time",
        lambda j: _time(j.modification_time),
        "When it last changed.",
    ),
    "getcompletiontime": (
        "completion_time",
        lambda j: _time(j.completion_time),
        "When it finished, or UNKNOWN.",
    ),
    "geterror": ("error", _error, "The error: file, code and context (fails when there is none)."),
    "geterrorcount": ("error_count", lambda j: _number(j.error_count), "How many errors the job has had."),
    "getowner": ("owner", lambda j: _text(j.owner), "The job's owner."),
    "getdisplayname": ("name", lambda j: _text(j.display_name), "The display name."),
    "getdescription": ("description", lambda j: (j.description, j.description), "The description."),
    "getnotifyflags": ("notify_flags", lambda j: _number(j.notify_flags), "The notification flags."),
    "getnotifyinterface": (
        "notify_interface",
        lambda j: ("UNREGISTERED", "UNREGISTERED"),
        "Always UNREGISTERED.",
    ),
    "getnotifycmdline": ("notify_command_line", _notify_command, "The notification program and parameters."),
    "getminretrydelay": ("min_retry_delay", lambda j: _number(j.min_retry_delay), "Seconds before a retry."),
    "getnoprogresstimeout": (
        "no_progress_timeout",
        lambda j: _number(j.no_progress_timeout),
        "Seconds without progress before ERROR.",
    ),
    "getmaxdownloadtime": (
        "max_download_time",
        lambda j: _number(j.max_download_time),
        "Maximum seconds of transfer.",
    ),
    "getproxyusage": (
        "proxy_usage",
        lambda j: (j.proxy_usage.name, j.proxy_usage.name),
        "PRECONFIG, NO_PROXY, OVERRIDE or AUTODETECT.",
    ),
    "getproxylist": ("proxy_list", lambda j: _text(j.proxy_list), "The proxy list, or NULL."),
    "getproxybypasslist": (
        "proxy_bypass_list",
        lambda j: _text(j.proxy_bypass_list),
        "The proxy bypass list, or NULL.",
    ),
    "getsecurityflags": ("security_flags", lambda j: _number(j.security_flags), "The security flags."),
    "gethttpmethod": ("http_method", lambda j: _text(j.http_method), "The HTTP method (GET by default)."),
    "getaclflags": (
        "acl_flags",
        lambda j: (format_acl_flags(j.acl_flags),) * 2,
        "ACL flag letters from OGDS.",
    ),
    "getdynamic": ("dynamic", lambda j: (str(j.dynamic).upper(), j.dynamic), "TRUE for dynamic content."),
    "getifchanged": (
        "if_changed",
        lambda j: ("ON" if j.if_changed else "OFF", j.if_changed),
        "ON when every file is fetched only if the server's copy changed (setifchanged).",
    ),
    "getmaxbandwidth": (
        "max_bandwidth",
        lambda j: (fields.format_rate(j.max_bandwidth), j.max_bandwidth or None),
        "The job's own rate cap (NONE: no cap of its own); the JSON value is bytes a second.",
    ),
    "getstartjitter": (
        "start_jitter",
        lambda j: ("DEFAULT" if j.start_jitter is None else str(j.start_jitter), j.start_jitter),
        "Seconds of random delay at each resume (DEFAULT: the config's bandwidth.start_jitter).",
    ),
    "getcabundle": (
        "ca_bundle",
        lambda j: _text(j.ca_bundle),
        "The PEM CA file or directory the job trusts (NULL: the system's).",
    ),
    "getclientcertificate": (
        "client_certificate",
        lambda j: _text(j.client_certificate),
        "The PEM client certificate the job presents to HTTPS servers (NULL: none).",
    ),
    "getreplyfilename": (
        "reply_file_name",
        _reply_file,
        "The reply file of an upload-reply job (set, or named beside the upload).",
    ),
}


def _register(name: str, prop: str, render: Render, summary: str) -> None:
    def command(job: JobArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
        found = jobs.get_job(context(), job)
        text, value = render(found)
        output.value(text, value, job=found, prop=prop, raw=raw, as_json=as_json)

    command.__name__ = name
    app.command(name, rich_help_panel=_PANEL, help=f"{summary}\n\nExample: bitscli {name} nightly")(command)


for _name, (_prop, _render, _summary) in _GETTERS.items():
    _register(_name, _prop, _render, _summary)


@app.command("getcustomheaders", rich_help_panel=_PANEL)
def getcustomheaders(job: JobArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
    """The custom headers; values that look like secrets show as ***. Fails once they are write-only.

    Example: bitscli getcustomheaders nightly
    """
    found, headers = properties.custom_headers(context(), job)
    text = output.headers(headers)
    output.value(text, text.splitlines() if headers else [], job=found, prop="custom_headers", raw=raw, as_json=as_json)


@app.command("getvalidationstate", rich_help_panel=_PANEL)
def getvalidationstate(job: JobArg, index: IndexArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
    """TRUE once the application has validated file INDEX (see setvalidationstate).

    Example: bitscli getvalidationstate nightly 0
    """
    found, f = properties.job_with_file(context(), job, index)
    valid = f.validation_state
    output.value(str(valid).upper(), valid, job=found, prop="validation_state", raw=raw, as_json=as_json)


@app.command("gettemporaryname", rich_help_panel=_PANEL)
def gettemporaryname(job: JobArg, index: IndexArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
    """The hidden part file that file INDEX is written to until complete.

    Example: bitscli gettemporaryname nightly 0
    """
    found, _ = properties.job_with_file(context(), job, index)
    name = properties.temporary_name(found, index)
    output.value(name, name, job=found, prop="temporary_name", raw=raw, as_json=as_json)


@app.command("getreplydata", rich_help_panel=_PANEL)
def getreplydata(job: JobArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
    """The server's reply as hex, 16 bytes a line (up to 1 MiB, as BITS); --raw prints one unbroken hex string.

    Example: bitscli getreplydata upload1
    """
    found, data = replies.data(context(), job)
    hex_text = data.hex()
    text = hex_text if raw else "\n".join(data[i : i + 16].hex(" ") for i in range(0, len(data), 16))
    output.value(text, hex_text, job=found, prop="reply_data", raw=raw, as_json=as_json)


@app.command("getreplyprogress", rich_help_panel=_PANEL)
def getreplyprogress(job: JobArg, raw: RawOpt = False, as_json: JsonOpt = False) -> None:
    """Bytes of the reply received so far, and its size (UNKNOWN until the upload half is done).

    Example: bitscli getreplyprogress upload1
    """
    found, progress = replies.progress(context(), job)
    total = "UNKNOWN" if progress.total == UNKNOWN else str(progress.total)
    document = {
        "bytes_transferred": progress.transferred,
        "bytes_total": None if progress.total == UNKNOWN else progress.total,
    }
    text = f"{progress.transferred} / {total}" if not raw else f"{progress.transferred}/{total}"
    output.value(text, document, job=found, prop="reply_progress", raw=raw, as_json=as_json)
