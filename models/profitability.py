"""Docket's profitability engine: exact figures per customer and contract for a period.

Pure: plain frozen dataclasses in, plain results out; no database, no clock.

Rules
-----
- Rows are keyed by ``(customer_id, contract_id)``; time without a usable contract is kept
  under ``(customer_id, None)``. ``customer_id`` is None only for time logged against no
  customer at all (internal work): it has a cost and no revenue.
- All amounts are exact integers in sixtieths of a minor unit (``*_60``, see models.money).
- Cost: every minute is costed at the member's rate in force on the work date, else their
  group's, else the workspace default. With none in force the minutes are UNCOSTED: counted in
  ``uncosted_minutes`` and the member listed in ``missing_rates``; no cost is invented.
- Attribution: an entry earns revenue only through a contract that exists, belongs to the
  entry's customer (when the entry names one) and is active on the work date
  (``start <= work_date <= end``). Other time earns nothing and counts in
  ``unattributed_minutes``. Non-billable time never earns revenue.
- Hourly contract: billable minutes x the charge rate in force on the work date. With no rate
  in force the minutes earn nothing and count in ``unpriced_minutes``.
- Fixed contract: each month's fee is split over ALL days of that month by largest remainder
  (equal remainders to earlier days); a day earns its share only while the contract is active.
  A period earns the sum of its days, with or without time entries. Time on a fixed contract
  earns nothing more.
- Monthly direct cost (any kind of contract): the same day-share rule.
- Block contract: billable minutes consume the block in work-date order (ties by entry id).
  Revenue for the block part is cumulative: after ``u`` minutes of a block of ``B`` minutes for
  price ``P`` the block has earned ``round_half_up(min(u, B) x P x 60 / B)`` sixtieths, and an
  entry earns the difference it makes. This is the only rounding before presentation; it makes
  a whole block earn exactly its price. Minutes beyond the block earn the overage rate per hour.
  The caller passes the billable minutes each block contract consumed BEFORE the period start
  (``block_used_before``, missing contracts count as 0; see `block_usage_before`), and gets the
  usage at the period end back in ``PeriodFigures.block_used_after``. A late entry on an
  earlier date therefore changes later periods: they must be recomputed (restated).
- Presentation rounds revenue, labour cost and direct cost ONCE each, half up, to minor units;
  contribution = revenue - direct cost - labour cost from the rounded amounts, so each row adds
  up on screen. Totals are sums of exact figures, presented afterwards (`sum_figures`), so a
  total can differ by a cent from the sum of rounded rows.
- Figures are additive: the figures of two adjacent date ranges add up to those of their union
  (with ``block_used_before`` chained).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from models.money import (
    SUBUNITS,
    div_half_up,
    minutes_to_hours,
    percent,
    rate_per_hour,
    round_subunits,
    split_largest_remainder,
)
from models.periods import Period, month_of
from models.rates import RateRow, ResolvedRate, rate_in_force, resolve_cost_rate

RowKey = tuple[int | None, int | None]
"""``(customer_id, contract_id)``; contract None holds the customer's unattributed time."""


class PricingKind(StrEnum):
    """How a contract earns: by the hour, a fixed monthly fee, or a prepaid block of hours."""

    HOURLY = "hourly"
    FIXED = "fixed"
    BLOCK = "block"


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative: {value}")


CONTRACT_AMOUNTS = (
    "monthly_fee_minor",
    "block_minutes",
    "block_price_minor",
    "overage_minor_per_hour",
    "monthly_direct_cost_minor",
)
"""A contract's amounts besides its charge rates (minor units or minutes); none is negative."""

_FOREIGN_FIELDS: dict[PricingKind, tuple[str, ...]] = {
    PricingKind.HOURLY: (
        "monthly_fee_minor",
        "block_minutes",
        "block_price_minor",
        "overage_minor_per_hour",
    ),
    PricingKind.FIXED: (
        "charge_rates",
        "block_minutes",
        "block_price_minor",
        "overage_minor_per_hour",
    ),
    PricingKind.BLOCK: ("charge_rates", "monthly_fee_minor"),
}


@dataclass(frozen=True)
class Entry:
    """Minutes a member worked on a (local) date, for a customer and contract if known."""

    id: int
    member_id: int
    customer_id: int | None
    contract_id: int | None
    work_date: date
    minutes: int
    billable: bool = True

    def __post_init__(self) -> None:
        _check_count(f"entry {self.id} minutes", self.minutes)


@dataclass(frozen=True)
class PricedContract:
    """What a customer pays for. Only the fields of its kind may be set (others must be 0)."""

    id: int
    customer_id: int
    kind: PricingKind
    start: date
    end: date | None = None
    charge_rates: tuple[RateRow, ...] = ()
    monthly_fee_minor: int = 0
    block_minutes: int = 0
    block_price_minor: int = 0
    overage_minor_per_hour: int = 0
    monthly_direct_cost_minor: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PricingKind(self.kind))
        object.__setattr__(self, "charge_rates", tuple(self.charge_rates))
        if self.end is not None and self.end < self.start:
            raise ValueError(f"contract {self.id} ends {self.end}, before its start {self.start}")
        for name in CONTRACT_AMOUNTS:
            _check_count(f"contract {self.id} {name}", getattr(self, name))
        # Fields of another kind would be silently ignored and misreport revenue: refuse them.
        for name in _FOREIGN_FIELDS[self.kind]:
            if getattr(self, name):
                raise ValueError(f"contract {self.id} is {self.kind.value}: {name} must be empty")
        if self.kind is PricingKind.BLOCK and self.block_minutes == 0:
            raise ValueError(f"block contract {self.id} needs block_minutes > 0")

    def active_on(self, day: date) -> bool:
        """True when ``start <= day <= end`` (no end: open)."""
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class CostRates:
    """Every cost rate the engine may need: per member, per group, and the default."""

    member: Mapping[int, Sequence[RateRow]] = field(default_factory=dict)
    group_of: Mapping[int, int | None] = field(default_factory=dict)
    group: Mapping[int, Sequence[RateRow]] = field(default_factory=dict)
    default: Sequence[RateRow] = ()

    def resolve(self, member_id: int, on: date) -> ResolvedRate | None:
        """The member's cost rate on ``on`` (member, group, default), or None if uncosted."""
        group_id = self.group_of.get(member_id)
        return resolve_cost_rate(
            member_rates=self.member.get(member_id, ()),
            group_rates=self.group.get(group_id, ()) if group_id is not None else (),
            default_rates=self.default,
            on=on,
        )


@dataclass(frozen=True)
class Figures:
    """Exact figures of one row (or a total). Amounts are sixtieths of a minor unit.

    Addable: ``a + b`` sums every count and amount and unites ``missing_rates``.
    """

    minutes: int = 0
    billable_minutes: int = 0
    revenue_60: int = 0
    labour_cost_60: int = 0
    direct_cost_60: int = 0
    uncosted_minutes: int = 0
    unattributed_minutes: int = 0
    unpriced_minutes: int = 0
    missing_rates: frozenset[int] = frozenset()

    def __add__(self, other: Figures) -> Figures:
        if not isinstance(other, Figures):
            return NotImplemented
        return Figures(
            minutes=self.minutes + other.minutes,
            billable_minutes=self.billable_minutes + other.billable_minutes,
            revenue_60=self.revenue_60 + other.revenue_60,
            labour_cost_60=self.labour_cost_60 + other.labour_cost_60,
            direct_cost_60=self.direct_cost_60 + other.direct_cost_60,
            uncosted_minutes=self.uncosted_minutes + other.uncosted_minutes,
            unattributed_minutes=self.unattributed_minutes + other.unattributed_minutes,
            unpriced_minutes=self.unpriced_minutes + other.unpriced_minutes,
            missing_rates=self.missing_rates | other.missing_rates,
        )


INT_FIELDS = tuple(f.name for f in fields(Figures) if f.name != "missing_rates")
"""Names of the integer fields of `Figures` (what a stored result row holds)."""


def sum_figures(items: Iterable[Figures]) -> Figures:
    """The exact sum of ``items`` (a zero `Figures` when empty)."""
    total = Figures()
    for item in items:
        total = total + item
    return total


@dataclass(frozen=True)
class PeriodFigures:
    """The engine's answer for one period.

    ``rows`` has a row for every key with a time entry in the period and for every contract
    with a monthly fee or direct cost that is active on at least one day of it.
    ``block_used_after`` gives, for every block contract passed in, the billable minutes
    consumed up to the period end (feed it as ``block_used_before`` of the next period).
    """

    period: Period
    rows: Mapping[RowKey, Figures]
    uncosted_by_member: Mapping[int, int]
    block_used_after: Mapping[int, int]

    @property
    def total(self) -> Figures:
        """Exact sum of all rows."""
        return sum_figures(self.rows.values())

    @property
    def missing_rates(self) -> tuple[int, ...]:
        """Ids of members with uncosted time in the period, sorted."""
        return tuple(sorted(self.uncosted_by_member))

    def by_customer(self) -> dict[int | None, Figures]:
        """Rows summed per customer (exactly)."""
        result: dict[int | None, Figures] = {}
        for (customer_id, _contract_id), figures in self.rows.items():
            result[customer_id] = result.get(customer_id, Figures()) + figures
        return result


@dataclass(frozen=True)
class Presented:
    """Figures as managers see them: amounts in minor units, each rounded once, half up.

    ``hours`` and ``billable_hours`` have two places. ``margin_pct`` is contribution over
    revenue (None at zero revenue). ``effective_rate`` (revenue per hour worked) and
    ``contribution_per_hour`` are in MAJOR units per hour, two places, None at zero minutes.
    """

    minutes: int
    billable_minutes: int
    hours: Decimal
    billable_hours: Decimal
    revenue_minor: int
    labour_cost_minor: int
    direct_cost_minor: int
    contribution_minor: int
    margin_pct: Decimal | None
    effective_rate: Decimal | None
    contribution_per_hour: Decimal | None
    uncosted_minutes: int
    unattributed_minutes: int
    unpriced_minutes: int
    missing_rates: tuple[int, ...]

    @property
    def complete(self) -> bool:
        """False when some time has no cost rate or no charge rate (the figures understate)."""
        return self.uncosted_minutes == 0 and self.unpriced_minutes == 0


def present(fig: Figures) -> Presented:
    """Round exact figures for display (see the module rules)."""
    revenue = round_subunits(fig.revenue_60)
    labour = round_subunits(fig.labour_cost_60)
    direct = round_subunits(fig.direct_cost_60)
    contribution = revenue - direct - labour
    return Presented(
        minutes=fig.minutes,
        billable_minutes=fig.billable_minutes,
        hours=minutes_to_hours(fig.minutes),
        billable_hours=minutes_to_hours(fig.billable_minutes),
        revenue_minor=revenue,
        labour_cost_minor=labour,
        direct_cost_minor=direct,
        contribution_minor=contribution,
        margin_pct=percent(contribution, revenue),
        effective_rate=rate_per_hour(revenue, fig.minutes),
        contribution_per_hour=rate_per_hour(contribution, fig.minutes),
        uncosted_minutes=fig.uncosted_minutes,
        unattributed_minutes=fig.unattributed_minutes,
        unpriced_minutes=fig.unpriced_minutes,
        missing_rates=tuple(sorted(fig.missing_rates)),
    )


def block_revenue_60(contract: PricedContract, used_before: int, minutes: int) -> tuple[int, int]:
    """Revenue (sixtieths) of ``minutes`` billable minutes on a block contract after
    ``used_before`` minutes were consumed, and the usage afterwards.

    The part inside the block earns the change in cumulative block revenue (rounded half up
    to sixtieths); the part beyond it earns ``overage_minor_per_hour``.
    """
    if contract.kind is not PricingKind.BLOCK:
        raise ValueError(f"contract {contract.id} is not a block contract")
    _check_count("used_before", used_before)
    _check_count("minutes", minutes)
    size = contract.block_minutes
    used_after = used_before + minutes

    def earned(used: int) -> int:
        return div_half_up(min(used, size) * contract.block_price_minor * SUBUNITS, size)

    inside = min(used_after, size) - min(used_before, size)
    revenue = earned(used_after) - earned(used_before)
    revenue += (minutes - inside) * contract.overage_minor_per_hour
    return revenue, used_after


def attributed_contract(
    entry: Entry, contracts: Mapping[int, PricedContract]
) -> PricedContract | None:
    """The contract an entry earns through, or None when its time is unattributed."""
    if entry.contract_id is None:
        return None
    contract = contracts.get(entry.contract_id)
    if contract is None or not contract.active_on(entry.work_date):
        return None
    if entry.customer_id is not None and entry.customer_id != contract.customer_id:
        return None
    return contract


def block_usage_before(
    *, entries: Iterable[Entry], contracts: Mapping[int, PricedContract], before: date
) -> dict[int, int]:
    """Billable minutes each block contract consumed on dates before ``before``.

    Counts exactly what `compute_period` consumes, so it is a valid ``block_used_before``
    when ``entries`` holds all of the contracts' earlier entries.
    """
    usage: dict[int, int] = {}
    for entry in entries:
        if entry.work_date >= before or not entry.billable:
            continue
        contract = attributed_contract(entry, contracts)
        if contract is not None and contract.kind is PricingKind.BLOCK:
            usage[contract.id] = usage.get(contract.id, 0) + entry.minutes
    return usage


@dataclass
class _Row:
    minutes: int = 0
    billable_minutes: int = 0
    revenue_60: int = 0
    labour_cost_60: int = 0
    direct_cost_60: int = 0
    uncosted_minutes: int = 0
    unattributed_minutes: int = 0
    unpriced_minutes: int = 0
    missing_rates: set[int] = field(default_factory=set)

    def freeze(self) -> Figures:
        return Figures(
            minutes=self.minutes,
            billable_minutes=self.billable_minutes,
            revenue_60=self.revenue_60,
            labour_cost_60=self.labour_cost_60,
            direct_cost_60=self.direct_cost_60,
            uncosted_minutes=self.uncosted_minutes,
            unattributed_minutes=self.unattributed_minutes,
            unpriced_minutes=self.unpriced_minutes,
            missing_rates=frozenset(self.missing_rates),
        )


def monthly_day_shares(monthly_minor: int, month: Period) -> dict[date, int]:
    """A monthly amount split over every day of ``month`` (largest remainder, earlier first)."""
    month_days = list(month)
    shares = split_largest_remainder(monthly_minor, [1] * len(month_days))
    return dict(zip(month_days, shares, strict=True))


def _add_monthly_amounts(
    period: Period, contract: PricedContract, rows: dict[RowKey, _Row]
) -> None:
    first = max(period.start, contract.start)
    last = period.end if contract.end is None else min(period.end, contract.end)
    if first > last:
        return
    fee = contract.monthly_fee_minor if contract.kind is PricingKind.FIXED else 0
    direct = contract.monthly_direct_cost_minor
    if fee == 0 and direct == 0:
        return
    # The row exists even if every share in range is 0: row keys then depend on dates only,
    # which keeps the figures of adjacent ranges additive.
    row = rows.setdefault((contract.customer_id, contract.id), _Row())
    month = month_of(first)
    while month.start <= last:
        # Split over the whole month, not the active days: a partial month earns pro rata.
        fee_shares = monthly_day_shares(fee, month)
        direct_shares = monthly_day_shares(direct, month)
        for day in month:
            if first <= day <= last:
                row.revenue_60 += fee_shares[day] * SUBUNITS
                row.direct_cost_60 += direct_shares[day] * SUBUNITS
        month = month_of(month.end + timedelta(days=1))


def compute_period(
    *,
    period: Period,
    entries: Iterable[Entry],
    contracts: Mapping[int, PricedContract],
    rates: CostRates,
    block_used_before: Mapping[int, int],
) -> PeriodFigures:
    """Exact figures per ``(customer_id, contract_id)`` for ``period``.

    ``entries`` may hold entries outside the period; they are ignored. ``contracts`` maps id to
    contract and must hold every contract whose fee or direct cost should count.
    ``block_used_before`` maps a block contract id to the billable minutes it consumed before
    ``period.start`` (absent means 0).
    """
    for contract_id, held in contracts.items():
        if held.id != contract_id:
            raise ValueError(f"contracts[{contract_id}] holds contract {held.id}")
    rows: dict[RowKey, _Row] = {}
    uncosted_by_member: dict[int, int] = {}
    block_used: dict[int, int] = {
        c.id: block_used_before.get(c.id, 0)
        for c in contracts.values()
        if c.kind is PricingKind.BLOCK
    }
    # Block revenue depends on the order of consumption: work date, then entry id.
    in_period = sorted(
        (e for e in entries if e.work_date in period), key=lambda e: (e.work_date, e.id)
    )
    for entry in in_period:
        contract = attributed_contract(entry, contracts)
        if contract is not None:
            key: RowKey = (contract.customer_id, contract.id)
        else:
            known = contracts.get(entry.contract_id) if entry.contract_id is not None else None
            customer_id = entry.customer_id
            if customer_id is None and known is not None:
                customer_id = known.customer_id
            key = (customer_id, None)
        row = rows.setdefault(key, _Row())
        minutes = entry.minutes
        row.minutes += minutes
        if entry.billable:
            row.billable_minutes += minutes

        # Every minute costs money, billable or not, attributed or not.
        rate = rates.resolve(entry.member_id, entry.work_date)
        if rate is None:
            row.uncosted_minutes += minutes
            row.missing_rates.add(entry.member_id)
            uncosted_by_member[entry.member_id] = (
                uncosted_by_member.get(entry.member_id, 0) + minutes
            )
        else:
            row.labour_cost_60 += minutes * rate.minor_per_hour

        if contract is None:
            row.unattributed_minutes += minutes
        elif not entry.billable or contract.kind is PricingKind.FIXED:
            pass  # a fixed fee is earned per day (below), never per minute
        elif contract.kind is PricingKind.HOURLY:
            charge = rate_in_force(contract.charge_rates, entry.work_date)
            if charge is None:
                row.unpriced_minutes += minutes
            else:
                row.revenue_60 += minutes * charge.minor_per_hour
        else:
            revenue, block_used[contract.id] = block_revenue_60(
                contract, block_used[contract.id], minutes
            )
            row.revenue_60 += revenue

    for held in contracts.values():
        _add_monthly_amounts(period, held, rows)

    return PeriodFigures(
        period=period,
        rows={key: row.freeze() for key, row in rows.items()},
        uncosted_by_member=uncosted_by_member,
        block_used_after=block_used,
    )
