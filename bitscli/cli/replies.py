"""getreplydata and getreplyprogress: the reply of an upload-reply job (bits.md §1b)."""

import typer

from bitscli import output, replies
from bitscli.cli.options import JobArg, JsonOpt, RawOpt, context
from bitscli.model import UNKNOWN

app = typer.Typer()
_PANEL = "Getters"


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
