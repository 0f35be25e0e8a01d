"""All rendering: BitsAdmin-compatible text, bare values, JSON, rich tables on a terminal; errors to stderr."""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
import traceback
from typing import Any

from bitscli.errors import BitsError, describe, format_hresult
from bitscli.inputs.fields import format_acl_flags, format_rate
from bitscli.inputs.names import redact_text, redact_url
from bitscli.inputs.network import redact_header
from bitscli.model import UNKNOWN, Job, JobFile, NotifyFlags, SecurityFlags
from bitscli.policy import Allowed

JSON_SCHEMA_VERSION = 1  # bump only with an incompatible change to the documented JSON (README)


# --- errors ---------------------------------------------------------------------------------------


# Everything bitscli prints passes redact_text on its way out: a URL's password never leaves, whatever the
# message (an error from the engine, a traceback with --debug, a JSON document).


json_errors = False  # set by main() when --json was given: errors then go to stderr as one JSON object


def error(message: str, hint: str | None = None, *, status: int = 1, code: int | None = None) -> None:
    """``error: ...`` and ``hint: ...`` on stderr; with --json, one object: code, name, message, hint, exit status."""
    if json_errors:
        known = describe(code) if code is not None else None
        document = {"schema": JSON_SCHEMA_VERSION, "error": {
            "code": f"0x{code & 0xFFFFFFFF:08x}" if code is not None else None, "name": known[0] if known else None,
            "message": message, "hint": hint, "exit_status": int(status),
        }}  # fmt: skip
        sys.stderr.write(redact_text(json.dumps(document, ensure_ascii=False)) + "\n")
        return
    sys.stderr.write(redact_text(f"error: {message}\n"))
    if hint:
        sys.stderr.write(redact_text(f"hint: {hint}\n"))


def bits_error(exc: BitsError) -> None:
    if json_errors:
        error(exc.message, exc.hint, status=exc.exit_code, code=exc.code)
        return
    suffix = f" [{format_hresult(exc.code)}]" if exc.code is not None else ""
    error(exc.message + suffix, exc.hint)


def internal_error(exc: BaseException, debug: bool) -> None:
    if debug:
        sys.stderr.write(redact_text("".join(traceback.format_exception(exc))))
    error(
        f"internal error: {type(exc).__name__}",
        "this is a bug in bitscli; run again with --debug for details and report it",
    )


def warning(message: str) -> None:
    sys.stderr.write(redact_text(f"warning: {message}\n"))


def line(text: str) -> None:
    sys.stdout.write(redact_text(text) + "\n")


# --- plain values ---------------------------------------------------------------------------------


def fmt_time(t: float | None) -> str:
    return "UNKNOWN" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def iso_time(t: float | None) -> str | None:
    """RFC 3339 in local time with the offset written ``+01:00`` (strftime's ``%z`` gives ``+0100``)."""
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def fmt_size(n: int) -> str:
    return "UNKNOWN" if n == UNKNOWN else str(n)


def value(text: str, json_value: object, *, job: Job, prop: str, raw: bool, as_json: bool) -> None:
    """A getter's answer: bare text, the text with no newline (--raw, like /RAWRETURN) or JSON."""
    if as_json:
        _json({"schema": JSON_SCHEMA_VERSION, "id": job.id, "property": prop, "value": json_value})
    elif raw:
        sys.stdout.write(redact_text(text))
    else:
        line(text)


def document(fields: dict[str, Any]) -> None:
    """A JSON document on stdout, with the schema version every document carries."""
    _json({"schema": JSON_SCHEMA_VERSION, **fields})


def _json(document: object) -> None:
    sys.stdout.write(redact_text(json.dumps(document, indent=2, ensure_ascii=False)) + "\n")


# --- jobs -----------------------------------------------------------------------------------------


_UNPRINTABLE_RE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def printable(text: str) -> str:
    """A stored text as one line of plain characters: controls (a newline too) and invisible formatting
    characters (a right-to-left override) are shown escaped, so no text can forge a line scripts read."""
    return _UNPRINTABLE_RE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def job_line(job: Job) -> str:
    """The one-line /LIST and /INFO format: {GUID} 'name' STATE files / total bytes / total."""
    return (
        f"{job.id} '{printable(job.display_name)}' {job.state.name} {job.files_transferred} / {job.files_total} "
        f"{job.bytes_transferred} / {fmt_size(job.bytes_total)}"
    )


def file_line(f: JobFile) -> str:
    """BitsAdmin's file line; a file with an expected hash gets a second line: what it must match, and whether
    it did (``HASH: sha256:... VERIFIED``, ``... NOT YET VERIFIED``, and the mismatches so far)."""
    status = "UNCHANGED" if f.unchanged else "TRANSFERRED" if f.completed else "WORKING"
    names = f"{printable(redact_url(f.remote_name))} -> {printable(f.local_name)}"
    text = f"{f.bytes_transferred} / {fmt_size(f.bytes_total)} {status} {names}"
    if f.expected_hash:
        verified = "VERIFIED" if f.verified_hash == f.expected_hash else "NOT YET VERIFIED"
        mismatches = f" ({f.hash_mismatches} mismatch(es))" if f.hash_mismatches else ""
        text += f"\n    HASH: {f.expected_hash} {verified}{mismatches}"
    return text


def error_lines(job: Job) -> list[str]:
    err = job.error
    if err is None:
        return []
    if err.file_index is not None and err.file_index < len(job.files):
        f = job.files[err.file_index]
        lines = [f"ERROR FILE:    {printable(redact_url(f.remote_name))} -> {printable(f.local_name)}"]
    else:
        lines = ["ERROR FILE:    (none)"]
    lines.append(f"ERROR CODE:    {format_hresult(err.code)} - {printable(err.message)}")
    lines.append(f"ERROR CONTEXT: 0x{int(err.context):08x} - {err.context.name.replace('_', ' ').lower()}")
    return lines


def notify_command_text(job: Job) -> str:
    if job.notify_program is None:
        return "none"
    return f"'{job.notify_program}' {job.notify_parameters or 'NULL'}"


def verbose_block(job: Job) -> str:
    """The documented /INFO /VERBOSE layout (bits.md §1a; scripts grep these keys), then bitscli's extras."""
    rows = [
        f"GUID: {job.id} DISPLAY: {printable(job.display_name)}",
        f"TYPE: {job.type.label} STATE: {job.state.name} OWNER: {job.owner}",
        f"PRIORITY: {job.priority.name} FILES: {job.files_transferred} / {job.files_total} "
        f"BYTES: {job.bytes_transferred} / {fmt_size(job.bytes_total)}",
        f"CREATION TIME: {fmt_time(job.creation_time)} MODIFICATION TIME: {fmt_time(job.modification_time)}",
        f"COMPLETION TIME: {fmt_time(job.completion_time)}",
        f"NOTIFY INTERFACE: UNREGISTERED NOTIFICATION FLAGS: {job.notify_flags}",
        f"RETRY DELAY: {job.min_retry_delay} NO PROGRESS TIMEOUT: {job.no_progress_timeout} "
        f"ERROR COUNT: {job.error_count}",
        f"PROXY USAGE: {job.proxy_usage.name} PROXY LIST: {job.proxy_list or 'NULL'} "
        f"PROXY BYPASS LIST: {job.proxy_bypass_list or 'NULL'}",
        *error_lines(job),
        f"DESCRIPTION: {printable(job.description)}",
        "JOB FILES:",
        *(file_line(f) for f in job.files),
        f"NOTIFICATION COMMAND LINE: {notify_command_text(job)}",
        f"MAX DOWNLOAD TIME: {job.max_download_time} DYNAMIC CONTENT: {str(job.dynamic).upper()}",
        f"SECURITY FLAGS: 0x{job.security_flags:x}{_certificate_checks(job)} HTTP METHOD: {job.http_method} "
        f"ACL FLAGS: {format_acl_flags(job.acl_flags) or 'NONE'}",
        f"CUSTOM HEADERS: {_header_names(job)}",
        f"CREDENTIALS: {_credential_names(job)}",
        f"MAX BANDWIDTH: {format_rate(job.max_bandwidth)} START JITTER: "
        f"{'DEFAULT' if job.start_jitter is None else job.start_jitter} "
        f"IF CHANGED: {'ON' if job.if_changed else 'OFF'}",
        f"CA BUNDLE: {job.ca_bundle or 'SYSTEM'} CLIENT CERTIFICATE: {job.client_certificate or 'NONE'}",
    ]
    if job.type.label == "UPLOAD-REPLY":
        rows.append(f"REPLY FILE: {job.reply_file_name or 'AUTO'}")
    return "\n".join(rows)


def _certificate_checks(job: Job) -> str:
    """What the flags that ignore certificate errors do here: OpenSSL turns the checks off together, not one."""
    flags = job.security_flags
    if flags & (SecurityFlags.IGNORE_CERT_DATE_INVALID | SecurityFlags.IGNORE_UNKNOWN_CA
                | SecurityFlags.IGNORE_CERT_WRONG_USAGE):  # fmt: skip
        return " (certificates not checked)"
    if flags & SecurityFlags.IGNORE_CERT_CN_INVALID:
        return " (certificate names not checked)"
    return ""


def _credential_names(job: Job) -> str:
    """Target, scheme and user of each credential; passwords are never shown."""
    names = [f"{c.target.name} {c.scheme.name} {c.username or 'NULL'}" for c in job.credentials]
    return ", ".join(names) or "NONE"


def _header_names(job: Job) -> str:
    if not job.custom_headers:
        return "NONE"
    names = ", ".join(h.partition(":")[0] for h in job.custom_headers)
    return names + (" (write-only)" if job.custom_headers_write_only else "")


def job_json(job: Job) -> dict[str, Any]:
    """The documented JSON form of a job (README: JSON output). Secrets are never included."""
    err = job.error
    return {
        "id": job.id,
        "name": job.display_name,
        "description": job.description,
        "type": job.type.label,
        "state": job.state.name,
        "priority": job.priority.name,
        "owner": job.owner,
        "files_total": job.files_total,
        "files_transferred": job.files_transferred,
        "bytes_total": None if job.bytes_total == UNKNOWN else job.bytes_total,
        "bytes_transferred": job.bytes_transferred,
        "creation_time": iso_time(job.creation_time),
        "modification_time": iso_time(job.modification_time),
        "completion_time": iso_time(job.completion_time),
        "error_count": job.error_count,
        "error": None
        if err is None
        else {
            "code": f"0x{err.code:08x}",
            "context": err.context.name,
            "file_index": err.file_index,
            "message": err.message,
        },
        "properties": {
            "notify_flags": job.notify_flags,
            "notify_flag_names": [f.name for f in NotifyFlags if job.notify_flags & f],
            "notify_program": job.notify_program,
            "notify_parameters": job.notify_parameters,
            "min_retry_delay": job.min_retry_delay,
            "no_progress_timeout": job.no_progress_timeout,
            "max_download_time": job.max_download_time,
            "proxy_usage": job.proxy_usage.name,
            "proxy_list": job.proxy_list,
            "proxy_bypass_list": job.proxy_bypass_list,
            "custom_header_names": [h.partition(":")[0] for h in job.custom_headers],
            "custom_headers_write_only": job.custom_headers_write_only,
            "credentials": [
                {"target": c.target.name, "scheme": c.scheme.name, "username": c.username} for c in job.credentials
            ],
            "security_flags": job.security_flags,
            "http_method": job.http_method,
            "acl_flags": format_acl_flags(job.acl_flags),
            "dynamic": job.dynamic,
            "reply_file_name": job.reply_file_name,
            "max_bandwidth": job.max_bandwidth or None,
            "start_jitter": job.start_jitter,
            "if_changed": job.if_changed,
            "not_before": iso_time(job.not_before) if job.not_before is not None else None,
            "ca_bundle": job.ca_bundle,
            "client_certificate": job.client_certificate,
        },
        "files": [file_json(i, f) for i, f in enumerate(job.files)],
    }


def file_json(index: int, f: JobFile) -> dict[str, Any]:
    return {
        "index": index,
        "remote_name": redact_url(f.remote_name),
        "local_name": f.local_name,
        "bytes_total": None if f.bytes_total == UNKNOWN else f.bytes_total,
        "bytes_transferred": f.bytes_transferred,
        "completed": f.completed,
        "ranges": [str(r) for r in f.ranges],
        "validation_state": f.validation_state,
        "expected_hash": f.expected_hash,
        "verified_hash": f.verified_hash,
        "hash_mismatches": f.hash_mismatches,
        "if_changed": f.if_changed,
        "unchanged": f.unchanged,
    }


def info(job: Job, *, verbose: bool, as_json: bool, allowed: Allowed | None = None) -> None:
    """One job; ``allowed``: the rate the bandwidth policy gives it now, for a job the daemon has work for."""
    if as_json:
        document = job_json(job)
        if allowed is not None:
            document["allowed_rate"] = allowed_json(allowed)
        _json({"schema": JSON_SCHEMA_VERSION, "job": document})
        return
    text = verbose_block(job) if verbose else job_line(job)
    if allowed is not None and (verbose or allowed.rate == 0):
        text += ("\n" if verbose else " ") + allowed_text(allowed)
    line(text)


def allowed_json(allowed: Allowed) -> dict[str, Any]:
    """The rate a job may use now, as `info --json` and `monitor --json` print it."""
    return {
        "bytes_per_second": allowed.rate, "why": allowed.why,
        "until": iso_time(allowed.until) if allowed.until is not None else None,
        "yields_to_other_traffic": allowed.yields,
    }  # fmt: skip


def allowed_text(allowed: Allowed) -> str:
    """``waiting for the bandwidth window (until Mon 19:00)``, or ``ALLOWED RATE: 2 MiB/s (work hours (LOW))``."""
    until = f" until {time.strftime('%a %H:%M', time.localtime(allowed.until))}" if allowed.until else ""
    if allowed.rate == 0:
        return f"(waiting for {allowed.waiting_for}{until})"
    yields = "; yields to other traffic" if allowed.yields else ""
    if allowed.rate is None:
        return f"ALLOWED RATE: NO LIMIT{yields}"
    return f"ALLOWED RATE: {format_rate(allowed.rate)} ({allowed.why}{until}){yields}"


def jobs(items: list[Job], *, verbose: bool, as_json: bool) -> None:
    if as_json:
        _json({"schema": JSON_SCHEMA_VERSION, "jobs": [job_json(j) for j in items]})
        return
    if not verbose and sys.stdout.isatty() and items:
        _jobs_table(items)
    else:
        body = "\n\n".join(verbose_block(j) for j in items) if verbose else "\n".join(job_line(j) for j in items)
        sys.stdout.write(redact_text(body) + "\n" if body else "")
    sys.stdout.write(f"\nListed {len(items)} job(s).\n")


def _jobs_table(items: list[Job]) -> None:
    from rich.console import Console  # deferred: only a terminal gets the table
    from rich.table import Table

    console = Console()
    # The GUID stays whole (people paste it); the name comes last and wraps; PRIORITY needs room.
    columns = ["GUID", "STATE", *(["PRIORITY"] if console.width >= 100 else []), "FILES", "BYTES", "NAME"]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in columns:
        table.add_column(title, no_wrap=title != "NAME", overflow="fold", min_width=6 if title == "NAME" else None)
    for j in items:
        cells = {
            "GUID": j.id,
            "STATE": j.state.name,
            "PRIORITY": j.priority.name,
            "FILES": f"{j.files_transferred}/{j.files_total}",
            "BYTES": f"{human_size(j.bytes_transferred)}/{human_size(j.bytes_total)}",
            "NAME": printable(j.display_name),
        }
        table.add_row(*(cells[c] for c in columns))
    console.print(table)


def human_size(n: int) -> str:
    if n == UNKNOWN:
        return "?"
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def files(job: Job, *, as_json: bool) -> None:
    if as_json:
        _json(
            {
                "schema": JSON_SCHEMA_VERSION,
                "id": job.id,
                "files": [file_json(i, f) for i, f in enumerate(job.files)],
            }
        )
        return
    body = "".join(f"{file_line(f)}\n" for f in job.files)
    sys.stdout.write(redact_text(f"{body}\nListed {len(job.files)} file(s).\n"))


def headers(items: tuple[str, ...]) -> str:
    return "\n".join(redact_header(h) for h in items) if items else "NULL"
