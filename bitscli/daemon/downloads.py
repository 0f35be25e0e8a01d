"""A download job in the daemon: its files in order, each checkpoint journaled, finished files made durable behind."""

from __future__ import annotations

import email.utils
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from bitscli.daemon import transitions
from bitscli.daemon.control import JobControl
from bitscli.daemon.durability import Durability
from bitscli.daemon.journal import Journal, Moved, Progress
from bitscli.daemon.retries import QuickRetries
from bitscli.errors import HResult
from bitscli.model import ACTIVE_STATES, ErrorContext, Job, JobFile, JobState
from bitscli.partfiles import part_path
from bitscli.transfer import files, http, job_request, local, ranges
from bitscli.transfer.classify import TransferError, local_error
from bitscli.transfer.client import Client
from bitscli.transfer.hashing import StreamHash
from bitscli.transfer.types import Download, Stopped, Unchanged, Version

log = logging.getLogger("bitscli.daemon")

READ_AHEAD = 16  # files read from the queue at a time; their part files are created ahead (files.Precreator)
# Other processes' changes (the CLI's setcustomheaders, say) are looked for at most this often (real time, a
# throttle, not a BITS timer): PRAGMA data_version is not free while the helper threads hold the GIL
# (benchmarks/download.py, many small files). This worker's own writes are always seen.
FOREIGN_CHECK_SECONDS = 0.01


class Recorder:
    """The engine's Progress for one file: journals each checkpoint and watches for a stop."""

    def __init__(self, control: JobControl, journal: Journal, index: int) -> None:
        self.control = control
        self.journal = journal
        self.index = index
        self.moved = Moved(False, False)  # whether this attempt wrote bytes, and new ones
        self.url: str | None = None  # the URL the bytes came from, after redirects
        self._last = control.clock.monotonic()

    def active_since_last(self) -> float:
        """Seconds of transfer since the last call (for the maximum download time)."""
        now = self.control.clock.monotonic()
        active, self._last = now - self._last, now
        return active

    def transferring(self, abort: Callable[[], None], url: str) -> None:
        self.url = url
        self.control.transferring(abort)

    def checkpoint(self, offset: int, version: Version, url: str) -> None:
        active = self.active_since_last()
        self.url = url
        at = Progress(self.index, offset, version.size, version.etag, version.last_modified, url, active)
        recorded = self.journal.record(at)
        self.moved = Moved(self.moved.written or recorded.written, self.moved.new or recorded.new)

    def stop_requested(self) -> bool:
        return self.control.stopping.is_set()

    def pace(self, nbytes: int) -> int:
        return self.control.pace(nbytes)


def run(queue_path: Path, control: JobControl, journal: Journal, client: Client) -> None:
    """Fetch the job's unfinished files one after another, until none is left, it fails, or it must stop."""
    loop = _Downloads(control, journal, client)
    durability = Durability(queue_path, control)
    try:
        loop.run(durability)
    finally:
        durability.close()
        loop.precreator.close()


class _Downloads:
    def __init__(self, control: JobControl, journal: Journal, client: Client) -> None:
        self.control = control
        self.journal = journal
        self.client = client
        self.precreator = files.Precreator()
        self._job: Job | None = None  # the header and next files as last read, and the queue's stamp then
        self._upcoming: list[tuple[int, JobFile]] = []
        self._stamp: tuple[int, int] | None = None
        self._stamp_checked = 0.0  # time.monotonic() of the last look at the stamp

    def run(self, durability: Durability) -> None:
        retries = QuickRetries(self.control)
        job, index, f = self._next()
        while True:
            if self.control.stopping.is_set() or job is None or job.state not in ACTIVE_STATES:
                self._settle(durability)
                return
            if index is None or f is None:
                if not self._settle(durability):
                    return
                job, index, f = self._next()
                if index is None:
                    self.journal.update(transitions.finish)
                    return
                continue  # a file whose completion could not be recorded: fetch it again
            if job.state is JobState.QUEUED:
                self.journal.update(transitions.connecting)
            recorder = Recorder(self.control, self.journal, index)
            part = part_path(f.local_name, job.id, index)
            hashing = StreamHash(*([f.expected_hash.partition(":")[0]] if f.expected_hash else []))
            conditional = self._conditional(job, f)
            try:
                version = _fetch(self.client, job, part, f, recorder, hashing, conditional)
                verified = _verify(self.journal, recorder, index, f, part, version, hashing)
            except Stopped:
                self._settle(durability)
                return
            except Unchanged as unchanged:
                log.info("job %s: file %d not modified on the server; the local file stays", job.id, index)
                durability.submit(part, Progress(index, 0, 0, None, None, str(unchanged), recorder.active_since_last(),
                                                 done=True, unchanged=True))  # fmt: skip
                job, index, f = self._next(after=index)
                continue
            except TransferError as err:
                if not self._settle(durability):
                    return
                if isinstance(err, FetchAgain) or retries.again(err, recorder.moved):
                    job, index, f = self._next()
                    continue
                self.journal.fail(index, err)
                return
            retries.reset()
            url = recorder.url or f.remote_name
            done = Progress(index, version.size, version.size, version.etag, version.last_modified, url,
                            recorder.active_since_last(), done=True,
                            verified_hash=verified)  # fmt: skip
            durability.submit(part, done)
            log.debug("job %s: file %d fetched (%d bytes)", job.id, index, version.size)
            job, index, f = self._next(after=index)

    def _conditional(self, job: Job, f: JobFile) -> dict[str, str]:
        """For a file fetched only if changed, from byte 0 over an existing local file: If-None-Match with the
        ETag saved when bitscli last wrote that file (it must still be that file), else If-Modified-Since from the
        saved Last-Modified, else from the file's own modification time."""
        if not (f.if_changed or job.if_changed) or f.bytes_transferred or f.ranges or job.dynamic:
            return {}
        try:
            st = os.stat(f.local_name)
        except OSError:
            return {}  # nothing here yet: a plain download
        with self.journal.queue.read() as tx:
            written = tx.written(f.local_name)
        same = written is not None and (written.size, written.mtime_ns, written.inode) == (
            st.st_size, st.st_mtime_ns, st.st_ino)  # fmt: skip
        if same and written is not None and written.etag:
            return {"If-None-Match": written.etag}
        if same and written is not None and written.last_modified:
            return {"If-Modified-Since": written.last_modified}
        return {"If-Modified-Since": email.utils.formatdate(st.st_mtime, usegmt=True)}

    def _next(self, after: int | None = None) -> tuple[Job | None, int | None, JobFile | None]:
        """The job's header, and its first file not yet complete (after index ``after``, when given).

        The header and the next few files are read again only when the queue may have changed (re-reading them
        for each file was a tenth of a 1,000-file job's time). The stamp is taken before the snapshot, so a
        commit between the two only causes one more read, never stale rows. The next files' part files are
        created ahead.
        """
        queue = self.journal.queue
        upcoming = [(i, f) for i, f in self._upcoming if after is None or i > after]
        now = time.monotonic()
        if self._stamp is None or queue.writes != self._stamp[1] or now - self._stamp_checked >= FOREIGN_CHECK_SECONDS:
            stamp, self._stamp_checked = queue.stamp(), now
        else:
            stamp = self._stamp  # looked at less than FOREIGN_CHECK_SECONDS ago, and nothing written here since
        if stamp != self._stamp or not upcoming:
            with queue.read() as tx:
                self._job = tx.job_header(self.control.job_id)
                upcoming = tx.incomplete_files(self.control.job_id, after, READ_AHEAD) if self._job is not None else []
            self._stamp = stamp
            self._precreate(self._job, upcoming[1:])
        self._upcoming = upcoming
        return (self._job, *upcoming[0]) if upcoming else (self._job, None, None)

    def _precreate(self, job: Job | None, ahead: list[tuple[int, JobFile]]) -> None:
        new = [(i, f) for i, f in ahead if i > self.precreator.until]
        if job is not None and new:
            self.precreator.create([part_path(f.local_name, job.id, i) for i, f in new], until=new[-1][0])

    def _settle(self, durability: Durability) -> bool:
        """Wait for the finished files to be recorded; False (and the job in error) if that failed."""
        try:
            durability.drain()
        except TransferError as err:
            self.journal.fail(None, err)
            return False
        return True


def _verify(
    journal: Journal, recorder: Recorder, index: int, f: JobFile, part: str, version: Version, hashing: StreamHash
) -> str | None:  # fmt: skip
    """The file counts as transferred only if its hash is the one expected, and the one the server's digest
    claims; returns the hash it was verified with (None: nothing to verify). A mismatch discards its bytes: the
    first is fetched again from zero at once, the second puts the job in ERROR."""
    wanted = [(f.expected_hash, "expected")] if f.expected_hash else []
    wanted += [(f"{algorithm}:{claimed}", f"the server's {hashing.claimed_by} says")
               for algorithm, claimed in hashing.claims.items()]  # fmt: skip
    if not wanted:
        return None
    try:
        hashing.ensure(part, version.size)  # a local copy, or a file found whole: its bytes never streamed past
    except OSError as exc:
        raise local_error(exc, part) from None
    for want, said in wanted:
        got = hashing.result(want.partition(":")[0])
        if got != want:
            _mismatch(journal, recorder, index, f, part, f"{said} {want}, got {got}")
    return wanted[0][0]


def _mismatch(journal: Journal, recorder: Recorder, index: int, f: JobFile, part: str, detail: str) -> None:
    try:
        os.truncate(part, 0)
    except OSError as exc:
        raise local_error(exc, part) from None
    recorder.checkpoint(0, Version(), recorder.url or f.remote_name)
    mismatches = journal.hash_mismatch(index)
    text = f"{f.remote_name} -> {f.local_name}: {detail}"
    if mismatches >= 2:
        raise TransferError(
            f"the hash is wrong again after fetching the file from zero ({text}); nothing was kept",
            code=HResult.CRYPT_E_HASH_VALUE, context=ErrorContext.REMOTE_FILE, transient=False,
        )  # fmt: skip
    log.warning("job %s file %d: hash mismatch (%s); fetching it again from zero", journal.control.job_id, index, text)
    raise FetchAgain(
        f"the hash was wrong ({text}); fetching the file again from zero", code=HResult.CRYPT_E_HASH_VALUE,
        context=ErrorContext.REMOTE_FILE, transient=True,
    )  # fmt: skip


class FetchAgain(TransferError):
    """The file's bytes were discarded (its hash was wrong): fetch it again from zero now, not after a delay."""


def _fetch(
    client: Client, job: Job, part: str, f: JobFile, recorder: Recorder, hashing: StreamHash | None = None,
    conditional: dict[str, str] | None = None,
) -> Version:  # fmt: skip
    """Run the engine for one file of the job."""
    download = Download(
        url=f.remote_name,
        part=part,
        offset=f.bytes_transferred,
        known=Version(f.bytes_total, f.etag, f.last_modified),
        headers=job_request.headers(job),
        security_flags=job.security_flags,
        dynamic=job.dynamic,
        request_options=job_request.request_options(job, f.remote_name),
        hashing=hashing,
        conditional=conditional or {},
    )
    if f.remote_name.startswith("/") or f.remote_name.lower().startswith("file:"):
        return local.copy(download, recorder)
    if f.ranges:
        return ranges.download(client, download, f.ranges, recorder)
    return http.download(client, download, recorder)
