"""Reporting periods for Docket: ISO weeks, calendar months and plain date ranges.

Rules (pure, no I/O):

- A week runs Monday to Sunday and is named by the ISO week-numbering year: 2021-01-01 is in
  ``2020-W53`` and 2024-12-30 is in ``2025-W01``. Never ``strftime('%W')``.
- A month runs from its 1st to its last day and is named ``2025-06``.
- A ``range`` is any inclusive run of dates (used for additivity checks and ad hoc reports).
- Dates are local to the workspace: turn an instant into a date with `local_date` and the
  workspace's time zone before choosing a period.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["week", "month", "range"]

_WEEK_RE = re.compile(r"(?P<year>[0-9]{4})-w(?P<week>[0-9]{1,2})")
_MONTH_RE = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})")
_ACCEPTED = "2025-W23, 2025-06, week, last-week, month or last-month"


@dataclass(frozen=True)
class Period:
    """An inclusive run of dates: an ISO week, a calendar month, or a free range.

    Construct with `week_of`, `month_of`, `date_range` or `parse_period`; the constructor
    checks that a week starts on a Monday and a month covers exactly one calendar month.
    """

    kind: PeriodKind
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")
        if self.kind == "week":
            if self.start.isoweekday() != 1 or self.end - self.start != timedelta(days=6):
                raise ValueError(f"a week runs Monday to Sunday, not {self.start}..{self.end}")
        elif self.kind == "month":
            if self.start.day != 1 or self.end != _last_of_month(self.start):
                raise ValueError(f"a month runs 1st to last, not {self.start}..{self.end}")
        elif self.kind != "range":
            raise ValueError(f"unknown period kind {self.kind!r}")

    @property
    def key(self) -> str:
        """``"2025-W23"`` for a week, ``"2025-06"`` for a month, ``"start..end"`` for a range."""
        if self.kind == "week":
            iso = self.start.isocalendar()
            return f"{iso.year:04d}-W{iso.week:02d}"
        if self.kind == "month":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def day_count(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    def __contains__(self, item: object) -> bool:
        return isinstance(item, date) and self.start <= item <= self.end

    def __iter__(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def __str__(self) -> str:
        return self.key


def _last_of_month(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


@lru_cache(maxsize=8192)  # pure, and Period is immutable: the engines ask for few dates often
def week_of(d: date) -> Period:
    """The ISO week (Monday..Sunday) containing ``d``."""
    monday = d - timedelta(days=d.weekday())
    return Period("week", monday, monday + timedelta(days=6))


@lru_cache(maxsize=8192)
def month_of(d: date) -> Period:
    """The calendar month containing ``d``."""
    return Period("month", d.replace(day=1), _last_of_month(d))


def date_range(start: date, end: date) -> Period:
    """A free inclusive range of dates (kind ``"range"``)."""
    return Period("range", start, end)


def iso_weeks_in_year(year: int) -> int:
    """52 or 53: the number of ISO weeks in the ISO week-numbering ``year``."""
    # 28 December is always in the last ISO week of its year.
    return date(year, 12, 28).isocalendar().week


def local_date(at: datetime, tz: ZoneInfo) -> date:
    """The calendar date of instant ``at`` in time zone ``tz``; ``at`` must be tz-aware."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"local_date needs a tz-aware datetime, got naive {at.isoformat()}")
    return at.astimezone(tz).date()


def periods_touching(d: date) -> tuple[Period, Period]:
    """The week and the month that contain ``d`` (what a change on ``d`` makes stale)."""
    return week_of(d), month_of(d)


def previous(period: Period) -> Period:
    """The period of the same kind just before ``period`` (a range keeps its length)."""
    day_before = period.start - timedelta(days=1)
    if period.kind == "week":
        return week_of(day_before)
    if period.kind == "month":
        return month_of(day_before)
    return date_range(day_before - timedelta(days=period.day_count - 1), day_before)


def following(period: Period) -> Period:
    """The period of the same kind just after ``period`` (a range keeps its length)."""
    day_after = period.end + timedelta(days=1)
    if period.kind == "week":
        return week_of(day_after)
    if period.kind == "month":
        return month_of(day_after)
    return date_range(day_after, day_after + timedelta(days=period.day_count - 1))


def days(period: Period) -> list[date]:
    """Every date of ``period``, in order."""
    return list(period)


def weeks_between(start: date, end: date) -> list[Period]:
    """Every ISO week touching ``start..end`` (inclusive), in order; the first and last may
    reach outside the range."""
    if end < start:
        raise ValueError(f"weeks_between: end {end} is before start {start}")
    weeks = [week_of(start)]
    while weeks[-1].end < end:
        weeks.append(following(weeks[-1]))
    return weeks


def months_between(start: date, end: date) -> list[Period]:
    """Every calendar month touching ``start..end`` (inclusive), in order."""
    if end < start:
        raise ValueError(f"months_between: end {end} is before start {start}")
    months = [month_of(start)]
    while months[-1].end < end:
        months.append(following(months[-1]))
    return months


def parse_period(text: str, *, today: date) -> Period:
    """Read a period as people type it.

    Accepts ``2025-W23`` (any case), ``2025-06``, ``week`` (the week of ``today``),
    ``last-week``, ``month`` and ``last-month`` (``this-week`` and ``this-month`` too). Raises
    ValueError with a helpful message.
    """
    cleaned = text.strip().lower()
    if cleaned in ("week", "this-week"):
        return week_of(today)
    if cleaned == "last-week":
        return previous(week_of(today))
    if cleaned in ("month", "this-month"):
        return month_of(today)
    if cleaned == "last-month":
        return previous(month_of(today))
    if match := _WEEK_RE.fullmatch(cleaned):
        year, week = int(match["year"]), int(match["week"])
        if year < 1:
            raise ValueError(f"{text!r}: year must be 0001 or later")
        last = iso_weeks_in_year(year)
        if not 1 <= week <= last:
            raise ValueError(f"{text!r}: {year} has ISO weeks 1 to {last}")
        try:
            monday = date.fromisocalendar(year, week, 1)
            return week_of(monday)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"{text!r} is outside the supported calendar") from exc
    if match := _MONTH_RE.fullmatch(cleaned):
        year, month = int(match["year"]), int(match["month"])
        if year < 1:
            raise ValueError(f"{text!r}: year must be 0001 or later")
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r}: month must be 01 to 12")
        return month_of(date(year, month, 1))
    raise ValueError(f"{text!r} is not a period: use {_ACCEPTED}")
