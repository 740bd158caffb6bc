"""Service levels: business-time arithmetic and the state of a ticket's SLA targets.

Pure: plain values in, plain values out, `now` passed in. The rules are written out in
docs/sla.md. Times are tz-aware; a calendar's hours are wall-clock times in its zone, so 09:00
is 09:00 local on both sides of a daylight-saving change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# Priorities in the order people think of them (most pressing first).
PRIORITIES = ("urgent", "high", "normal", "low")

BUSINESS = "business"
ALWAYS = "24x7"
CALENDAR_KINDS = (BUSINESS, ALWAYS)

DEFAULT_POLICY = "default"
DEFAULT_WARNING_PCT = 75
DEFAULT_HOURS: dict[int, tuple[time, time]] = {day: (time(9), time(17)) for day in range(5)}

# A calendar with no open minute would never reach a target: stop looking after this long.
HORIZON_DAYS = 3 * 366

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Target(StrEnum):
    """The two clocks a policy sets."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


class TargetStatus(StrEnum):
    NONE = "none"  # no SLA, or the target does not apply to this ticket
    RUNNING = "running"  # counting, or paused (waiting on the customer)
    MET = "met"
    BREACHED = "breached"


TARGET_LABELS = {Target.FIRST_RESPONSE: "First response", Target.RESOLUTION: "Resolution"}


@dataclass(frozen=True)
class Calendar:
    """When business time counts: weekday hours (0 = Monday) in a zone, minus holidays.

    `always` is the 24x7 calendar: every minute counts, hours and holidays are ignored.
    """

    zone: ZoneInfo
    hours: Mapping[int, tuple[time, time]] = field(default_factory=lambda: dict(DEFAULT_HOURS))
    holidays: frozenset[date] = frozenset()
    always: bool = False

    def around_the_clock(self) -> Calendar:
        """The same zone, every minute counting (a 24x7 policy)."""
        return Calendar(zone=self.zone, hours=self.hours, holidays=self.holidays, always=True)

    def day_minutes(self) -> int:
        """The length of one business day: the most common open weekday's hours (ties: the
        longest); 24 hours on 24x7."""
        if self.always:
            return 24 * 60
        lengths = Counter(
            _minutes(end) - _minutes(start) for start, end in self.hours.values() if end > start
        )
        if not lengths:
            return 24 * 60
        return max(lengths.items(), key=lambda item: (item[1], item[0]))[0]

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The business hours of a local date as UTC instants, None when closed."""
        if day in self.holidays:
            return None
        hours = self.hours.get(day.weekday())
        if hours is None or hours[1] <= hours[0]:
            return None
        start = datetime.combine(day, hours[0], tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day, hours[1], tzinfo=self.zone).astimezone(UTC)
        return start, end


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _local_day(cal: Calendar, at: datetime) -> date:
    return at.astimezone(cal.zone).date()


def business_seconds(cal: Calendar, start: datetime, end: datetime) -> int:
    """Business seconds between two instants (0 when `end` is not after `start`)."""
    # Aware datetimes sharing a zone subtract as wall times: work in UTC.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return 0
    if cal.always:
        return int((end - start).total_seconds())
    total = 0
    day = _local_day(cal, start)
    last = _local_day(cal, end)
    while day <= last:
        interval = cal.open_interval(day)
        if interval is not None:
            lo, hi = max(interval[0], start), min(interval[1], end)
            if hi > lo:
                total += int((hi - lo).total_seconds())
        day += timedelta(days=1)
    return total


def business_minutes(cal: Calendar, start: datetime, end: datetime) -> int:
    """Whole business minutes between two instants."""
    return business_seconds(cal, start, end) // 60


def add_business_seconds(cal: Calendar, start: datetime, seconds: int) -> datetime | None:
    """The instant at which `seconds` of business time have passed since `start`.

    None when the calendar has no open time within a few years (nothing would ever be due).
    """
    start = start.astimezone(UTC)
    if seconds <= 0:
        return start
    if cal.always:
        return start + timedelta(seconds=seconds)
    left = seconds
    day = _local_day(cal, start)
    for _ in range(HORIZON_DAYS):
        interval = cal.open_interval(day)
        if interval is not None:
            lo, hi = max(interval[0], start), interval[1]
            if hi > lo:
                available = int((hi - lo).total_seconds())
                if left <= available:
                    return lo + timedelta(seconds=left)
                left -= available
        day += timedelta(days=1)
    return None


def add_business_minutes(cal: Calendar, start: datetime, minutes: int) -> datetime | None:
    """The instant at which `minutes` of business time have passed since `start`."""
    return add_business_seconds(cal, start, minutes * 60)


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$", re.IGNORECASE)


class DurationError(ValueError):
    """A target that is not a whole number of minutes, hours or days."""


def parse_duration(text: str, *, day_minutes: int) -> int:
    """Minutes of a target such as `30m`, `4h` or `2d` (a day is `day_minutes` long)."""
    match = _DURATION.match(text or "")
    if match is None:
        raise DurationError(f"{text!r} is not a duration like 30m, 4h or 2d")
    amount = int(match.group(1))
    if amount <= 0:
        raise DurationError(f"{text!r}: a target must be more than zero")
    unit = match.group(2).lower()
    return amount * {"m": 1, "h": 60, "d": day_minutes}[unit]


def check_duration(text: str) -> str:
    """The normalised spelling of a target (`4H` -> `4h`), or DurationError."""
    parse_duration(text, day_minutes=1)
    match = _DURATION.match(text)
    assert match is not None
    return f"{int(match.group(1))}{match.group(2).lower()}"


def format_minutes(minutes: int) -> str:
    """`35m`, `1h 20m`, `2d 3h` (days of 24 hours, for elapsed wall time)."""
    minutes = max(0, minutes)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class PriorityTargets:
    """A policy's targets for one priority, as typed (`30m`, `4h`, `2d`); None = no target."""

    first_response: str | None
    resolution: str | None


@dataclass(frozen=True)
class Policy:
    """Targets per priority and the kind of calendar they count on."""

    name: str
    calendar: str = BUSINESS
    targets: Mapping[str, PriorityTargets] = field(default_factory=dict)

    def target_minutes(self, target: Target, priority: str, cal: Calendar) -> int | None:
        """Minutes of `target` at `priority` on this policy's calendar."""
        entry = self.targets.get(priority)
        if entry is None:
            return None
        text = entry.first_response if target == Target.FIRST_RESPONSE else entry.resolution
        if not text:
            return None
        return parse_duration(text, day_minutes=cal.day_minutes())


def policy_calendar(policy: Policy, workspace: Calendar) -> Calendar:
    """The calendar a policy's clocks count on."""
    return workspace.around_the_clock() if policy.calendar == ALWAYS else workspace


# --------------------------------------------------------------------------- ticket clocks


class MarkKind(StrEnum):
    STATUS = "status"  # value: the new status
    REPLY = "reply"  # a public reply to the customer by a team member
    PRIORITY = "priority"  # value: the new priority


@dataclass(frozen=True)
class Mark:
    """Something that happened to a ticket and moves its clocks."""

    at: datetime
    kind: MarkKind
    value: str = ""


@dataclass(frozen=True)
class TicketClock:
    """What the SLA rules need to know of one ticket."""

    created_at: datetime
    status: str  # at creation
    priority: str  # at creation
    customer_opened: bool
    marks: Sequence[Mark] = ()


@dataclass(frozen=True)
class TargetState:
    """One target of one ticket at a moment.

    `used_minutes` is business time used; `due` is the instant the used time reaches the
    target (None while it cannot: paused, stopped short of it, or no target); `warn_at` the
    instant it reaches the warning share. `stopped_at` is when the clock last stopped for good
    (the reply, or the resolution) while it is not running.
    """

    target: Target
    status: TargetStatus
    target_minutes: int | None = None
    used_minutes: int = 0
    due: datetime | None = None
    warn_at: datetime | None = None
    stopped_at: datetime | None = None
    paused: bool = False
    round: int = 0  # reopenings so far: warnings are sent once per round


PAUSED_STATUSES = frozenset({"waiting"})
DONE_STATUSES = frozenset({"resolved", "closed"})


def _sorted(marks: Iterable[Mark]) -> list[Mark]:
    return sorted(marks, key=lambda m: m.at)


def _priority_at(clock: TicketClock, at: datetime) -> str:
    priority = clock.priority
    for mark in _sorted(clock.marks):
        if mark.at > at:
            break
        if mark.kind == MarkKind.PRIORITY:
            priority = mark.value
    return priority


Segment = tuple[datetime, datetime | None]


def _resolution_segments(clock: TicketClock, now: datetime) -> tuple[list[Segment], str, int]:
    """Counting spans (not waiting, not resolved/closed), the status now, and reopenings."""
    segments: list[Segment] = []
    status = clock.status
    start: datetime | None = None if status in PAUSED_STATUSES | DONE_STATUSES else clock.created_at
    reopenings = 0
    for mark in _sorted(clock.marks):
        if mark.kind != MarkKind.STATUS or mark.at > now:
            continue
        if status in DONE_STATUSES and mark.value not in DONE_STATUSES:
            reopenings += 1
        status = mark.value
        counting = status not in PAUSED_STATUSES | DONE_STATUSES
        if counting and start is None:
            start = mark.at
        elif not counting and start is not None:
            segments.append((start, mark.at))
            start = None
    if start is not None:
        segments.append((start, None))
    return segments, status, reopenings


def _first_response_segment(clock: TicketClock, now: datetime) -> tuple[Segment, bool]:
    """The one span the first-response clock runs, and whether it ended with a reply."""
    for mark in _sorted(clock.marks):
        if mark.at > now:
            break
        if mark.kind == MarkKind.REPLY:
            return (clock.created_at, mark.at), True
        if mark.kind == MarkKind.STATUS and mark.value in DONE_STATUSES:
            return (clock.created_at, mark.at), False
    return (clock.created_at, None), False


def _reach(cal: Calendar, segments: Sequence[Segment], seconds: int) -> datetime | None:
    """The instant the counted time reaches `seconds`, running the open span into the future."""
    done = 0
    for start, end in segments:
        if end is None:
            return add_business_seconds(cal, start, seconds - done)
        span = business_seconds(cal, start, end)
        if done + span >= seconds:
            return add_business_seconds(cal, start, seconds - done)
        done += span
    return None


def _state(
    target: Target,
    cal: Calendar,
    segments: Sequence[Segment],
    target_minutes: int | None,
    now: datetime,
    *,
    warning_pct: int,
    round_: int = 0,
) -> TargetState:
    used = sum(business_seconds(cal, s, now if e is None else min(e, now)) for s, e in segments)
    running = bool(segments) and segments[-1][1] is None
    stopped_at = None if running or not segments else segments[-1][1]
    if target_minutes is None:
        return TargetState(target, TargetStatus.NONE, used_minutes=used // 60)
    limit = target_minutes * 60
    due = _reach(cal, segments, limit)
    warn_at = _reach(cal, segments, limit * warning_pct // 100)
    if running:
        status = TargetStatus.BREACHED if due is not None and now > due else TargetStatus.RUNNING
    else:
        status = TargetStatus.MET if used <= limit else TargetStatus.BREACHED
    return TargetState(
        target,
        status,
        target_minutes=target_minutes,
        used_minutes=used // 60,
        due=due,
        warn_at=warn_at,
        stopped_at=stopped_at,
        round=round_,
    )


def evaluate(
    clock: TicketClock,
    policy: Policy | None,
    workspace_calendar: Calendar,
    now: datetime,
    *,
    warning_pct: int = DEFAULT_WARNING_PCT,
) -> dict[Target, TargetState]:
    """The state of both targets of a ticket at `now` (status `none` without a policy)."""
    if policy is None:
        return {t: TargetState(t, TargetStatus.NONE) for t in Target}
    clock, now = _in_utc(clock), now.astimezone(UTC)
    cal = policy_calendar(policy, workspace_calendar)

    (fr_start, fr_end), _replied = _first_response_segment(clock, now)
    if clock.customer_opened:
        fr_priority = _priority_at(clock, fr_end or now)
        fr_minutes = policy.target_minutes(Target.FIRST_RESPONSE, fr_priority, cal)
        first = _state(
            Target.FIRST_RESPONSE,
            cal,
            [(fr_start, fr_end)],
            fr_minutes,
            now,
            warning_pct=warning_pct,
        )
    else:
        first = TargetState(Target.FIRST_RESPONSE, TargetStatus.NONE)

    segments, status, reopenings = _resolution_segments(clock, now)
    done = status in DONE_STATUSES
    last_stop = segments[-1][1] if segments and done else None
    res_priority = _priority_at(clock, last_stop or now)
    res_minutes = policy.target_minutes(Target.RESOLUTION, res_priority, cal)
    resolution = _state(
        Target.RESOLUTION,
        cal,
        segments,
        res_minutes,
        now,
        warning_pct=warning_pct,
        round_=reopenings,
    )
    if not done and resolution.status == TargetStatus.MET:
        # Waiting on the customer: paused, not finished.
        resolution = _paused(resolution)
    return {Target.FIRST_RESPONSE: first, Target.RESOLUTION: resolution}


def _in_utc(clock: TicketClock) -> TicketClock:
    return TicketClock(
        created_at=clock.created_at.astimezone(UTC),
        status=clock.status,
        priority=clock.priority,
        customer_opened=clock.customer_opened,
        marks=[Mark(m.at.astimezone(UTC), m.kind, m.value) for m in _sorted(clock.marks)],
    )


def _paused(state: TargetState) -> TargetState:
    return TargetState(
        state.target,
        TargetStatus.RUNNING,
        target_minutes=state.target_minutes,
        used_minutes=state.used_minutes,
        due=None,
        warn_at=None,
        stopped_at=None,
        paused=True,
        round=state.round,
    )


@dataclass(frozen=True)
class SlaInput:
    """Everything needed to evaluate one ticket's clocks at any moment (carried by its card,
    so the card is evaluated at the moment it is drawn)."""

    clock: TicketClock
    policy: Policy | None
    calendar: Calendar
    warning_pct: int = DEFAULT_WARNING_PCT

    def states(self, now: datetime) -> dict[Target, TargetState]:
        """Both targets at `now`."""
        return evaluate(self.clock, self.policy, self.calendar, now, warning_pct=self.warning_pct)
