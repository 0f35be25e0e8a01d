"""Job properties: the setters' use cases, credentials, custom headers, and a file's temporary name."""

from __future__ import annotations

from bitscli import actions
from bitscli.errors import HResult, InvalidState, NotSupported
from bitscli.inputs import fields, names, network
from bitscli.model import AuthScheme, AuthTarget, Credential, Job, JobFile
from bitscli.partfiles import part_path
from bitscli.service.context import Context, change_job
from bitscli.service.jobs import get_job


def set_properties(ctx: Context, ref: str, **changes: object) -> Job:
    return change_job(ctx, ref, lambda job, now: actions.modify(job, now, "change", **changes))


def set_dynamic(ctx: Context, ref: str, dynamic: bool) -> Job:
    return change_job(ctx, ref, lambda job, now: actions.set_dynamic(job, dynamic, now))


def set_reply_file_name(ctx: Context, ref: str, path: str) -> Job:
    checked = names.check_local_name(path, upload=False)
    return change_job(ctx, ref, lambda job, now: actions.set_reply_file_name(job, checked, now))


def set_validation_state(ctx: Context, ref: str, index: int, valid: bool) -> Job:
    return change_job(ctx, ref, lambda job, now: actions.set_validation_state(job, index, valid, now))


def set_notify_command(ctx: Context, ref: str, program: str, parameters: str | None) -> Job:
    prog, params = fields.parse_notify_command(program, parameters)
    if prog is not None and not ctx.config.allow_notify_command_line:
        raise NotSupported(
            "notification command lines are disabled by policy",
            hint="notify.allow_notify_command_line = false in the config file",
            code=HResult.BG_E_BLOCKED_BY_POLICY,
        )
    return set_properties(ctx, ref, notify_program=prog, notify_parameters=params)


def set_credentials(
    ctx: Context, ref: str, target: AuthTarget, scheme: AuthScheme, username: str | None, password: str | None
) -> Job:
    if scheme is AuthScheme.PASSPORT:
        raise NotSupported("the PASSPORT scheme was retired by Microsoft", hint="use BASIC, DIGEST, NTLM or NEGOTIATE")
    network.check_credentials(scheme, username, password)
    credential = Credential(target, scheme, username, password)

    def change(job: Job, now: float) -> Job:
        others = tuple(c for c in job.credentials if (c.target, c.scheme) != (target, scheme))
        return actions.modify(job, now, "change", credentials=(*others, credential))

    return change_job(ctx, ref, change)


def remove_credentials(ctx: Context, ref: str, target: AuthTarget, scheme: AuthScheme) -> tuple[Job, bool]:
    removed = False

    def change(job: Job, now: float) -> Job:
        nonlocal removed
        kept = tuple(c for c in job.credentials if (c.target, c.scheme) != (target, scheme))
        removed = len(kept) != len(job.credentials)
        return actions.modify(job, now, "change", credentials=kept)

    return change_job(ctx, ref, change), removed


def custom_headers(ctx: Context, ref: str) -> tuple[Job, tuple[str, ...]]:
    job = get_job(ctx, ref)
    if job.custom_headers_write_only:
        raise InvalidState(
            f"the custom headers of job {job.id} are write-only",
            hint="they were made write-only with makecustomheaderswriteonly; that cannot be undone",
            code=HResult.E_ACCESSDENIED,
        )
    return job, job.custom_headers


def make_headers_write_only(ctx: Context, ref: str) -> Job:
    return set_properties(ctx, ref, custom_headers_write_only=True)


def job_with_file(ctx: Context, ref: str, index: int) -> tuple[Job, JobFile]:
    job = get_job(ctx, ref)
    return job, actions.file_at(job, index)


def temporary_name(job: Job, index: int) -> str:
    return part_path(actions.file_at(job, index).local_name, job.id, index)
