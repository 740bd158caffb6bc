"""The managers' weekly (and monthly) profitability post: when it is due, and what it says.

Pure: plain values in, plain values out; no database, no clock, no Slack.

Schedule rules
--------------
- A week (Monday..Sunday) is posted on the first ``report_weekday`` after it ends, at
  ``report_time`` in the workspace's time zone: with the default (Monday 08:00) the week is
  posted the next morning. A month is posted on its successor's first working day (Mon-Fri)
  at the same time.
- ``report_time`` may not fall in 00:00-04:00 local time: clocks change in that window on
  daylight-saving nights, so a time there can be skipped or (APScheduler 3.11) fire twice.
- Catch-up: every period whose post time has passed, that is not yet claimed and whose post
  time came after the workspace started reporting, is posted, oldest first, at most a few.

Summary rules
-------------
- Totals of the period with the change against the period before and a four-period trend:
  revenue, labour cost, direct cost, contribution, margin %, hours and effective rate.
- Customers are ranked by contribution: the top five, and the bottom five not already in the
  top. Time logged against no customer counts in the totals but is never ranked.
- A customer is under target when its margin is below the workspace's target margin, or when
  it has cost and no revenue.
- A fixed-fee contract is past break-even this month when the hours worked on it in the month
  so far exceed ``(monthly fee - monthly direct cost) / average loaded cost rate``; the average
  is the contract's own (labour cost over costed hours), else the workspace's for the month.
- Data-quality notes name whose rates are missing and count unattributed and unpriced hours and
  tickets without a contract: the figures understate cost or revenue until they are fixed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from models.money import div_half_up, format_amount, minutes_to_hours, percent, round_subunits
from models.periods import Period, following, month_of, previous, week_of
from models.profitability import Presented, present
from models.reporting import Line, Quality, Report

ReportKind = Literal["weekly", "monthly"]

# ---------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------

DEFAULT_REPORT_TIME = time(8, 0)
QUIET_START = time(0, 0)
QUIET_END = time(4, 0)
SAFE_REPORT_TIME = QUIET_END
"""Where a stored time inside the quiet window is moved to (the nearest safe time)."""

CATCH_UP_LIMIT: dict[str, int] = {"weekly": 8, "monthly": 2}
"""Most periods of a kind posted at once after downtime (the newest ones)."""

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TIME_RE = re.compile(r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})")

QUIET_WINDOW_MESSAGE = (
    "Pick a time from 04:00 on: between 00:00 and 04:00 clocks change on daylight-saving "
    "nights, so a report there could be skipped or posted twice."
)


class ReportTimeError(ValueError):
    """A report time that cannot be used; the message says why and what to pick."""


def parse_report_time(text: str) -> time:
    """Read ``"HH:MM"`` (24-hour) and refuse times in the 00:00-04:00 window."""
    match = _TIME_RE.fullmatch(text.strip())
    if match is None:
        raise ReportTimeError(f"{text!r} is not a time: use HH:MM, e.g. 08:00")
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise ReportTimeError(f"{text!r} is not a time of day: use 00:00 to 23:59")
    at = time(hour, minute)
    if QUIET_START <= at < QUIET_END:
        raise ReportTimeError(f"{at:%H:%M} is too early. {QUIET_WINDOW_MESSAGE}")
    return at


def effective_report_time(stored: str | None) -> tuple[time, str | None]:
    """The time the scheduler uses for a stored setting, and why it differs (None if it doesn't).

    A time in the quiet window moves to 04:00; an unreadable one falls back to 08:00.
    """
    try:
        return parse_report_time(stored or ""), None
    except ReportTimeError as exc:
        match = _TIME_RE.fullmatch((stored or "").strip())
        if match and int(match["hour"]) < QUIET_END.hour:
            return SAFE_REPORT_TIME, f"report time {stored} moved to 04:00: {exc}"
        return DEFAULT_REPORT_TIME, f"report time {stored!r} unusable, using 08:00: {exc}"


def check_weekday(weekday: int) -> int:
    """0 (Monday) .. 6 (Sunday), or ValueError."""
    if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise ValueError(f"report weekday must be 0 (Monday) to 6 (Sunday), got {weekday!r}")
    return weekday


def first_working_day(month: Period) -> date:
    """The first Monday-to-Friday date of ``month``."""
    day = month.start
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0: the first of two repeated wall times; the quiet window keeps us clear of both.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def post_day(kind: ReportKind, period: Period, *, weekday: int) -> date:
    """The local date on which ``period``'s report is posted."""
    if kind == "weekly":
        ahead = (check_weekday(weekday) - period.end.weekday()) % 7 or 7
        return period.end + timedelta(days=ahead)
    return first_working_day(following(period))


def post_time(
    kind: ReportKind, period: Period, *, tz: ZoneInfo, weekday: int, at: time
) -> datetime:
    """When ``period``'s report is due, as a UTC instant."""
    return _local_instant(post_day(kind, period, weekday=weekday), at, tz)


def period_of_kind(kind: ReportKind, day: date) -> Period:
    return week_of(day) if kind == "weekly" else month_of(day)


def latest_due(kind: ReportKind, *, now: datetime, tz: ZoneInfo, weekday: int, at: time) -> Period:
    """The newest period whose post time is at or before ``now``."""
    today = now.astimezone(tz).date()
    # The newest due period is at most two periods back: walk back from the current one.
    candidate = period_of_kind(kind, today)
    while post_time(kind, candidate, tz=tz, weekday=weekday, at=at) > now:
        candidate = previous(candidate)
    return candidate


def due_periods(
    kind: ReportKind,
    *,
    now: datetime,
    tz: ZoneInfo,
    weekday: int,
    at: time,
    since: datetime,
    limit: int | None = None,
) -> list[Period]:
    """Periods due by ``now`` whose post time is after ``since``, oldest first.

    ``limit`` (default `CATCH_UP_LIMIT`) keeps the newest ones only: after a long outage the
    managers get the recent weeks, not a flood.
    """
    cap = CATCH_UP_LIMIT[kind] if limit is None else limit
    found: list[Period] = []
    period = latest_due(kind, now=now, tz=tz, weekday=weekday, at=at)
    while len(found) < cap and post_time(kind, period, tz=tz, weekday=weekday, at=at) > since:
        found.append(period)
        period = previous(period)
    found.reverse()
    return found


# ---------------------------------------------------------------------------------------
# Summary inputs beyond the report (plain values)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedFeeUsage:
    """A fixed-fee contract's month so far: fee, direct cost, hours and labour cost."""

    contract_id: int
    customer_name: str
    contract_name: str
    monthly_fee_minor: int
    monthly_direct_cost_minor: int
    minutes: int
    costed_minutes: int
    labour_cost_minor: int


@dataclass(frozen=True)
class TicketGaps:
    """Tickets with time in the period but no contract, and their minutes."""

    tickets: int = 0
    minutes: int = 0


# ---------------------------------------------------------------------------------------
# Summary content
# ---------------------------------------------------------------------------------------


class Unit(StrEnum):
    MONEY = "money"
    PERCENT = "percent"
    HOURS = "hours"
    RATE = "rate"  # major units per hour


Value = int | Decimal | None


@dataclass(frozen=True)
class Metric:
    """One headline figure: this period, the period before, and the trend (oldest first)."""

    key: str
    label: str
    unit: Unit
    value: Value
    previous: Value
    trend: tuple[Value, ...]

    @property
    def change(self) -> Value:
        if self.value is None or self.previous is None:
            return None
        if isinstance(self.value, int) and isinstance(self.previous, int):
            return self.value - self.previous
        return Decimal(self.value) - Decimal(self.previous)


_METRICS: tuple[tuple[str, str, Unit, Callable[[Presented], Value]], ...] = (
    ("revenue", "Revenue", Unit.MONEY, lambda p: p.revenue_minor),
    ("labour_cost", "Labour cost", Unit.MONEY, lambda p: p.labour_cost_minor),
    ("direct_cost", "Direct cost", Unit.MONEY, lambda p: p.direct_cost_minor),
    ("contribution", "Contribution", Unit.MONEY, lambda p: p.contribution_minor),
    ("margin", "Margin", Unit.PERCENT, lambda p: p.margin_pct),
    ("hours", "Hours", Unit.HOURS, lambda p: p.hours),
    ("effective_rate", "Effective rate", Unit.RATE, lambda p: p.effective_rate),
)

TREND_LENGTH = 4
CHART_LENGTH = 8
TOP_N = 5

DEFINITIONS = (
    "Revenue: hours billed at the contract rate, fixed fees and used prepaid blocks "
    "(monthly amounts shared per day). Labour cost: hours × each person's loaded cost rate. "
    "Direct cost: contracts' monthly direct costs, shared per day. "
    "Contribution = revenue − direct cost − labour cost. Margin = contribution ÷ revenue. "
    "Effective rate = revenue ÷ hours worked."
)


@dataclass(frozen=True)
class CustomerLine:
    customer_id: int
    name: str
    contribution_minor: int
    revenue_minor: int
    margin_pct: Decimal | None
    hours: Decimal


@dataclass(frozen=True)
class BreakEvenLine:
    contract_id: int
    customer_name: str
    contract_name: str
    hours: Decimal
    break_even_hours: Decimal


@dataclass(frozen=True)
class RestatementLine:
    period_key: str
    customer_name: str
    before_minor: int
    after_minor: int

    @property
    def change_minor(self) -> int:
        return self.after_minor - self.before_minor


@dataclass(frozen=True)
class ChartPoint:
    label: str
    revenue_minor: int
    cost_minor: int
    margin_pct: Decimal | None


@dataclass(frozen=True)
class ChartData:
    """What the chart shows: recent periods' revenue, cost and margin, and this period's
    contribution per customer (names raw: the chart is an image, not Slack text)."""

    title: str
    currency: str
    points: tuple[ChartPoint, ...]
    customers: tuple[tuple[str, int], ...]

    @property
    def has_data(self) -> bool:
        """Whether the reported period itself (the last point) has anything to draw."""
        current = self.points[-1] if self.points else None
        return bool(current and (current.revenue_minor or current.cost_minor)) or any(
            value for _, value in self.customers
        )


@dataclass(frozen=True)
class WeeklySummary:
    """Everything the managers' post says, as plain values (rendered by blocks or text)."""

    kind: ReportKind
    period: Period
    title: str
    currency: str
    target_margin_pct: int
    metrics: tuple[Metric, ...]
    top: tuple[CustomerLine, ...]
    bottom: tuple[CustomerLine, ...]
    under_target: tuple[CustomerLine, ...]
    past_break_even: tuple[BreakEvenLine, ...]
    quality: tuple[str, ...]
    restatements: tuple[RestatementLine, ...]
    definitions: str
    chart: ChartData
    has_data: bool = True

    def metric(self, key: str) -> Metric:
        for item in self.metrics:
            if item.key == key:
                return item
        raise KeyError(key)


def period_title(kind: ReportKind, period: Period) -> str:
    """``"Week 2025-W23 (2 Jun – 8 Jun 2025)"`` or ``"June 2025"``."""
    if kind == "monthly":
        return f"{period.start:%B %Y}"
    return f"Week {period.key} ({period.start:%-d %b} – {period.end:%-d %b %Y})"


def _customer_line(line: Line) -> CustomerLine:
    assert line.customer_id is not None
    p = line.presented
    return CustomerLine(
        customer_id=line.customer_id,
        name=line.customer,
        contribution_minor=p.contribution_minor,
        revenue_minor=p.revenue_minor,
        margin_pct=p.margin_pct,
        hours=p.hours,
    )


def _active(p: Presented) -> bool:
    return bool(p.minutes or p.revenue_minor or p.labour_cost_minor or p.direct_cost_minor)


def _ranked(lines: Iterable[Line]) -> list[Line]:
    return [line for line in lines if line.customer_id is not None and _active(line.presented)]


def rank_customers(
    customers: Iterable[Line], n: int = TOP_N
) -> tuple[tuple[CustomerLine, ...], tuple[CustomerLine, ...]]:
    """Top ``n`` by contribution, and the bottom ``n`` not in the top (worst first)."""
    lines = [_customer_line(line) for line in _ranked(customers)]
    # Ties broken by name, then id, so the order is stable between runs.
    lines.sort(key=lambda c: (-c.contribution_minor, c.name.lower(), c.customer_id))
    top = lines[:n]
    rest = lines[n:]
    bottom = list(reversed(rest[-n:])) if rest else []
    return tuple(top), tuple(bottom)


def under_target(customers: Iterable[Line], target_margin_pct: int) -> tuple[CustomerLine, ...]:
    """Customers below the target margin (or with cost and no revenue), worst margin first."""
    found: list[CustomerLine] = []
    for line in _ranked(customers):
        p = line.presented
        if p.margin_pct is None:
            if p.labour_cost_minor or p.direct_cost_minor:
                found.append(_customer_line(line))
        elif p.margin_pct < target_margin_pct:
            found.append(_customer_line(line))
    # No revenue sorts first: it is the worst case (all cost).
    found.sort(
        key=lambda c: (
            c.margin_pct is not None,
            c.margin_pct or Decimal(0),
            c.name.lower(),
        )
    )
    return tuple(found)


def break_even_minutes(usage: FixedFeeUsage, *, fallback_rate_minor: int | None) -> int | None:
    """Minutes of work the fee covers: (fee - direct cost) / average loaded cost per hour.

    The average is the contract's own labour cost over its costed minutes, else
    ``fallback_rate_minor`` (minor units per hour). None when no rate is known.
    """
    margin_minor = usage.monthly_fee_minor - usage.monthly_direct_cost_minor
    if margin_minor <= 0:
        return 0
    if usage.costed_minutes > 0 and usage.labour_cost_minor > 0:
        # margin / (labour / costed minutes): the minutes the margin pays for at that average.
        return div_half_up(margin_minor * usage.costed_minutes, usage.labour_cost_minor)
    if fallback_rate_minor:
        return div_half_up(margin_minor * 60, fallback_rate_minor)
    return None


def past_break_even(
    usages: Iterable[FixedFeeUsage], *, fallback_rate_minor: int | None
) -> tuple[BreakEvenLine, ...]:
    """Fixed-fee contracts whose hours this month exceed their break-even hours, most over
    first."""
    lines: list[tuple[int, BreakEvenLine]] = []
    for usage in usages:
        limit = break_even_minutes(usage, fallback_rate_minor=fallback_rate_minor)
        if limit is None or usage.minutes <= limit:
            continue
        lines.append(
            (
                usage.minutes - limit,
                BreakEvenLine(
                    contract_id=usage.contract_id,
                    customer_name=usage.customer_name,
                    contract_name=usage.contract_name,
                    hours=minutes_to_hours(usage.minutes),
                    break_even_hours=minutes_to_hours(limit),
                ),
            )
        )
    lines.sort(key=lambda pair: (-pair[0], pair[1].customer_name.lower()))
    return tuple(line for _, line in lines)


def fixed_fee_usages(
    month: Report, fees: Mapping[int, tuple[int, int]]
) -> tuple[list[FixedFeeUsage], int | None]:
    """Fixed-fee contracts' month so far from the month's report, and the workspace's average
    loaded cost per hour (the fallback rate).

    ``fees`` maps a fixed-fee contract id to its (monthly fee, monthly direct cost), minor units.
    """
    usages = []
    for line in month.contracts:
        if line.contract_id is None or line.contract_id not in fees:
            continue
        fee, direct = fees[line.contract_id]
        fig = line.figures
        usages.append(
            FixedFeeUsage(
                contract_id=line.contract_id,
                customer_name=line.customer,
                contract_name=line.contract or "",
                monthly_fee_minor=fee,
                monthly_direct_cost_minor=direct,
                minutes=fig.minutes,
                costed_minutes=fig.minutes - fig.uncosted_minutes,
                labour_cost_minor=round_subunits(fig.labour_cost_60),
            )
        )
    total = month.total
    costed = total.minutes - total.uncosted_minutes
    fallback = div_half_up(total.labour_cost_60, costed) if costed > 0 else None
    return usages, fallback or None


def _hours(minutes: int) -> str:
    return f"{minutes_to_hours(minutes)} h"


def quality_lines(quality: Quality, gaps: TicketGaps = TicketGaps()) -> tuple[str, ...]:
    """Plain sentences about what is missing from the figures (names are raw text)."""
    lines: list[str] = []
    if quality.uncosted_minutes:
        who = (
            f": no cost rate for {', '.join(quality.missing_rates)}"
            if quality.missing_rates
            else ""
        )
        lines.append(
            f"{_hours(quality.uncosted_minutes)} uncosted{who}. "
            "Labour cost is understated until the rates are set."
        )
    if quality.unattributed_minutes:
        lines.append(
            f"{_hours(quality.unattributed_minutes)} unattributed (no active contract for the "
            "work): cost without revenue."
        )
    if quality.unpriced_minutes:
        lines.append(
            f"{_hours(quality.unpriced_minutes)} unpriced: hourly contracts without a charge "
            "rate on the work date."
        )
    if gaps.tickets:
        noun = "ticket" if gaps.tickets == 1 else "tickets"
        hours = f" ({_hours(gaps.minutes)})" if gaps.minutes else ""
        lines.append(f"{gaps.tickets} {noun} with time but without a contract{hours}.")
    if quality.stale_customers:
        lines.append(
            f"Figures of {quality.stale_customers} customer(s) were still being recomputed."
        )
    if quality.cost_change_pending:
        lines.append("A cost-rate change was still being applied to labour costs.")
    return tuple(lines)


def _metrics(current: Presented, history: Sequence[Presented]) -> tuple[Metric, ...]:
    prev = history[-1] if history else None
    window = [*history[-(TREND_LENGTH - 1) :], current] if TREND_LENGTH > 1 else [current]
    return tuple(
        Metric(
            key=key,
            label=label,
            unit=unit,
            value=get(current),
            previous=get(prev) if prev is not None else None,
            trend=tuple(get(p) for p in window),
        )
        for key, label, unit, get in _METRICS
    )


def _chart(kind: ReportKind, current: Report, history: Sequence[Report], title: str) -> ChartData:
    reports = [*history[-(CHART_LENGTH - 1) :], current]
    points = []
    for r in reports:
        total = present(r.total)
        points.append(
            ChartPoint(
                label=(
                    f"W{r.period.start.isocalendar().week:02d}"
                    if kind == "weekly"
                    else f"{r.period.start:%b}"
                ),
                revenue_minor=total.revenue_minor,
                cost_minor=total.labour_cost_minor + total.direct_cost_minor,
                margin_pct=total.margin_pct,
            )
        )
    ranked = sorted(
        _ranked(current.customers),
        key=lambda c: (-c.presented.contribution_minor, c.customer.lower()),
    )
    bars = tuple((c.customer, c.presented.contribution_minor) for c in ranked)
    return ChartData(title=title, currency=current.currency, points=tuple(points), customers=bars)


def build_summary(
    *,
    kind: ReportKind,
    current: Report,
    history: Sequence[Report],
    target_margin_pct: int,
    fixed_fees: Sequence[FixedFeeUsage] = (),
    fallback_cost_rate_minor: int | None = None,
    gaps: TicketGaps = TicketGaps(),
) -> WeeklySummary:
    """The post's content for the ``current`` report; ``history`` holds the reports of the
    periods before it, oldest first (the last is compared against; up to seven feed the chart).
    Restatements and data quality come from ``current``."""
    for earlier in history:
        if earlier.period.start >= current.period.start:
            raise ValueError(f"history period {earlier.period} is not before {current.period}")
    title = period_title(kind, current.period)
    top, bottom = rank_customers(current.customers)
    restated = tuple(
        RestatementLine(
            period_key=item.period_key,
            customer_name=item.customer,
            before_minor=present(item.before).contribution_minor,
            after_minor=present(item.after).contribution_minor,
        )
        for item in sorted(current.restatements, key=lambda r: (r.period_key, r.customer.lower()))
    )
    total = present(current.total)
    return WeeklySummary(
        kind=kind,
        period=current.period,
        title=title,
        currency=current.currency,
        target_margin_pct=target_margin_pct,
        metrics=_metrics(total, [present(h.total) for h in history]),
        top=top,
        bottom=bottom,
        under_target=under_target(current.customers, target_margin_pct),
        past_break_even=past_break_even(fixed_fees, fallback_rate_minor=fallback_cost_rate_minor),
        quality=quality_lines(current.quality, gaps),
        restatements=restated,
        definitions=DEFINITIONS,
        chart=_chart(kind, current, history, title),
        has_data=_active(total),
    )


# ---------------------------------------------------------------------------------------
# Formatting (shared by the Block Kit builder and the text rendering)
# ---------------------------------------------------------------------------------------


def format_value(value: Value, unit: Unit, currency: str) -> str:
    """A figure for people: ``"1,234.50 EUR"``, ``"34.5 %"``, ``"12.50 h"``, ``"96.00 EUR/h"``."""
    if value is None:
        return "n/a"
    if unit is Unit.MONEY:
        return format_amount(int(value), currency)
    if unit is Unit.PERCENT:
        return f"{Decimal(value).quantize(Decimal('0.1'))} %"
    if unit is Unit.HOURS:
        return f"{Decimal(value).quantize(Decimal('0.01'))} h"
    minor = int((Decimal(value) * 100).to_integral_value())
    return f"{format_amount(minor, currency)}/h"


def format_change(metric: Metric, currency: str) -> str:
    """The change against the previous period: ``"+120.00 EUR (+5.3 %)"``, ``"-2.0 pts"``."""
    change = metric.change
    if change is None:
        return "n/a"
    sign = "+" if change >= 0 else "-"
    magnitude = -change if change < 0 else change
    if metric.unit is Unit.PERCENT:
        return f"{sign}{Decimal(magnitude).quantize(Decimal('0.1'))} pts"
    text = sign + format_value(magnitude, metric.unit, currency)
    if metric.unit is Unit.MONEY and metric.previous:
        relative = percent(int(change), abs(int(metric.previous)))
        if relative is not None:
            text += f" ({'+' if relative >= 0 else ''}{relative.quantize(Decimal('0.1'))} %)"
    return text


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[Value]) -> str:
    """A small trend drawing (``·`` where a value is missing)."""
    known = [Decimal(v) for v in values if v is not None]
    if not known:
        return "·" * len(values)
    low, high = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append("·")
        elif high == low:
            out.append(_SPARKS[3])
        else:
            index = int((Decimal(v) - low) / (high - low) * (len(_SPARKS) - 1))
            out.append(_SPARKS[index])
    return "".join(out)


def format_customer(line: CustomerLine, currency: str, name: str | None = None) -> str:
    """``"Acme: 1,200.00 EUR contribution, 34.5 % margin, 12.00 h"`` (``name`` pre-escaped)."""
    margin = format_value(line.margin_pct, Unit.PERCENT, currency)
    return (
        f"{name if name is not None else line.name}: "
        f"{format_amount(line.contribution_minor, currency)} contribution, "
        f"{margin} margin, {line.hours} h"
    )


def format_break_even(line: BreakEvenLine, customer: str, contract: str) -> str:
    return (
        f"{customer} ({contract}): {line.hours} h this month, "
        f"break-even at {line.break_even_hours} h"
    )


def format_restatement(line: RestatementLine, customer: str, currency: str) -> str:
    change = line.change_minor
    sign = "+" if change >= 0 else "-"
    return (
        f"{line.period_key} {customer}: contribution "
        f"{format_amount(line.before_minor, currency)} → "
        f"{format_amount(line.after_minor, currency)} "
        f"({sign}{format_amount(abs(change), currency)})"
    )


def metric_table(summary: WeeklySummary) -> str:
    """The headline figures as a fixed-width table (for a code block or a terminal)."""
    prev_label = "vs last week" if summary.kind == "weekly" else "vs last month"
    trend_label = f"{TREND_LENGTH}-{'week' if summary.kind == 'weekly' else 'month'} trend"
    rows = [
        ("", "This " + ("week" if summary.kind == "weekly" else "month"), prev_label, trend_label)
    ]
    for m in summary.metrics:
        rows.append(
            (
                m.label,
                format_value(m.value, m.unit, summary.currency),
                format_change(m, summary.currency),
                sparkline(m.trend),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )


NO_DATA_SENTENCE = "No time, fees or costs were recorded for this period, so there is no chart."


def render_text(summary: WeeklySummary, *, list_limit: int = 10) -> str:
    """The post as plain text (the demo prints this; the same content as the Slack blocks)."""
    out = [f"Profitability: {summary.title}", ""]
    if not summary.has_data:
        out.append(NO_DATA_SENTENCE)
    out.append(metric_table(summary))

    def listing(title: str, items: Sequence[str]) -> None:
        if not items:
            return
        out.extend(["", title])
        out.extend(f"  • {item}" for item in items[:list_limit])
        if len(items) > list_limit:
            out.append(f"  … and {len(items) - list_limit} more")

    cur = summary.currency
    listing("Top customers by contribution", [format_customer(c, cur) for c in summary.top])
    listing("Bottom customers by contribution", [format_customer(c, cur) for c in summary.bottom])
    listing(
        f"Under the {summary.target_margin_pct} % target margin",
        [format_customer(c, cur) for c in summary.under_target],
    )
    listing(
        "Fixed-fee contracts past break-even this month",
        [format_break_even(b, b.customer_name, b.contract_name) for b in summary.past_break_even],
    )
    listing("Data quality", list(summary.quality))
    listing(
        "Restated earlier periods",
        [format_restatement(r, r.customer_name, cur) for r in summary.restatements],
    )
    out.extend(["", summary.definitions])
    return "\n".join(out)
