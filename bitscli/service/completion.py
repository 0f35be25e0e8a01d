"""complete: finished files renamed into place, durably, before the job is ACKNOWLEDGED."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bitscli import actions, partfiles
from bitscli.errors import BitsError, HResult
from bitscli.model import Job, JobFile, JobType
from bitscli.service.context import Context, resolve
from bitscli.transaction import Transaction, Written


@dataclass(frozen=True)
class Completion:
    job: Job
    kept: int  # files now under their final names
    total: int

    @property
    def partial(self) -> bool:
        """BG_S_PARTIAL_COMPLETE: some files were not finished and were dropped."""
        return self.kept < self.total


def complete(ctx: Context, ref: str) -> Completion:
    """ACKNOWLEDGED: finished files are renamed into place (durably) before the state is committed."""
    with ctx.queue.write() as tx:
        job = resolve(tx, ref)
        done = actions.complete(job, ctx.clock.now())
        kept = 0
        directories = set()
        for index, f in enumerate(job.files):
            part = partfiles.part_path(f.local_name, job.id, index)
            if f.completed and f.unchanged:  # 304: the file in place is the current one, and stays untouched
                partfiles.discard(part)
                kept += 1
            elif f.completed and (job.type.is_upload or _publish(part, f.local_name, synced=True)):
                kept += 1
                directories.add(os.path.dirname(f.local_name))
                if not job.type.is_upload:
                    _remember_written(tx, f)
            elif not job.type.is_upload:
                partfiles.discard(part)
        if job.type is JobType.UPLOAD_REPLY and _publish(partfiles.reply_part(job), partfiles.reply_name(job)):
            directories.add(os.path.dirname(partfiles.reply_name(job)))
        for directory in directories:  # the renames are durable before ACKNOWLEDGED is committed
            partfiles.fsync_directory(directory)
        tx.update(done, job)
    return Completion(done, kept, len(job.files))


def _remember_written(tx: Transaction, f: JobFile) -> None:
    """The validators of what was just published there, and the file's identity: a later --if-changed fetch
    of the same name asks the server with them, as long as the file is still this one."""
    try:
        st = os.stat(f.local_name)
    except OSError:
        return
    tx.save_written(f.local_name, Written(f.etag, f.last_modified, st.st_size, st.st_mtime_ns, st.st_ino))


def _publish(part: str, final: str, synced: bool = False) -> bool:
    try:
        # A re-run after a crash between the renames and the commit finds the file already in place.
        return partfiles.publish(part, final, sync_directory=False, synced=synced) or os.path.exists(final)
    except OSError as exc:
        raise BitsError(
            f"cannot move the finished file into place at {final}: {exc.strerror}; the job was not completed",
            hint="fix the problem (disk space, permissions) and run complete again",
            code=HResult.E_ACCESSDENIED,
        ) from None
