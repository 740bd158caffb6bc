"""The weekly post's pure rules: when a period is due, and what the summary says."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from models.periods import Period, month_of, week_of
from models.profitability import Figures
from models.reporting import Line, Quality, Report, RestatementItem
from models.weekly import (
    CATCH_UP_LIMIT,
    FixedFeeUsage,
    ReportTimeError,
    TicketGaps,
    break_even_minutes,
    build_summary,
    due_periods,
    effective_report_time,
    first_working_day,
    fixed_fee_usages,
    format_change,
    latest_due,
    parse_report_time,
    past_break_even,
    post_time,
    rank_customers,
    render_text,
    sparkline,
    under_target,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
W23 = week_of(date(2025, 6, 2))  # Mon 2 .. Sun 8 June 2025


def fig(revenue: int, labour: int, direct: int = 0, minutes: int = 600) -> Figures:
    """Exact figures from minor-unit amounts."""
    return Figures(
        minutes=minutes,
        billable_minutes=minutes,
        revenue_60=revenue * 60,
        labour_cost_60=labour * 60,
        direct_cost_60=direct * 60,
    )


def cust(cid: int | None, name: str, revenue: int, labour: int) -> Line:
    return Line(cid, name, fig(revenue, labour))


def report(
    period: Period,
    total: Figures,
    customers: tuple[Line, ...] = (),
    *,
    contracts: tuple[Line, ...] = (),
    quality: Quality = Quality(),
    restatements: tuple[RestatementItem, ...] = (),
) -> Report:
    return Report(period, "EUR", total, customers, contracts, quality, restatements)


# --- schedule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("08:00", time(8)), ("4:00", time(4)), ("23:59", time(23, 59)), (" 17:30 ", time(17, 30))],
)
def test_report_time_accepts_safe_times(text: str, expected: time) -> None:
    assert parse_report_time(text) == expected


@pytest.mark.parametrize("text", ["00:00", "02:30", "03:59", "1:15"])
def test_report_time_refuses_the_daylight_saving_window(text: str) -> None:
    with pytest.raises(ReportTimeError, match="daylight-saving"):
        parse_report_time(text)


@pytest.mark.parametrize("text", ["", "8", "24:00", "12:60", "noon", "08:00:00"])
def test_report_time_refuses_non_times(text: str) -> None:
    with pytest.raises(ReportTimeError, match=r"HH:MM|time of day"):
        parse_report_time(text)


def test_a_stored_time_in_the_window_is_moved_to_four_with_a_reason() -> None:
    at, why = effective_report_time("02:30")
    assert at == time(4, 0)
    assert why is not None and "02:30" in why and "04:00" in why
    assert effective_report_time("08:15") == (time(8, 15), None)
    assert effective_report_time("garbage")[0] == time(8, 0)


def test_a_week_is_posted_the_next_monday_at_local_time() -> None:
    due = post_time("weekly", W23, tz=BERLIN, weekday=0, at=time(8))
    assert due == datetime(2025, 6, 9, 6, 0, tzinfo=UTC)  # 08:00 CEST


@pytest.mark.parametrize(
    ("weekday", "expected_day"),
    [(0, date(2025, 6, 9)), (4, date(2025, 6, 13)), (6, date(2025, 6, 15))],
)
def test_a_week_is_posted_on_the_first_report_day_after_it_ends(
    weekday: int, expected_day: date
) -> None:
    due = post_time("weekly", W23, tz=BERLIN, weekday=weekday, at=time(9))
    assert due.astimezone(BERLIN).date() == expected_day
    assert due.astimezone(BERLIN).time() == time(9)


def test_post_time_follows_daylight_saving_in_both_directions() -> None:
    # Berlin: clocks go forward on 30 March 2025 and back on 26 October 2025.
    before_spring = post_time(
        "weekly", week_of(date(2025, 3, 17)), tz=BERLIN, weekday=0, at=time(8)
    )
    after_spring = post_time("weekly", week_of(date(2025, 3, 24)), tz=BERLIN, weekday=0, at=time(8))
    assert before_spring.hour == 7 and after_spring.hour == 6  # UTC
    before_autumn = post_time(
        "weekly", week_of(date(2025, 10, 20)), tz=BERLIN, weekday=0, at=time(8)
    )
    assert before_autumn.hour == 7  # Monday 27 October, back on CET


@pytest.mark.parametrize(
    ("month", "first"),
    [
        (date(2025, 6, 1), date(2025, 6, 2)),  # Sunday 1st -> Monday 2nd
        (date(2025, 11, 1), date(2025, 11, 3)),  # Saturday 1st -> Monday 3rd
        (date(2025, 10, 1), date(2025, 10, 1)),  # Wednesday
    ],
)
def test_first_working_day(month: date, first: date) -> None:
    assert first_working_day(month_of(month)) == first


def test_a_month_is_posted_on_the_next_months_first_working_day() -> None:
    may = month_of(date(2025, 5, 1))
    due = post_time("monthly", may, tz=NEW_YORK, weekday=0, at=time(9))
    assert due.astimezone(NEW_YORK) == datetime(2025, 6, 2, 9, 0, tzinfo=NEW_YORK)


def test_latest_due_is_last_week_after_the_post_time_and_the_week_before_it() -> None:
    monday = datetime(2025, 6, 9, 8, 0, tzinfo=BERLIN)
    assert latest_due("weekly", now=monday, tz=BERLIN, weekday=0, at=time(8)) == W23
    earlier = monday - timedelta(seconds=1)
    assert latest_due("weekly", now=earlier, tz=BERLIN, weekday=0, at=time(8)).key == "2025-W22"


def test_due_periods_after_three_weeks_of_downtime_are_the_three_weeks_oldest_first() -> None:
    last_post = post_time("weekly", week_of(date(2025, 5, 12)), tz=BERLIN, weekday=0, at=time(8))
    now = datetime(2025, 6, 9, 12, 0, tzinfo=UTC)
    found = due_periods("weekly", now=now, tz=BERLIN, weekday=0, at=time(8), since=last_post)
    assert [p.key for p in found] == ["2025-W21", "2025-W22", "2025-W23"]


def test_due_periods_never_reach_before_the_workspace_started_and_are_capped() -> None:
    now = datetime(2025, 6, 9, 12, 0, tzinfo=UTC)
    created = datetime(2025, 6, 4, tzinfo=UTC)  # mid-week: only W23's post came after it
    assert [
        p.key
        for p in due_periods("weekly", now=now, tz=BERLIN, weekday=0, at=time(8), since=created)
    ] == ["2025-W23"]
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    capped = due_periods("weekly", now=now, tz=BERLIN, weekday=0, at=time(8), since=long_ago)
    assert len(capped) == CATCH_UP_LIMIT["weekly"]
    assert capped[-1] == W23 and capped == sorted(capped, key=lambda p: p.start)


# --- summary -----------------------------------------------------------------------------


def test_ranking_takes_top_five_and_bottom_five_without_overlap_and_skips_internal_time() -> None:
    customers = [cust(i, f"C{i:02d}", 10_000 + i * 1_000, 9_000) for i in range(1, 8)]
    customers.append(cust(None, "Internal", 0, 50_000))
    top, bottom = rank_customers(customers)
    assert [c.name for c in top] == ["C07", "C06", "C05", "C04", "C03"]
    assert [c.name for c in bottom] == ["C01", "C02"]  # worst first, none repeated


def test_under_target_lists_low_margins_and_cost_without_revenue_worst_first() -> None:
    customers = [
        cust(1, "Good", 10_000, 5_000),  # 50 %
        cust(2, "Thin", 10_000, 8_000),  # 20 %
        cust(3, "Loss", 10_000, 12_000),  # -20 %
        cust(4, "NoRevenue", 0, 3_000),
        cust(5, "Idle", 0, 0),
    ]
    assert [c.name for c in under_target(customers, 30)] == ["NoRevenue", "Loss", "Thin"]


def test_break_even_uses_the_contracts_average_loaded_cost() -> None:
    usage = FixedFeeUsage(
        contract_id=1,
        customer_name="Acme",
        contract_name="Managed",
        monthly_fee_minor=200_000,  # 2,000.00
        monthly_direct_cost_minor=40_000,  # 400.00
        minutes=30 * 60,
        costed_minutes=30 * 60,
        labour_cost_minor=30 * 6_000,  # 60.00/h
    )
    # (2,000 - 400) / 60.00 per hour = 26.67 h = 1,600 minutes
    assert break_even_minutes(usage, fallback_rate_minor=None) == 1600
    [line] = past_break_even([usage], fallback_rate_minor=None)
    assert line.break_even_hours == Decimal("26.67") and line.hours == Decimal("30.00")
    under = FixedFeeUsage(1, "Acme", "Managed", 200_000, 40_000, 20 * 60, 20 * 60, 20 * 6_000)
    assert past_break_even([under], fallback_rate_minor=None) == ()


def test_break_even_falls_back_to_the_workspace_rate_and_needs_some_rate() -> None:
    uncosted = FixedFeeUsage(2, "Globex", "Care", 100_000, 0, 25 * 60, 0, 0)
    assert break_even_minutes(uncosted, fallback_rate_minor=5_000) == 20 * 60
    assert break_even_minutes(uncosted, fallback_rate_minor=None) is None
    loss = FixedFeeUsage(3, "Initech", "Care", 10_000, 20_000, 60, 60, 5_000)
    assert break_even_minutes(loss, fallback_rate_minor=None) == 0


def _reports(**extra: object) -> tuple[Report, list[Report]]:
    history = []
    for i in range(8, 0, -1):
        earlier = week_of(W23.start - timedelta(weeks=i))
        history.append(report(earlier, fig(100_000 + i, 60_000)))
    current = report(
        W23,
        fig(120_000, 70_000, 5_000, minutes=1200),
        tuple(cust(i, f"Customer {i}", 10_000 * i, 6_000 * i) for i in range(1, 4)),
        **extra,  # type: ignore[arg-type]
    )
    return current, history


def test_summary_compares_with_the_week_before_and_keeps_a_four_week_trend() -> None:
    current, history = _reports()
    summary = build_summary(kind="weekly", current=current, history=history, target_margin_pct=30)
    revenue = summary.metric("revenue")
    assert revenue.value == 120_000 and revenue.previous == 100_001
    assert revenue.change == 19_999
    assert revenue.trend == (100_003, 100_002, 100_001, 120_000)
    assert summary.metric("contribution").value == 120_000 - 70_000 - 5_000
    assert summary.metric("hours").value == Decimal("20.00")
    assert summary.metric("effective_rate").value == Decimal("60.00")
    assert summary.metric("margin").value == Decimal("37.50")
    assert len(summary.chart.points) == 8 and summary.chart.points[-1].label == "W23"
    assert summary.chart.points[-1].cost_minor == 75_000
    assert summary.title == "Week 2025-W23 (2 Jun – 8 Jun 2025)"
    assert format_change(revenue, "EUR") == "+199.99 EUR (+20.0 %)"
    assert format_change(summary.metric("margin"), "EUR").endswith(" pts")


def test_summary_refuses_history_that_is_not_earlier() -> None:
    current, _ = _reports()
    with pytest.raises(ValueError, match="not before"):
        build_summary(kind="weekly", current=current, history=[current], target_margin_pct=30)


def test_quality_lines_name_whose_rates_are_missing_and_count_the_gaps() -> None:
    quality = Quality(
        uncosted_minutes=330,
        unattributed_minutes=120,
        unpriced_minutes=30,
        missing_rates=("Dana", "Eli"),
        stale_customers=1,
    )
    restated = RestatementItem(1, "2025-W21", 5, "Acme", fig(50_000, 0), fig(42_000, 0))
    current, history = _reports(quality=quality, restatements=(restated,))
    summary = build_summary(
        kind="weekly",
        current=current,
        history=history,
        target_margin_pct=30,
        gaps=TicketGaps(tickets=2, minutes=75),
    )
    uncosted, unattributed, unpriced, tickets, stale = summary.quality
    assert uncosted.startswith("5.50 h uncosted: no cost rate for Dana, Eli.")
    assert unattributed.startswith("2.00 h unattributed")
    assert unpriced.startswith("0.50 h unpriced")
    assert tickets == "2 tickets with time but without a contract (1.25 h)."
    assert "being recomputed" in stale
    [line] = summary.restatements
    assert (line.period_key, line.customer_name, line.change_minor) == ("2025-W21", "Acme", -8_000)


def test_fixed_fee_usage_comes_from_the_months_contract_lines() -> None:
    june = month_of(date(2025, 6, 1))
    managed = Line(
        5, "Acme", Figures(minutes=1800, labour_cost_60=1800 * 6000), 51, "Managed", "fixed"
    )
    hourly = Line(5, "Acme", Figures(minutes=600, labour_cost_60=600 * 3000), 52, "Hours", "hourly")
    total = Figures(minutes=2400 + 60, uncosted_minutes=60, labour_cost_60=2400 * 5250)
    month = report(june, total, contracts=(managed, hourly))
    usages, fallback = fixed_fee_usages(month, {51: (200_000, 40_000)})
    [usage] = usages
    assert usage.minutes == 1800 and usage.labour_cost_minor == 180_000
    assert usage.contract_name == "Managed"
    assert fallback == 5250  # labour over costed minutes, per hour
    [line] = past_break_even(usages, fallback_rate_minor=fallback)
    assert line.break_even_hours == Decimal("26.67")


def test_no_activity_is_a_summary_without_data() -> None:
    empty = report(W23, Figures())
    summary = build_summary(kind="weekly", current=empty, history=[], target_margin_pct=30)
    assert not summary.has_data and not summary.chart.has_data
    assert summary.metric("revenue").previous is None
    assert "no chart" in render_text(summary)


def test_text_rendering_lists_every_section() -> None:
    current, history = _reports(quality=Quality(unattributed_minutes=60))
    summary = build_summary(kind="weekly", current=current, history=history, target_margin_pct=45)
    text = render_text(summary)
    for part in (
        "Revenue",
        "1,200.00 EUR",
        "Top customers",
        "Under the 45 % target",
        "Data quality",
        "Contribution = revenue",
    ):
        assert part in text, part


def test_sparkline_scales_and_marks_missing_values() -> None:
    assert sparkline([1, 2, 3, 4]) == "▁▃▅█"
    assert sparkline([5, 5]) == "▄▄"
    assert sparkline([None, Decimal("1.5"), Decimal("0.5")]) == "·█▁"
