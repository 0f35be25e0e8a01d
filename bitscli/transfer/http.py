"""HTTP(S) downloads into part files: HEAD, ranged GETs with If-Range, validators, durable offsets."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from urllib.parse import urljoin, urlsplit

from bitscli.errors import HResult, http_status
from bitscli.inputs.network import is_secret_header
from bitscli.model import UNKNOWN, ErrorContext, SecurityFlags
from bitscli.transfer import digests, direct, files, sink
from bitscli.transfer.classify import (
    TransferError,
    http_error,
    local_error,
    part_file_error,
    protocol_error,
    transport_error,
)
from bitscli.transfer.client import TRANSPORT_ERRORS, Client, Response
from bitscli.transfer.hashing import StreamHash
from bitscli.transfer.pacing import paced_into, paced_read
from bitscli.transfer.types import Download, Progress, Unchanged, Version

MAX_REDIRECTS = 10
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)


def parse_content_range(value: str) -> tuple[int, int, int]:
    """``bytes first-last/total`` -> (first, last, total); total is UNKNOWN for ``*``."""
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        raise ValueError(f"malformed Content-Range {value!r}")
    first, last = int(match.group(1)), int(match.group(2))
    total = UNKNOWN if match.group(3) == "*" else int(match.group(3))
    if last < first or (total != UNKNOWN and last >= total):
        raise ValueError(f"impossible Content-Range {value!r}")
    return first, last, total


def version_of(response: Response, size: int) -> Version:
    return Version(size, response.headers.get("ETag"), response.headers.get("Last-Modified"))


def download(client: Client, job: Download, progress: Progress) -> Version:
    """Fetch ``job.url`` into ``job.part`` from the durable offset; returns the version now complete.

    On return every byte is written but not yet durable: the caller fsyncs the part file before it records
    the file as complete (the daemon does that on a helper thread, behind the next download).
    """
    try:
        fd, offset = files.open_part(job.part, job.offset)
    except OSError as exc:
        raise part_file_error(exc, job.part) from None
    try:
        return _download(client, job, progress, fd, offset)
    finally:
        os.close(fd)


def _download(client: Client, job: Download, progress: Progress, fd: int, offset: int) -> Version:
    known = job.known
    if job.dynamic:
        # Dynamic content has no stable length or ranges: always from byte 0 (bits.md §3).
        if offset:
            restart(fd, progress, job.url)
        return _fetch(client, job, progress, fd, 0, Version())
    if not offset:
        # Nothing to resume: the GET's own headers give the size and validators, so skip the HEAD
        # (one round trip per file; it matters for jobs of many small files).
        return _fetch(client, job, progress, fd, 0, Version())
    head, url = probe(client, job)  # resuming: is the remote still the version our bytes came from?
    if head is not None:
        if head.differs_from(known):
            # The remote changed since our bytes were written: only this file starts again (bits.md §2.7).
            restart(fd, progress, url)
            offset, known = 0, head
        elif head.size != UNKNOWN and offset == head.size:
            progress.checkpoint(offset, head, url)
            return head
        else:  # keep the validators we resume against; take any we lacked from the HEAD
            known = Version(head.size, known.etag or head.etag, known.last_modified or head.last_modified)
    return _fetch(client, job, progress, fd, offset, known)


def restart(fd: int, progress: Progress, url: str) -> None:
    try:
        files.restart(fd)
    except OSError as exc:
        raise local_error(exc, "part file") from None
    progress.checkpoint(0, Version(), url)


def request(client: Client, method: str, job: Download, headers: dict[str, str]) -> tuple[Response, str]:
    """One request, following redirects ourselves so the job's redirect policy applies (bits.md §3).

    A redirect to another origin (scheme, host or port) leaves the job's credentials and secret headers behind,
    as curl, wget and requests do: Authorization, Proxy-Authorization, Cookie, and any custom header whose
    name marks it secret. They stay behind for the rest of the chain.
    """
    url = job.url
    options = job.request_options
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = client.send(method, url, headers, job.timeout, options)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, url) from None
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECTS or not location:
            if method == "GET" and response.status_code in (200, 206):
                with _closed_on_error(response):
                    check_body_framing(response, url)
            return response, url
        response.close()
        target = urljoin(url, location)
        _check_redirect(job.security_flags, url, target, response.status_code)
        if _origin(target) != _origin(url):
            headers = {name: value for name, value in headers.items() if not _credential_header(name)}
            options = {name: value for name, value in options.items() if name != "logins"}
        url = target
    raise TransferError(
        f"more than {MAX_REDIRECTS} redirects from {job.url}", code=HResult.BG_E_TOO_MANY_REDIRECTS,
        context=ErrorContext.REMOTE_FILE, transient=False,
    )  # fmt: skip


def _check_redirect(flags: int, source: str, target: str, status: int) -> None:
    def refuse(why: str) -> TransferError:
        return TransferError(
            f"redirect from {source} to {target} refused: {why}", code=http_status(status),
            context=ErrorContext.REMOTE_FILE, transient=False,
        )  # fmt: skip

    if flags & SecurityFlags.REDIRECT_POLICY_DISALLOW:
        raise refuse("the job's security flags disallow redirects")
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise refuse(f"bitscli follows redirects to http and https only, not {scheme}")
    downgrade = urlsplit(source).scheme.lower() == "https" and scheme == "http"
    if downgrade and not flags & SecurityFlags.REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP:
        raise refuse("HTTPS to HTTP needs security flag 0x800")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def _credential_header(name: str) -> bool:
    return name.lower() in ("authorization", "proxy-authorization", "cookie") or is_secret_header(name)


def check_body_framing(response: Response, url: str) -> None:
    """A body bitscli stores is the file's own bytes, framed one way only; anything else is refused unread.

    RFC 9110 §8.4: a content coding (gzip, br, ...) is not the file, whatever Accept-Encoding asked for.
    RFC 9112 §6.3: Transfer-Encoding with Content-Length "ought to be handled as an error" (it is how responses
    are smuggled). h11 (connection.py) has already refused every other bad framing: a Content-Length that is
    not one number, a transfer coding other than chunked.
    """
    coding = (response.headers.get("Content-Encoding") or "").strip().lower()
    if coding not in ("", "identity"):
        raise protocol_error(f"{url} sent its body with Content-Encoding {coding}, not the file's own bytes")
    if response.headers.get("Transfer-Encoding") is not None and response.headers.get("Content-Length") is not None:
        raise protocol_error(f"{url} sent both Transfer-Encoding and Content-Length; the body's end is ambiguous")


@contextlib.contextmanager
def _closed_on_error(response: Response) -> Iterator[None]:
    try:
        yield
    except BaseException:
        response.close()
        raise


def base_headers(job: Download) -> dict[str, str]:
    # identity: byte offsets must count the bytes as stored, not a compressed form of them.
    return {**job.headers, "Accept-Encoding": "identity"}


def probe(client: Client, job: Download) -> tuple[Version | None, str]:
    """Size and validators from HEAD; None when the server will not answer HEAD (we then just GET)."""
    response, url = request(client, "HEAD", job, base_headers(job))
    with response:
        status = response.status_code
        if status == 200:
            length = response.headers.get("Content-Length", "")
            return version_of(response, int(length) if length.isdigit() else UNKNOWN), url
        # A missing file, a refused login or a failing server gives the same answer to GET: stop here.
        if status in (401, 404, 407, 410) or (status >= 500 and status not in (501,)):
            raise http_error(status, response.reason or "", url, response.headers.get("Retry-After"))
        return None, url  # 405, 501, or a signed URL that only allows GET: skip HEAD


def _fetch(client: Client, job: Download, progress: Progress, fd: int, offset: int, known: Version) -> Version:
    headers = base_headers(job)
    if not offset:  # only a fetch from byte 0 is conditional: never mixed with a resumed range (If-Range does that)
        headers.update(job.conditional)
    validator = known.if_range() if offset else None
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    response, url = request(client, "GET", job, headers)
    with response:
        status = response.status_code
        if status == 304 and not offset and job.conditional:
            raise Unchanged(url)
        if status == 416 and offset and _unsatisfied_total(response) == offset:
            # RFC 9110 §15.5.17: the size in "bytes */N" is the file's now; equal to our durable bytes, we have it all.
            version = Version(offset, known.etag, known.last_modified)
            progress.checkpoint(offset, version, url)
            return version
        span_end: int | None = None
        if status == 206 and offset:
            expected, span_end = check_partial(response, offset, known)
            version = Version(expected, response.headers.get("ETag") or known.etag,
                              response.headers.get("Last-Modified") or known.last_modified)  # fmt: skip
        elif status == 200:
            if offset:
                # A 200 to a ranged request: the server ignored Range, or If-Range said the file changed.
                restart(fd, progress, url)
                offset = 0
            length = response.headers.get("Content-Length", "")
            version = version_of(response, int(length) if length.isdigit() else UNKNOWN)
        elif status == 416:
            restart(fd, progress, url)  # the file is not the size our bytes say (it shrank, or changed): start over
            raise protocol_error(f"the server says byte {offset} is past the end of {url}; restarting the file")
        else:
            raise http_error(status, response.reason or "", url, response.headers.get("Retry-After"))
        if job.hashing is not None:  # the server's own digest of the whole file is checked too
            job.hashing.claims, job.hashing.claimed_by = digests.claims(response.headers, status)
            for algorithm in job.hashing.claims:
                job.hashing.want(algorithm)
        # A read blocked on a stalled server must return at once on a stop (suspend within a second).
        progress.transferring(response.abort, url)
        return stream(response, fd, offset, version, progress, url, part=job.part, limit=span_end, hashing=job.hashing)


def check_partial(response: Response, offset: int, known: Version) -> tuple[int, int]:
    """Validate a 206 against what we asked for; returns the file's total size and where the span ends (exclusive).

    Never spliced if wrong. A span that ends before the file does (servers that cap ranges) is read to its end;
    the file then resumes from there.
    """
    try:
        first, last, total = parse_content_range(response.headers.get("Content-Range", ""))
    except ValueError as exc:
        raise protocol_error(str(exc), code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT) from None
    if first != offset:
        raise protocol_error(
            f"asked for bytes from {offset}, the server sent from {first}", code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT
        )
    if known.size != UNKNOWN and total != UNKNOWN and total != known.size:
        raise protocol_error(f"the file's size changed from {known.size} to {total} during the transfer")
    length = response.headers.get("Content-Length")
    if length is not None and int(length) != last - first + 1:  # one number: h11 has checked it
        raise protocol_error(
            f"the server's Content-Length ({length}) is not its Content-Range's span "
            f"({last - first + 1} bytes)", code=HResult.BG_E_INSUFFICIENT_RANGE_SUPPORT,
        )  # fmt: skip
    return total, last + 1


def _unsatisfied_total(response: Response) -> int | None:
    """The N of a 416's ``Content-Range: bytes */N``; None when it is missing or malformed."""
    match = _UNSATISFIED.match(response.headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def stream(
    response: Response, fd: int, offset: int, version: Version, progress: Progress, url: str,
    end: int | None = None, part: str | None = None, limit: int | None = None, hashing: StreamHash | None = None,
) -> Version:  # fmt: skip
    """Copy the body to the part file; checkpoints only ever name fsynced bytes.

    This thread reads; a PartWriter writes behind it, and its Syncer fsyncs and checkpoints behind that. A long
    body of known length (``part`` named, and no ``end`` inside a ranged file) goes around the page cache.
    """

    def read_error(exc: BaseException) -> Exception:
        return transport_error(exc, url)

    expected = version.size if end is None else end  # where this body must end in the part file
    # Never a byte past where the body must stop (its span, else its end): a longer body is cut there, refused.
    limit = min(limit, expected) if limit is not None and expected != UNKNOWN else limit or expected

    if hashing is not None and not hashing.algorithms:
        hashing = None  # nothing to check this file against: no hashing at all
    if hashing is not None:
        try:
            hashing.begin(fd, offset)  # a resumed file: what is saved is hashed once, then each block as written
        except OSError as exc:
            raise local_error(exc, "part file") from None
    readinto1 = response.readinto1
    long = version.size != UNKNOWN and version.size - offset >= direct.MIN_BYTES
    direct_fd = direct.open_for(part) if readinto1 and part and end is None and long else None
    writer: sink.PartWriter
    if readinto1 and direct_fd is not None:
        writer = around = direct.DirectPartWriter(direct_fd, fd, offset, progress, version, url)
        writer.hashing = hashing
        into = paced_into(readinto1, progress.pace)
        offset = around.pump_into(into, progress.stop_requested, TRANSPORT_ERRORS, read_error)
    else:
        writer = sink.PartWriter(fd, offset, progress, version, url)
        writer.hashing = hashing
        read = _bounded(response, limit - offset) if limit != UNKNOWN else response.read1
        offset = writer.pump(paced_read(read, progress.pace), progress.stop_requested, TRANSPORT_ERRORS, read_error)
    if limit != UNKNOWN and offset == limit and response.read1(1):
        writer.save()
        raise protocol_error(f"{url} sent more than the {limit} bytes it announced; the rest was not stored")
    if expected != UNKNOWN and offset != expected:
        writer.save()
        raise protocol_error(f"the body ended at byte {offset} of {expected} from {url}")
    return Version(offset, version.etag, version.last_modified)


def _bounded(response: Response, left: int) -> Callable[[int], bytes]:
    """read1 that never returns bytes past ``left`` more of them (a body must end where it said it would)."""

    def read(size: int) -> bytes:
        nonlocal left
        if left <= 0:
            return b""
        data = response.read1(min(size, left))
        left -= len(data)
        return data

    return read
