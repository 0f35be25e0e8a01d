"""Files added with ranges: only the listed byte ranges, written one after another in the order given."""

from __future__ import annotations

import os

from bitscli.errors import HResult
from bitscli.model import LENGTH_TO_EOF, UNKNOWN, ByteRange, ErrorContext
from bitscli.transfer import files
from bitscli.transfer.classify import TransferError, http_error, part_file_error
from bitscli.transfer.client import Client
from bitscli.transfer.http import base_headers, check_partial, probe, request, restart, stream
from bitscli.transfer.types import Download, Progress, Version


def resolve(ranges: tuple[ByteRange, ...], size: int) -> list[tuple[int, int]]:
    """(remote offset, length) for each range, with ``eof`` made concrete; BG_E_INVALID_RANGE past the end."""
    resolved = []
    for r in ranges:
        length = size - r.offset if r.length == LENGTH_TO_EOF else r.length
        if size != UNKNOWN and (r.offset >= size or r.offset + length > size):
            raise TransferError(
                f"range {r} lies outside the remote file of {size} bytes", code=HResult.BG_E_INVALID_RANGE,
                context=ErrorContext.REMOTE_FILE, transient=False,
            )  # fmt: skip
        resolved.append((r.offset, length))
    return resolved


def download(client: Client, job: Download, ranges: tuple[ByteRange, ...], progress: Progress) -> Version:
    """The local file is the ranges concatenated: remote 100-199, 900-999 give a 200-byte file (BITS)."""
    try:
        fd, offset = files.open_part(job.part, job.offset)
    except OSError as exc:
        raise part_file_error(exc, job.part) from None
    try:
        head, url = probe(client, job)
        if head is None or head.size == UNKNOWN:
            raise TransferError(
                f"{job.url} did not report its size, which ranges need", code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT,
                context=ErrorContext.REMOTE_FILE, transient=False,
            )  # fmt: skip
        if offset and head.differs_from(job.known):
            restart(fd, progress, url)  # the remote changed: the ranges we hold are from another version
            offset = 0
        pieces = resolve(ranges, head.size)
        total = sum(length for _, length in pieces)
        version = Version(total, head.etag, head.last_modified)
        written = 0
        for remote_offset, length in pieces:
            if offset < written + length:
                skip = max(0, offset - written)  # resume inside this range
                _fetch_range(
                    client, job, fd, progress, written + skip, remote_offset + skip, length - skip, version, head
                )
                offset = written + length
            written += length
        return version  # the caller fsyncs before it records the file as complete
    finally:
        os.close(fd)


def _fetch_range(
    client: Client, job: Download, fd: int, progress: Progress, at: int, remote_offset: int, length: int,
    version: Version, head: Version,
) -> None:  # fmt: skip
    headers = base_headers(job)
    headers["Range"] = f"bytes={remote_offset}-{remote_offset + length - 1}"
    response, url = request(client, "GET", job, headers)
    with response:
        if response.status_code == 200:
            raise TransferError(
                f"{url} ignored the range request (answered 200)", code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT,
                context=ErrorContext.REMOTE_FILE, transient=False,
            )  # fmt: skip
        if response.status_code != 206:
            raise http_error(response.status_code, response.reason or "", url, response.headers.get("Retry-After"))
        _total, span_end = check_partial(response, remote_offset, head)
        now = Version(head.size, response.headers.get("ETag") or head.etag, response.headers.get("Last-Modified"))
        if now.differs_from(head):
            raise TransferError(
                f"{url} changed during the transfer", code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT,
                context=ErrorContext.REMOTE_FILE, transient=True,
            )  # fmt: skip
        os.lseek(fd, at, os.SEEK_SET)
        progress.transferring(response.abort, url)
        stream(response, fd, at, version, progress, url, end=at + length, limit=at + span_end - remote_offset)
