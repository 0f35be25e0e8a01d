"""Bandwidth policy as BITS's group policies have it (bits.md §5): weekly windows and caps, pure rules on `now`."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

from bitscli.model import Job, JobPriority

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK = 7 * 24 * 60  # minutes
NO_LIMIT = None  # a cap of "none" (or "off" in a timetable)
MAX_JITTER = 7 * 86_400  # a start jitter longer than a week is a typo
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAY_RANGE_RE = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))?$", re.IGNORECASE)

Cap = int | None  # bytes a second; 0: wait; None: no limit


class PolicyError(ValueError):
    """A policy that cannot be: a bad day, time, rate or timetable entry; the message says where."""


@dataclass(frozen=True)
class Window:
    """Days of the week and a daily span; a span that ends before it starts runs past midnight."""

    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int

    def holds(self, minute_of_week: int) -> bool:
        day, minute = divmod(minute_of_week, 24 * 60)
        if self.start <= self.end:
            return day in self.days and self.start <= minute < self.end
        # Past midnight: the evening of a listed day, or the morning after one.
        return (day in self.days and minute >= self.start) or ((day - 1) % 7 in self.days and minute < self.end)

    def edges(self) -> list[int]:
        """The minutes of the week at which it opens or closes."""
        return sorted({(d * 24 * 60 + self.start) % WEEK for d in self.days}
                      | {(d * 24 * 60 + self.end + (24 * 60 if self.end < self.start else 0)) % WEEK
                         for d in self.days})  # fmt: skip


@dataclass(frozen=True)
class Caps:
    """A cap for each background priority."""

    high: Cap = NO_LIMIT
    normal: Cap = NO_LIMIT
    low: Cap = NO_LIMIT

    def of(self, priority: JobPriority) -> Cap:
        return {JobPriority.HIGH: self.high, JobPriority.NORMAL: self.normal, JobPriority.LOW: self.low}[priority]


@dataclass(frozen=True)
class Policy:
    """The [bandwidth] table. Each part is optional; where several apply, the lowest cap wins."""

    background: tuple[Window, Cap, Cap] | None = None  # MaxTransferRateOnSchedule: window, inside, outside
    work: tuple[Window, Caps, Caps] | None = None  # EnableBandwidthLimits: work hours, then non-work hours
    maintenance: tuple[Window, Caps] | None = None  # EnableMaintenanceLimits: overrides work and non-work
    timetable: tuple[tuple[int, Cap], ...] = ()  # (minute of the week, cap from then on), sorted
    yield_to_others: bool = True
    start_jitter: int = 0  # seconds: the default random start delay of a resume (setstartjitter per job)

    @property
    def empty(self) -> bool:
        """No window and no timetable: only the jobs' own caps apply."""
        return self.background is None and self.work is None and self.maintenance is None and not self.timetable


@dataclass(frozen=True)
class Allowed:
    """What a job may use now: a rate (None: no limit, 0: it waits), why, and until when it holds."""

    rate: Cap
    why: str
    until: float | None = None  # wall-clock time of the next change, when the rate comes from a window
    waiting_for: str = "the bandwidth window"  # what a rate of 0 waits for, as info says it
    yields: bool = False  # below that rate, it backs off when other traffic needs the link (daemon/yielding.py)


def minute_of_week(now: float) -> int:
    local = time.localtime(now)
    return local.tm_wday * 24 * 60 + local.tm_hour * 60 + local.tm_min


def allowed(policy: Policy, job: Job, now: float) -> Allowed:
    """The rate for ``job`` at ``now``: its own cap at every priority; the policy for background jobs only."""
    found = _allowed(policy, job, now)
    # BITS gives background jobs only the bandwidth nobody else uses (bits.md §3); FOREGROUND jobs take their share.
    if policy.yield_to_others and job.priority is not JobPriority.FOREGROUND and found.rate != 0:
        return replace(found, yields=True)
    return found


def _allowed(policy: Policy, job: Job, now: float) -> Allowed:
    if policy.empty or job.priority is JobPriority.FOREGROUND:  # no window to look up (most jobs, every tick)
        return Allowed(job.max_bandwidth, "the job's cap") if job.max_bandwidth else Allowed(NO_LIMIT, "no limit")
    candidates: list[tuple[Cap, str]] = [(job.max_bandwidth or NO_LIMIT, "the job's cap")]
    minute = minute_of_week(now)
    candidates.extend(_policy_caps(policy, job.priority, minute))
    limits = [(cap, why) for cap, why in candidates if cap is not NO_LIMIT]
    if not limits:
        return Allowed(NO_LIMIT, "no limit")
    cap, why = min(limits, key=lambda c: c[0] or 0)
    until = None if why == "the job's cap" else _next_change(policy, minute, now)
    return Allowed(cap, why, until, f"the bandwidth window: {why}")


def _policy_caps(policy: Policy, priority: JobPriority, minute: int) -> list[tuple[Cap, str]]:
    caps: list[tuple[Cap, str]] = []
    if policy.background is not None:
        window, inside, outside = policy.background
        inside_now = window.holds(minute)
        caps.append((inside, "the background window") if inside_now else (outside, "outside the background window"))
    if policy.maintenance is not None and policy.maintenance[0].holds(minute):
        caps.append((policy.maintenance[1].of(priority), f"the maintenance window ({priority.name})"))
    elif policy.work is not None:
        window, work, non_work = policy.work
        caps.append((work.of(priority), f"work hours ({priority.name})") if window.holds(minute)
                    else (non_work.of(priority), f"non-work hours ({priority.name})"))  # fmt: skip
    if policy.timetable:
        caps.append((_timetable_cap(policy.timetable, minute), "the timetable"))
    return caps


def _timetable_cap(table: tuple[tuple[int, Cap], ...], minute: int) -> Cap:
    current = table[-1][1]  # before the week's first change, the last one of the week before holds
    for at, cap in table:
        if at > minute:
            break
        current = cap
    return current


def _next_change(policy: Policy, minute: int, now: float) -> float:
    edges: set[int] = {at for at, _ in policy.timetable}
    for part in (policy.background, policy.work, policy.maintenance):
        if part is not None:
            edges.update(part[0].edges())
    ahead = min(((edge - minute - 1) % WEEK) + 1 for edge in edges) if edges else WEEK
    return (now // 60) * 60 + ahead * 60


# --- parsing: the values of the [bandwidth] table -------------------------------------------------


def parse_days(text: str) -> frozenset[int]:
    """``Mon-Fri``, ``Sat,Sun``, ``Fri-Mon`` (wrapping), ``daily``."""
    if text.strip().lower() in ("daily", "*", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = _DAY_RANGE_RE.match(part)
        if not match or match.group(1).lower() not in DAYS or (match.group(2) and match.group(2).lower() not in DAYS):
            raise PolicyError(f"bad days {text!r}: write Mon-Fri, Sat,Sun or daily")
        first = DAYS.index(match.group(1).lower())
        last = DAYS.index(match.group(2).lower()) if match.group(2) else first
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def parse_time(text: str) -> int:
    match = _TIME_RE.match(text.strip())
    if not match:
        raise PolicyError(f"bad time {text!r}: write HH:MM, 00:00 to 23:59")
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_cap(text: str | int) -> Cap:
    """A rate as setmaxbandwidth takes it (a TOML number is bytes a second); ``none`` and a timetable's ``off``
    for no limit, ``0`` to wait."""
    from bitscli.errors import InvalidValue
    from bitscli.inputs.fields import parse_rate

    if isinstance(text, int):
        if text < 0:
            raise PolicyError(f"bad rate {text!r}")
        return text
    if text.strip().lower() in ("none", "unlimited", "off"):
        return NO_LIMIT
    if text.strip() == "0":
        return 0
    try:
        return parse_rate(text)
    except InvalidValue as exc:
        raise PolicyError(exc.message) from None


def parse_timetable(text: str) -> tuple[tuple[int, Cap], ...]:
    """rclone's form: ``08:00,2M 19:00,off``, days first where they matter: ``Mon-Fri,08:00,2M 19:00,off``
    (days carry on to the next entries) or ``Mon-08:00,512K``. ``off``: no limit; ``0``: jobs wait."""
    changes: dict[int, Cap] = {}
    days = frozenset(range(7))
    for entry in text.split():
        parts = entry.split(",")
        if len(parts) == 3:
            days = parse_days(parts[0])
            parts = parts[1:]
        elif len(parts) == 2 and "-" in parts[0] and not parts[0][0].isdigit():
            day_name, _, clock = parts[0].partition("-")
            days, parts = parse_days(day_name), [clock, parts[1]]
        if len(parts) != 2:
            raise PolicyError(f"bad timetable entry {entry!r}: write [DAYS,]HH:MM,RATE")
        minute, cap = parse_time(parts[0]), parse_cap(parts[1])
        for day_index in days:
            changes[day_index * 24 * 60 + minute] = cap
    if not changes:
        raise PolicyError("the timetable is empty")
    return tuple(sorted(changes.items()))


_WINDOW_KEYS = ("days", "start", "end")
_PRIORITY_KEYS = ("high", "normal", "low")


def from_table(table: dict[str, object]) -> Policy:
    """The [bandwidth] table of the config file (README: Polite by default); PolicyError names what is wrong."""
    known = {"yield", "timetable", "background", "work", "non_work", "maintenance", "start_jitter"}
    for key in table:
        if key not in known:
            raise PolicyError(f"unknown setting bandwidth.{key} (known: {', '.join(sorted(known))})")
    background = work = maintenance = None
    if "background" in table:
        part = _subtable(table, "background", (*_WINDOW_KEYS, "inside", "outside"))
        background = (_window(part, "background"), parse_cap(part.get("inside", "none")),  # type: ignore[arg-type]
                      parse_cap(part.get("outside", "none")))  # type: ignore[arg-type]  # fmt: skip
    if "work" in table:
        part = _subtable(table, "work", (*_WINDOW_KEYS, *_PRIORITY_KEYS))
        non_work = _subtable(table, "non_work", _PRIORITY_KEYS) if "non_work" in table else {}
        work = (_window(part, "work"), _caps(part), _caps(non_work))
    elif "non_work" in table:
        raise PolicyError("bandwidth.non_work needs bandwidth.work (its days and hours)")
    if "maintenance" in table:
        part = _subtable(table, "maintenance", (*_WINDOW_KEYS, *_PRIORITY_KEYS))
        maintenance = (_window(part, "maintenance"), _caps(part))
    timetable = table.get("timetable")
    if timetable is not None and not isinstance(timetable, str):
        raise PolicyError("bandwidth.timetable must be a string, as rclone's --bwlimit")
    yield_to_others = table.get("yield", True)
    if not isinstance(yield_to_others, bool):
        raise PolicyError("bandwidth.yield must be true or false")
    jitter = table.get("start_jitter", 0)
    if type(jitter) is not int or not 0 <= jitter <= MAX_JITTER:
        raise PolicyError(f"bandwidth.start_jitter must be a whole number of seconds, 0 to {MAX_JITTER}")
    table_changes = parse_timetable(timetable) if timetable is not None else ()
    return Policy(background, work, maintenance, table_changes, yield_to_others, jitter)


def _subtable(table: dict[str, object], name: str, keys: tuple[str, ...]) -> dict[str, object]:
    part = table[name]
    if not isinstance(part, dict):
        raise PolicyError(f"bandwidth.{name} must be a table ([bandwidth.{name}])")
    for key in part:
        if key not in keys:
            raise PolicyError(f"unknown setting bandwidth.{name}.{key} (known: {', '.join(keys)})")
    return part


def _window(part: dict[str, object], name: str) -> Window:
    missing = [key for key in _WINDOW_KEYS if not isinstance(part.get(key), str)]
    if missing:
        raise PolicyError(f"bandwidth.{name} needs {', '.join(missing)} (for example days = \"Mon-Fri\", "
                          "start = \"08:00\", end = \"17:00\")")  # fmt: skip
    return Window(parse_days(str(part["days"])), parse_time(str(part["start"])), parse_time(str(part["end"])))


def _caps(part: dict[str, object]) -> Caps:
    values = {key: parse_cap(part[key]) for key in _PRIORITY_KEYS if key in part}  # type: ignore[arg-type]
    return Caps(**values)
