"""Policy and defaults from the TOML config file (BITS group-policy limits, bits.md §5)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from bitscli import paths
from bitscli.errors import ConfigError
from bitscli.policy import Policy, PolicyError, from_table


@dataclass(frozen=True)
class Config:
    max_jobs_per_user: int = 60  # MaxJobsPerUser
    max_files_per_job: int = 200  # MaxFilesPerJob
    max_ranges_per_file: int = 500  # MaxRangesPerFile
    history_days: int = 30  # how long finished jobs stay visible to `list --all` and GUID look-ups
    job_inactivity_days: int = 90  # JobInactivityTimeout: a job untouched this long is cancelled (bits.md §5)
    allow_notify_command_line: bool = True  # bits.md §6: a known persistence technique; policy can forbid it
    background_threads: bool = True  # background jobs' threads at nice 10 in the idle I/O class (libc.py)
    bandwidth: Policy = field(default_factory=Policy)  # the [bandwidth] table (policy.py)
    hooks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # [hooks]: on_transferred = [argv...]


_SECTIONS = {
    "limits": ("max_jobs_per_user", "max_files_per_job", "max_ranges_per_file"),
    "queue": ("history_days", "job_inactivity_days"),
    "notify": ("allow_notify_command_line",),
    "daemon": ("background_threads",),
}


def load(path: Path | None = None) -> Config:
    """The config file's settings over the defaults; a missing file means all defaults."""
    path = path or paths.config_file()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import tomllib  # deferred: most machines have no config file

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", hint="fix or remove the file") from None
    return _from_document(doc, path)


def _from_document(doc: dict[str, object], path: Path) -> Config:
    defaults: dict[str, object] = {f.name: f.default for f in fields(Config) if f.name not in ("bandwidth", "hooks")}
    values: dict[str, object] = {}
    for section, table in doc.items():
        if section == "bandwidth" and isinstance(table, dict):
            try:
                values["bandwidth"] = from_table(table)
            except PolicyError as exc:
                raise ConfigError(f"{path}: {exc}", hint="see README: Polite by default") from None
            continue
        if section == "hooks" and isinstance(table, dict):
            values["hooks"] = _hooks(table, path)
            continue
        if section not in _SECTIONS or not isinstance(table, dict):
            known = ", ".join([*_SECTIONS, "bandwidth", "hooks"])
            raise ConfigError(f"{path}: unknown section [{section}]", hint=f"known: {known}")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise ConfigError(f"{path}: unknown setting {section}.{key}")
            expected = type(defaults[key])
            out_of_range = isinstance(value, int) and expected is int and not 0 < value <= 1_000_000
            if type(value) is not expected or out_of_range:
                raise ConfigError(
                    f"{path}: {section}.{key} must be a {'positive whole number' if expected is int else 'boolean'}"
                )
            values[key] = value
    return Config(**values)  # type: ignore[arg-type]


HOOKS = ("on_transferred", "on_error", "on_complete")


def _hooks(table: dict[str, object], path: Path) -> dict[str, tuple[str, ...]]:
    """``on_transferred = ["/usr/local/bin/handler", "{id}", "{name}"]``: an argv list, its program a full path."""
    import os

    hooks: dict[str, tuple[str, ...]] = {}
    for key, value in table.items():
        if key not in HOOKS:
            raise ConfigError(f"{path}: unknown hook hooks.{key}", hint=f"known: {', '.join(HOOKS)}")
        if not isinstance(value, list) or not value or not all(isinstance(word, str) for word in value):
            raise ConfigError(
                f"{path}: hooks.{key} must be a list of strings: the program and its arguments",
                hint='for example: on_transferred = ["/usr/local/bin/handler", "{id}", "{name}"]',
            )
        if not os.path.isabs(value[0]):
            raise ConfigError(f"{path}: hooks.{key} runs {value[0]!r}, which must be a full path (no PATH search)")
        hooks[key] = tuple(value)
    return hooks
