"""The reply of an upload-reply job: downloaded with the normal engine once the upload is whole (bits.md §4)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from bitscli.model import UploadState
from bitscli.transfer import http
from bitscli.transfer.classify import local_error
from bitscli.transfer.client import Client
from bitscli.transfer.types import Download, Version
from bitscli.transfer.upload import Events, Upload


def fetch_reply(client: Client, up: Upload, state: UploadState, part: str, events: Events) -> UploadState:
    """Download the reply with the normal engine (HEAD, ranges) into its part file; no URL means an empty reply."""
    if not state.reply_url:
        try:
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        except OSError as exc:
            raise local_error(exc, part) from None
        return dataclasses.replace(state, reply_total=0, reply_transferred=0, reply_done=True)

    class ReplyProgress:
        current = state

        def transferring(self, abort: Callable[[], None], url: str) -> None:
            pass

        def checkpoint(self, offset: int, version: Version, url: str) -> None:
            self.current = dataclasses.replace(
                self.current, reply_transferred=offset, reply_total=version.size, reply_etag=version.etag,
                reply_last_modified=version.last_modified,
            )  # fmt: skip
            events.save(self.current)

        def stop_requested(self) -> bool:
            return events.stop_requested()

        def pace(self, nbytes: int) -> int:
            return events.pace(nbytes)

    download = Download(
        url=state.reply_url, part=part, offset=state.reply_transferred,
        known=Version(state.reply_total, state.reply_etag, state.reply_last_modified), headers=up.headers,
        request_options=up.request_options,
    )  # fmt: skip
    version = http.download(client, download, ReplyProgress())
    try:
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise local_error(exc, part) from None
    return dataclasses.replace(
        state, reply_total=version.size, reply_transferred=version.size, reply_etag=version.etag,
        reply_last_modified=version.last_modified, reply_done=True,
    )  # fmt: skip
