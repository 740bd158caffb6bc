"""Dated hourly rates and how Docket picks the cost rate of a piece of work.

Rules (pure, no I/O):

- A rate row holds from its ``effective_from`` date until the next row of the same subject.
  The rate in force on a date is the row with the latest ``effective_from`` on or before it;
  before the first row there is none. If two rows share a date the later one in the sequence
  wins (callers pass rows in the order they were recorded).
- A member's cost rate on a date is their own rate in force, else their group's, else the
  workspace default. If none is in force the work is UNCOSTED: its minutes are counted and
  reported, and no cost is invented (never a silent zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


@dataclass(frozen=True)
class RateRow:
    """An hourly rate in minor units that holds from ``effective_from`` on."""

    effective_from: date
    minor_per_hour: int

    def __post_init__(self) -> None:
        if isinstance(self.minor_per_hour, bool) or not isinstance(self.minor_per_hour, int):
            raise TypeError(f"minor_per_hour must be an int, got {self.minor_per_hour!r}")
        if self.minor_per_hour < 0:
            raise ValueError(f"a rate cannot be negative: {self.minor_per_hour}")


class RateSource(StrEnum):
    """Where a resolved cost rate came from."""

    MEMBER = "member"
    GROUP = "group"
    DEFAULT = "default"


@dataclass(frozen=True)
class ResolvedRate:
    """A cost rate together with the level it was found at."""

    source: RateSource
    row: RateRow

    @property
    def minor_per_hour(self) -> int:
        """The rate in minor units per hour."""
        return self.row.minor_per_hour


def rate_in_force(rows: Sequence[RateRow], on: date) -> RateRow | None:
    """The row with the latest ``effective_from`` on or before ``on``; None before any row."""
    best: RateRow | None = None
    for row in rows:
        if row.effective_from <= on and (best is None or row.effective_from >= best.effective_from):
            best = row
    return best


def resolve_cost_rate(
    *,
    member_rates: Sequence[RateRow],
    group_rates: Sequence[RateRow],
    default_rates: Sequence[RateRow],
    on: date,
) -> ResolvedRate | None:
    """The member's cost rate on ``on``: member, else group, else default; None if uncosted."""
    for source, rows in (
        (RateSource.MEMBER, member_rates),
        (RateSource.GROUP, group_rates),
        (RateSource.DEFAULT, default_rates),
    ):
        row = rate_in_force(rows, on)
        if row is not None:
            return ResolvedRate(source, row)
    return None
