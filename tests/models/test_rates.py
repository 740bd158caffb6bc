"""Rates: the row in force on a date, and member -> group -> default cost resolution."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.rates import RateRow, RateSource, ResolvedRate, rate_in_force, resolve_cost_rate

JAN = RateRow(date(2025, 1, 1), 5000)
JUN4 = RateRow(date(2025, 6, 4), 6000)
SEP = RateRow(date(2025, 9, 1), 6500)
# Deliberately out of date order: callers need not sort.
ROWS = (SEP, JAN, JUN4)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2024, 12, 31), None),  # before the first row
        (date(2025, 1, 1), JAN),  # a row holds from its own date
        (date(2025, 6, 3), JAN),
        (date(2025, 6, 4), JUN4),
        (date(2025, 8, 31), JUN4),
        (date(2025, 9, 1), SEP),
        (date(2030, 1, 1), SEP),
    ],
)
def test_rate_in_force(on: date, expected: RateRow | None) -> None:
    assert rate_in_force(ROWS, on) == expected


def test_rate_in_force_without_rows() -> None:
    assert rate_in_force((), date(2025, 6, 4)) is None


def test_same_date_later_row_wins() -> None:
    first = RateRow(date(2025, 6, 1), 100)
    correction = RateRow(date(2025, 6, 1), 200)
    assert rate_in_force([first, correction], date(2025, 6, 2)) == correction


MEMBER = (RateRow(date(2025, 6, 10), 7000),)
GROUP = (RateRow(date(2025, 3, 1), 4000),)
DEFAULT = (RateRow(date(2025, 1, 1), 3000),)


@pytest.mark.parametrize(
    ("member", "group", "default", "on", "expected"),
    [
        (MEMBER, GROUP, DEFAULT, date(2025, 6, 10), ResolvedRate(RateSource.MEMBER, MEMBER[0])),
        # The member's own rate starts later: their group's rate holds until then.
        (MEMBER, GROUP, DEFAULT, date(2025, 6, 9), ResolvedRate(RateSource.GROUP, GROUP[0])),
        # Before the group rate starts: the default.
        (MEMBER, GROUP, DEFAULT, date(2025, 2, 1), ResolvedRate(RateSource.DEFAULT, DEFAULT[0])),
        ((), (), DEFAULT, date(2025, 6, 9), ResolvedRate(RateSource.DEFAULT, DEFAULT[0])),
        ((), GROUP, (), date(2025, 6, 9), ResolvedRate(RateSource.GROUP, GROUP[0])),
        # Nothing in force: uncosted, never a zero rate.
        (MEMBER, GROUP, DEFAULT, date(2024, 12, 31), None),
        (MEMBER, (), (), date(2025, 6, 9), None),
        ((), (), (), date(2025, 6, 9), None),
    ],
)
def test_resolve_cost_rate(
    member: tuple[RateRow, ...],
    group: tuple[RateRow, ...],
    default: tuple[RateRow, ...],
    on: date,
    expected: ResolvedRate | None,
) -> None:
    resolved = resolve_cost_rate(
        member_rates=member, group_rates=group, default_rates=default, on=on
    )
    assert resolved == expected


def test_resolved_rate_exposes_its_amount_and_source() -> None:
    resolved = resolve_cost_rate(
        member_rates=(), group_rates=GROUP, default_rates=DEFAULT, on=date(2025, 6, 1)
    )
    assert resolved is not None
    assert resolved.minor_per_hour == 4000
    assert resolved.source == "group"


def test_zero_rate_is_a_real_rate() -> None:
    # A deliberate zero (e.g. an unpaid intern) is costed at zero, not reported as missing.
    zero = (RateRow(date(2025, 1, 1), 0),)
    resolved = resolve_cost_rate(
        member_rates=zero, group_rates=(), default_rates=DEFAULT, on=date(2025, 6, 1)
    )
    assert resolved == ResolvedRate(RateSource.MEMBER, zero[0])


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_rate_row_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        RateRow(date(2025, 1, 1), value)  # type: ignore[arg-type]


ROW_LISTS = st.lists(
    st.builds(
        RateRow,
        st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)),
        st.integers(min_value=0, max_value=50_000),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(ROW_LISTS, st.dates(min_value=date(2023, 12, 1), max_value=date(2027, 1, 31)))
def test_rate_in_force_is_the_latest_row_not_after_the_date(rows: list[RateRow], on: date) -> None:
    found = rate_in_force(rows, on)
    earlier = [r for r in rows if r.effective_from <= on]
    if not earlier:
        assert found is None
    else:
        assert found is not None
        assert found.effective_from == max(r.effective_from for r in earlier)
        assert found in rows
