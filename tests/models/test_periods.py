"""Periods: ISO weeks and their numbering year, months, parsing, and local dates."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.periods import (
    Period,
    date_range,
    days,
    following,
    iso_weeks_in_year,
    local_date,
    month_of,
    months_between,
    parse_period,
    periods_touching,
    previous,
    week_of,
    weeks_between,
)

FAST = settings(max_examples=200, deadline=None)
TODAY = date(2025, 6, 4)  # a Wednesday in 2025-W23
AUCKLAND = ZoneInfo("Pacific/Auckland")


@pytest.mark.parametrize(
    ("day", "key", "start", "end"),
    [
        (date(2021, 1, 1), "2020-W53", date(2020, 12, 28), date(2021, 1, 3)),
        (date(2020, 12, 28), "2020-W53", date(2020, 12, 28), date(2021, 1, 3)),
        (date(2021, 1, 3), "2020-W53", date(2020, 12, 28), date(2021, 1, 3)),
        (date(2021, 1, 4), "2021-W01", date(2021, 1, 4), date(2021, 1, 10)),
        (date(2024, 12, 30), "2025-W01", date(2024, 12, 30), date(2025, 1, 5)),
        (date(2024, 12, 29), "2024-W52", date(2024, 12, 23), date(2024, 12, 29)),
        (date(2025, 6, 4), "2025-W23", date(2025, 6, 2), date(2025, 6, 8)),
        (date(2025, 6, 8), "2025-W23", date(2025, 6, 2), date(2025, 6, 8)),
        (date(2026, 12, 31), "2026-W53", date(2026, 12, 28), date(2027, 1, 3)),
        (date(2016, 1, 1), "2015-W53", date(2015, 12, 28), date(2016, 1, 3)),
    ],
)
def test_week_of_uses_iso_week_numbering_year(day: date, key: str, start: date, end: date) -> None:
    week = week_of(day)
    assert (week.kind, week.key, week.start, week.end) == ("week", key, start, end)
    assert str(week) == key


@pytest.mark.parametrize(
    ("day", "key", "start", "end"),
    [
        (date(2025, 6, 15), "2025-06", date(2025, 6, 1), date(2025, 6, 30)),
        (date(2024, 2, 10), "2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        (date(2023, 2, 28), "2023-02", date(2023, 2, 1), date(2023, 2, 28)),
        (date(2024, 12, 31), "2024-12", date(2024, 12, 1), date(2024, 12, 31)),
        (date(2021, 1, 1), "2021-01", date(2021, 1, 1), date(2021, 1, 31)),
    ],
)
def test_month_of(day: date, key: str, start: date, end: date) -> None:
    month = month_of(day)
    assert (month.kind, month.key, month.start, month.end) == ("month", key, start, end)


@pytest.mark.parametrize(("year", "weeks"), [(2020, 53), (2021, 52), (2025, 52), (2026, 53)])
def test_iso_weeks_in_year(year: int, weeks: int) -> None:
    assert iso_weeks_in_year(year) == weeks


@pytest.mark.parametrize(
    ("text", "start", "end", "kind"),
    [
        ("2025-W23", date(2025, 6, 2), date(2025, 6, 8), "week"),
        ("2025-w23", date(2025, 6, 2), date(2025, 6, 8), "week"),
        (" 2025-W01 ", date(2024, 12, 30), date(2025, 1, 5), "week"),
        ("2025-W1", date(2024, 12, 30), date(2025, 1, 5), "week"),
        ("2020-W53", date(2020, 12, 28), date(2021, 1, 3), "week"),
        ("2026-W53", date(2026, 12, 28), date(2027, 1, 3), "week"),
        ("2025-06", date(2025, 6, 1), date(2025, 6, 30), "month"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "month"),
        ("week", date(2025, 6, 2), date(2025, 6, 8), "week"),
        ("WEEK", date(2025, 6, 2), date(2025, 6, 8), "week"),
        ("this-week", date(2025, 6, 2), date(2025, 6, 8), "week"),
        ("this-month", date(2025, 6, 1), date(2025, 6, 30), "month"),
        ("last-week", date(2025, 5, 26), date(2025, 6, 1), "week"),
        ("month", date(2025, 6, 1), date(2025, 6, 30), "month"),
        ("last-month", date(2025, 5, 1), date(2025, 5, 31), "month"),
    ],
)
def test_parse_period(text: str, start: date, end: date, kind: str) -> None:
    period = parse_period(text, today=TODAY)
    assert (period.kind, period.start, period.end) == (kind, start, end)


def test_relative_periods_across_the_new_year() -> None:
    new_year = date(2025, 1, 1)
    assert parse_period("week", today=new_year).key == "2025-W01"
    assert parse_period("last-week", today=new_year).key == "2024-W52"
    assert parse_period("last-month", today=new_year).key == "2024-12"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("2021-W53", "2021 has ISO weeks 1 to 52"),
        ("2025-W00", "ISO weeks 1 to 52"),
        ("2025-W54", "ISO weeks 1 to 52"),
        ("2025-13", "month must be 01 to 12"),
        ("2025-00", "month must be 01 to 12"),
        ("0000-06", "year must be 0001"),
        ("0000-W01", "year must be 0001"),
        ("fortnight", "2025-W23, 2025-06, week, last-week, month or last-month"),
        ("", "is not a period"),
        ("2025/06", "is not a period"),
        ("25-W23", "is not a period"),
        ("2025-W23-1", "is not a period"),
    ],
)
def test_parse_period_refuses_with_a_helpful_message(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_period(text, today=TODAY)
    assert hint in str(info.value)
    assert repr(text) in str(info.value)


def test_sunday_midnight_in_auckland_is_monday_of_the_next_week() -> None:
    # 12:30 UTC on Sunday 8 June 2025 is 00:30 on Monday 9 June in Auckland (NZST, UTC+12).
    at = datetime(2025, 6, 8, 12, 30, tzinfo=UTC)
    assert local_date(at, ZoneInfo("UTC")) == date(2025, 6, 8)
    assert week_of(local_date(at, ZoneInfo("UTC"))).key == "2025-W23"
    assert local_date(at, AUCKLAND) == date(2025, 6, 9)
    assert week_of(local_date(at, AUCKLAND)).key == "2025-W24"
    # One minute earlier it is still Sunday in Auckland.
    assert local_date(at - timedelta(minutes=31), AUCKLAND) == date(2025, 6, 8)


def test_local_date_follows_daylight_saving() -> None:
    # In January Auckland is on NZDT (UTC+13): 11:30 UTC is 00:30 the next day.
    assert local_date(datetime(2025, 1, 5, 11, 30, tzinfo=UTC), AUCKLAND) == date(2025, 1, 6)
    assert local_date(datetime(2025, 1, 5, 10, 59, tzinfo=UTC), AUCKLAND) == date(2025, 1, 5)


def test_local_date_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        local_date(datetime(2025, 6, 8, 12, 30), AUCKLAND)


def test_periods_touching() -> None:
    week, month = periods_touching(date(2025, 6, 30))
    assert (week.key, week.start, week.end) == ("2025-W27", date(2025, 6, 30), date(2025, 7, 6))
    assert month.key == "2025-06"


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (week_of(date(2021, 1, 4)), week_of(date(2020, 12, 28))),
        (week_of(date(2025, 1, 1)), week_of(date(2024, 12, 23))),
        (month_of(date(2025, 1, 9)), month_of(date(2024, 12, 1))),
        (month_of(date(2024, 3, 1)), Period("month", date(2024, 2, 1), date(2024, 2, 29))),
        (
            date_range(date(2025, 6, 11), date(2025, 6, 20)),
            date_range(date(2025, 6, 1), date(2025, 6, 10)),
        ),
    ],
)
def test_previous(period: Period, expected: Period) -> None:
    assert previous(period) == expected
    assert following(expected) == period


def test_days() -> None:
    week = week_of(date(2025, 6, 4))
    assert days(week) == [date(2025, 6, 2) + timedelta(days=i) for i in range(7)]
    assert len(days(month_of(date(2024, 2, 1)))) == 29
    assert days(date_range(date(2025, 1, 1), date(2025, 1, 1))) == [date(2025, 1, 1)]
    assert month_of(date(2024, 2, 1)).day_count == 29


def test_weeks_between_covers_partial_weeks() -> None:
    weeks = weeks_between(date(2025, 6, 1), date(2025, 6, 30))
    assert [w.start for w in weeks] == [
        date(2025, 5, 26),
        date(2025, 6, 2),
        date(2025, 6, 9),
        date(2025, 6, 16),
        date(2025, 6, 23),
        date(2025, 6, 30),
    ]
    assert [w.key for w in weeks_between(date(2020, 12, 31), date(2021, 1, 4))] == [
        "2020-W53",
        "2021-W01",
    ]
    assert weeks_between(date(2025, 6, 3), date(2025, 6, 3)) == [week_of(date(2025, 6, 3))]
    with pytest.raises(ValueError):
        weeks_between(date(2025, 6, 3), date(2025, 6, 2))


def test_months_between() -> None:
    assert [m.key for m in months_between(date(2024, 11, 30), date(2025, 2, 1))] == [
        "2024-11",
        "2024-12",
        "2025-01",
        "2025-02",
    ]
    with pytest.raises(ValueError):
        months_between(date(2025, 6, 3), date(2025, 6, 2))


def test_range_key_and_membership() -> None:
    span = date_range(date(2025, 6, 1), date(2025, 6, 10))
    assert span.key == "2025-06-01..2025-06-10"
    assert date(2025, 6, 10) in span
    assert date(2025, 6, 11) not in span
    assert "2025-06-05" not in span


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("week", date(2025, 6, 3), date(2025, 6, 9)),  # starts on a Tuesday
        ("week", date(2025, 6, 2), date(2025, 6, 9)),  # eight days
        ("month", date(2025, 6, 2), date(2025, 6, 30)),
        ("month", date(2025, 6, 1), date(2025, 7, 31)),
        ("range", date(2025, 6, 2), date(2025, 6, 1)),
        ("year", date(2025, 1, 1), date(2025, 12, 31)),
    ],
)
def test_period_refuses_malformed(kind: str, start: date, end: date) -> None:
    with pytest.raises(ValueError):
        Period(kind, start, end)  # type: ignore[arg-type]


def test_period_never_uses_strftime_week_numbers() -> None:
    # %W would call 2021-01-01 week 00 of 2021; Docket says 2020-W53.
    assert date(2021, 1, 1).strftime("%Y-W%W") == "2021-W00"
    assert week_of(date(2021, 1, 1)).key == "2020-W53"


DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))


@FAST
@given(DATES)
def test_week_and_month_round_trip_through_their_keys(day: date) -> None:
    week, month = periods_touching(day)
    assert day in week and day in month
    assert week.start.isoweekday() == 1 and week.day_count == 7
    assert week.key == f"{day.isocalendar().year:04d}-W{day.isocalendar().week:02d}"
    assert parse_period(week.key, today=TODAY) == week
    assert parse_period(week.key.lower(), today=TODAY) == week
    assert parse_period(month.key, today=TODAY) == month
    assert previous(following(week)) == week
    assert previous(following(month)) == month
    assert following(previous(month)).key == month.key
    assert previous(week).end + timedelta(days=1) == week.start
    assert previous(month).end + timedelta(days=1) == month.start


@FAST
@given(DATES, st.integers(min_value=0, max_value=120))
def test_weeks_between_tile_the_range(start: date, length: int) -> None:
    end = start + timedelta(days=length)
    weeks = weeks_between(start, end)
    assert start in weeks[0] and end in weeks[-1]
    for earlier, later in itertools.pairwise(weeks):
        assert earlier.end + timedelta(days=1) == later.start
