"""Set-based profitability recompute: many customers and every period at once.

The per-customer engine (models.engine) hands each customer's daily time to the pure rules one
period at a time. When many periods change at once (a back-dated rate, an import of history,
`docket rebuild`) that loop is the limit, so this module computes the same figures for a
whole block of customers with one SQL pass per block:

- The rules that depend on a date are turned into small temporary tables of pieces over which
  they are constant, built in Python by the pure rule functions themselves: each member's cost
  rate (member, group, default: `CostRates.resolve`) and every usable contract with its dates,
  kind and, for hourly contracts, charge rate (`rate_in_force`). Days in no piece are uncosted
  (or unpriced), exactly as the pure rules leave them. On SQLite, where every join is an index
  seek per time entry, the cost pieces are spread into one row per member and day that also
  holds the day's week and month, so an entry needs one equality seek for all three; the
  customer index of the time entries covers every summed column, so a block of customers is
  read as one range of the index.
- One aggregate query joins the time entries to those pieces and sums, per customer, contract
  (or none), week and month: minutes, billable minutes, labour cost, uncosted, unattributed,
  hourly revenue, unpriced and the billable minutes each prepaid block consumed. Cost and
  hourly revenue are linear in minutes, so summing them in SQL is exact. It groups each
  (week, month) pair once and adds the pairs up per week and per month in SQL too.
- Prepaid blocks need only the usage at each period's start: a block's revenue over a period
  is the change of its cumulative (rounded) revenue plus overage (`block_revenue_60` on the
  period's minutes), chained over the periods in date order.
- Fixed fees and direct costs: each contract-month's day shares are split once and summed
  over the active days of each period.

The results are the engine's own figures to the cent (a property test holds both paths
equal), kept as plain tuples of stored values: a block's rows are compared with its stored
rows (read with one conversion per distinct date and member list), and only changed rows are
deleted and inserted again, in the unique index's order, in one transaction per block
(PostgreSQL takes the same per-customer locks as a refresh, in one round trip). A SQLite
rebuild sums the next block's time on a second, reading connection while it writes the block
before, and uses those sums only if nothing else was committed in between.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models import cost_changes, profit_refresh, profit_store
from models import engine as per_customer
from models.money import SUBUNITS, split_largest_remainder
from models.periods import month_of
from models.profitability import (
    INT_FIELDS,
    CostRates,
    Figures,
    PricedContract,
    PricingKind,
    block_revenue_60,
    sum_figures,
)
from models.rates import rate_in_force
from models.sql import READONLY_OPTION, dialect
from models.tables import ProfitResult, StalePeriod, TimeEntry
from models.timelog import horizon_end, mark_stale, periods_of_range

logger = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 400
"""Customers recomputed per transaction by a rebuild: bounds memory and lock time."""

BULK_BACKLOG = 200
"""Stale customer-periods above which a refresh step recomputes whole customers set-based:
a back-dated rate or an import marks thousands at once."""

BULK_CUSTOMERS = 100
"""Customers per set-based refresh step: a step stays well under a second, so SQLite's
write lock is free between steps."""

AGGREGATE_WORK_MEM = "64MB"
"""PostgreSQL memory for one block's aggregate (its hash table), per transaction."""

REBUILD_OVERLAP = 3
"""Blocks a PostgreSQL rebuild has in hand at once (three: about 5 % faster than two on two
cores, peak 179 MB instead of 146 MB at 1M entries; four went over 200 MB)."""

LARGE_BACKLOG = 20_000
"""Stale customer-periods above which a refresh step takes a rebuild's block of customers
(CHUNK_CUSTOMERS): a rate corrected for a whole year marks every period of most customers,
and the fixed cost of a step (rate tables, stored rows) then dominates small steps."""

SQLITE_CACHE_KIB = 32_768
"""SQLite page cache while a block is recomputed (the default is 2 MB)."""

_FAR = date(9999, 12, 31)

Piece = tuple[int, date, date, int]
"""(member or contract id, from, until (exclusive), minor units per hour)."""
_TE: Any = TimeEntry.__table__  # type: ignore[attr-defined]
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]
_SP: Any = StalePeriod.__table__  # type: ignore[attr-defined]

_TMP = sa.MetaData()
_PIECE = sa.Table(
    "docket_tmp_cost_piece",
    _TMP,
    sa.Column("member_id", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # exclusive
    sa.Column("minor_per_hour", sa.BigInteger, nullable=False),
    sa.Index("ix_docket_tmp_cost_piece", "member_id", "valid_from"),
    prefixes=["TEMPORARY"],
)
_MEMBER = sa.Table(
    "docket_tmp_member",
    _TMP,
    sa.Column("member_id", sa.Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)
_DAY = sa.Table(
    "docket_tmp_day",
    _TMP,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("week_start", sa.Date, nullable=False),
    sa.Column("month_start", sa.Date, nullable=False),
    prefixes=["TEMPORARY"],
)
_RATE = sa.Table(
    "docket_tmp_cost_day",
    _TMP,
    sa.Column("member_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("minor_per_hour", sa.BigInteger, nullable=True),  # None: uncosted
    sa.Column("week_start", sa.Date, nullable=False),
    sa.Column("month_start", sa.Date, nullable=False),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)
_CONTRACT = sa.Table(
    "docket_tmp_contract_piece",
    _TMP,
    sa.Column("contract_id", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # exclusive
    sa.Column("minor_per_hour", sa.BigInteger, nullable=True),  # hourly; None: unpriced
    sa.Index("ix_docket_tmp_contract_piece", "contract_id", "valid_from"),
    prefixes=["TEMPORARY"],
)

_DELTA_PIECE = sa.Table(
    "docket_tmp_cost_delta_piece",
    _TMP,
    sa.Column("member_id", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # exclusive
    sa.Column("delta", sa.BigInteger, nullable=False),  # rate after - rate before
    prefixes=["TEMPORARY"],
)
_DELTA_DAY = sa.Table(
    "docket_tmp_cost_delta_day",
    _TMP,
    sa.Column("member_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Column("week_start", sa.Date, nullable=False),
    sa.Column("month_start", sa.Date, nullable=False),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)
_LABOUR_DELTA = sa.Table(
    "docket_tmp_labour_delta",
    _TMP,
    sa.Column("period_kind", sa.String(8), nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("customer_id", sa.Integer, nullable=False),  # 0: time against no customer
    sa.Column("contract_key", sa.Integer, nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),  # sixtieths
    prefixes=["TEMPORARY"],
)

# Sums of the aggregate query, in this order after (customer, contract, kind, start).
_MINUTES, _BILLABLE, _LABOUR, _UNCOSTED, _UNATTRIBUTED, _HOURLY, _UNPRICED, _BLOCK = range(8)


# ---------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------


def cost_pieces(rates: CostRates, members: Iterable[int]) -> list[Piece]:
    """(member, from, until (exclusive), rate) pieces over which each member's resolved cost
    rate is constant. Days in no piece have no rate in force (uncosted)."""
    default_dates = {r.effective_from for r in rates.default}
    pieces: list[Piece] = []
    for member_id in members:
        group_id = rates.group_of.get(member_id)
        dates = set(default_dates)
        dates.update(r.effective_from for r in rates.member.get(member_id, ()))
        if group_id is not None:
            dates.update(r.effective_from for r in rates.group.get(group_id, ()))
        ordered = sorted(dates)
        for index, start in enumerate(ordered):
            until = ordered[index + 1] if index + 1 < len(ordered) else _FAR
            resolved = rates.resolve(member_id, start)
            if resolved is not None:
                _append_piece(pieces, (member_id, start, until, resolved.minor_per_hour))
    return pieces


def _append_piece(pieces: list[Piece], piece: Piece) -> None:
    """Append, merging with the previous piece when it is the same subject and rate."""
    if pieces:
        subject, start, until, rate = pieces[-1]
        if subject == piece[0] and until == piece[1] and rate == piece[3]:
            pieces[-1] = (subject, start, piece[2], rate)
            return
    pieces.append(piece)


def charge_pieces(contracts: Iterable[PricedContract]) -> list[Piece]:
    """(contract, from, until (exclusive), rate) pieces of every hourly contract's charge rate;
    days in no piece are unpriced."""
    pieces: list[Piece] = []
    for contract in contracts:
        if contract.kind is not PricingKind.HOURLY:
            continue
        ordered = sorted({r.effective_from for r in contract.charge_rates})
        for index, start in enumerate(ordered):
            until = ordered[index + 1] if index + 1 < len(ordered) else _FAR
            row = rate_in_force(contract.charge_rates, start)
            if row is not None:
                _append_piece(pieces, (contract.id, start, until, row.minor_per_hour))
    return pieces


def contract_pieces(contracts: Iterable[PricedContract]) -> list[tuple[Any, ...]]:
    """(contract, customer, kind, from, until (exclusive), charge rate or None) pieces over
    which a contract is active with one charge rate (None: unpriced, or not hourly)."""
    charges: dict[int, list[Piece]] = defaultdict(list)
    for piece in charge_pieces(contracts):
        charges[piece[0]].append(piece)
    rows: list[tuple[Any, ...]] = []
    for c in contracts:
        until = _FAR if c.end is None else c.end + timedelta(days=1)
        if c.start >= until:
            continue
        edges = {c.start, until}
        for _c, first, last, _rate in charges.get(c.id, ()):
            edges.update(d for d in (first, last) if c.start < d < until)
        ordered = sorted(edges)
        for first, last in pairwise(ordered):
            rate = None
            for _c, p_from, p_until, p_rate in charges.get(c.id, ()):
                if p_from <= first < p_until:
                    rate = p_rate
            rows.append((c.id, c.customer_id, c.kind.value, first, last, rate))
    return rows


class DayShares:
    """Monthly amounts split over their month's days, each (amount, month) split once."""

    def __init__(self) -> None:
        self._prefix: dict[tuple[int, date], list[int]] = {}
        self._over: dict[tuple[int, date, date], int] = {}
        self._contracts: dict[tuple[Any, ...], dict[tuple[str, date], tuple[int, int]]] = {}
        self._periods: dict[tuple[Any, ...], dict[str, frozenset[date]]] = {}

    def between(self, monthly_minor: int, first: date, last: date) -> int:
        """The shares of `monthly_minor` for the days `first..last` (within one month)."""
        if monthly_minor == 0:
            return 0
        month = month_of(first)
        key = (monthly_minor, month.start)
        prefix = self._prefix.get(key)
        if prefix is None:
            shares = split_largest_remainder(monthly_minor, [1] * month.day_count)
            prefix = [0]
            for share in shares:
                prefix.append(prefix[-1] + share)
            self._prefix[key] = prefix
        return prefix[last.day] - prefix[first.day - 1]

    def over(self, monthly_minor: int, first: date, last: date) -> int:
        """The shares of `monthly_minor` for the days `first..last` (any span)."""
        if monthly_minor == 0:
            return 0
        key = (monthly_minor, first, last)
        known = self._over.get(key)
        if known is not None:
            return known
        total = 0
        day = first
        while day <= last:
            end = min(last, month_of(day).end)
            total += self.between(monthly_minor, day, end)
            day = end + timedelta(days=1)
        self._over[key] = total
        return total

    def contract_periods(
        self, contract: PricedContract, horizon: date
    ) -> Mapping[str, frozenset[date]]:
        """The starts of the weeks and of the months in `contract_amounts`, by kind."""
        key = self._shape(contract, horizon)
        known = self._periods.get(key)
        if known is None:
            found: dict[str, set[date]] = {"week": set(), "month": set()}
            for kind, start in self.contract_amounts(contract, horizon):
                found[kind].add(start)
            known = self._periods[key] = {k: frozenset(v) for k, v in found.items()}
        return known

    @staticmethod
    def _shape(contract: PricedContract, horizon: date) -> tuple[Any, ...]:
        fee = contract.monthly_fee_minor if contract.kind is PricingKind.FIXED else 0
        return (contract.start, contract.end, fee, contract.monthly_direct_cost_minor, horizon)

    def contract_amounts(
        self, contract: PricedContract, horizon: date
    ) -> Mapping[tuple[str, date], tuple[int, int]]:
        """(fixed-fee revenue, direct cost) in sixtieths for each week and month the contract
        is active in up to `horizon`; contracts of the same dates and amounts share one."""
        key = self._shape(contract, horizon)
        _start, _end, fee, direct, _horizon = key
        known = self._contracts.get(key)
        if known is not None:
            return known
        found: dict[tuple[str, date], tuple[int, int]] = {}
        last_day = horizon if contract.end is None else min(contract.end, horizon)
        if (fee or direct) and contract.start <= last_day:
            for period in periods_of_range(contract.start, last_day):
                first = max(period.start, contract.start)
                last = period.end if contract.end is None else min(period.end, contract.end)
                if first <= last:
                    found[(period.kind, period.start)] = (
                        self.over(fee, first, last) * SUBUNITS,
                        self.over(direct, first, last) * SUBUNITS,
                    )
        self._contracts[key] = found
        return found


Values = tuple[Any, ...]
"""A result row's stored values: INT_FIELDS in order, then the sorted missing member ids."""
PeriodRows = dict[tuple[str, date], dict[int, Values]]
"""(period kind, start) -> contract key (0: no contract) -> values."""

_FIELD = {name: index for index, name in enumerate(INT_FIELDS)}


def customer_rows(
    *,
    sums: Mapping[tuple[str, date], Mapping[int | None, Sequence[int]]],
    missing: Mapping[tuple[str, date, int | None], set[int]],
    contracts: Mapping[int, PricedContract],
    horizon: date,
    shares: DayShares,
) -> PeriodRows:
    """Every week and month result of one customer from its summed time (pure), as stored
    values; the same periods and rows as `models.engine.customer_results`."""
    periods: dict[str, set[date]] = {"week": set(), "month": set()}
    for kind, start in sums:
        periods[kind].add(start)
    # Fixed fees and direct costs: (revenue, direct cost) per period, for each contract.
    amounts: list[tuple[int, Mapping[tuple[str, date], tuple[int, int]]]] = []
    for contract in contracts.values():
        if contract.monthly_fee_minor or contract.monthly_direct_cost_minor:
            amounts.append((contract.id, shares.contract_amounts(contract, horizon)))
            for kind, active in shares.contract_periods(contract, horizon).items():
                periods[kind] |= active
    blocks = {c.id: c for c in contracts.values() if c.kind is PricingKind.BLOCK}
    results: PeriodRows = {}
    no_amounts: dict[int | None, tuple[int, int]] = {}
    for kind, starts in periods.items():
        used: dict[int, int] = {}
        for start in sorted(starts):
            key = (kind, start)
            summed = sums.get(key, {})
            fixed: dict[int | None, tuple[int, int]] = (
                {c: pairs[key] for c, pairs in amounts if key in pairs} if amounts else no_amounts
            )
            rows: dict[int, Values] = {}
            for contract_id in summed.keys() | fixed.keys() if fixed else summed:
                values = summed.get(contract_id, _NO_TIME)
                minutes, billable, labour, uncosted, unattributed, hourly, unpriced, in_block = (
                    values
                )
                revenue, direct_cost = fixed.get(contract_id, (0, 0)) if fixed else (0, 0)
                revenue += hourly
                if in_block and contract_id in blocks:
                    block = blocks[contract_id]
                    earned, used[block.id] = block_revenue_60(
                        block, used.get(block.id, 0), in_block
                    )
                    revenue += earned
                members = missing.get((kind, start, contract_id)) if missing else None
                # In INT_FIELDS order (a test holds the order), then the missing member ids.
                rows[contract_id or 0] = (
                    minutes,
                    billable,
                    revenue,
                    labour,
                    direct_cost,
                    uncosted,
                    unattributed,
                    unpriced,
                    tuple(sorted(members)) if members else (),
                )
            results[(kind, start)] = rows
    return results


def figures_of_values(values: Values) -> Figures:
    """The `Figures` of stored values (see `Values`)."""
    return Figures(
        **{name: values[index] for name, index in _FIELD.items()},
        missing_rates=frozenset(values[len(INT_FIELDS)]),
    )


_NO_TIME = (0,) * 8


# ---------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------


def _period_starts(session: AsyncSession) -> tuple[Any, Any]:
    day = _TE.c.work_date
    if dialect(session) == "postgresql":
        week = day - sa.cast(sa.extract("isodow", day), sa.Integer) + 1
        return week, sa.cast(sa.func.date_trunc("month", day), sa.Date)
    # SQLite: the Sunday on or after the day, back to its Monday; dates are ISO text.
    return sa.func.date(day, "weekday 0", "-6 days"), sa.func.date(day, "start of month")


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


class Pieces:
    """Rows of the cost-rate tables over a workspace's time span (each member's rate
    pieces, the members, the days with their week and month), built once per rebuild and
    reused by each block of customers."""

    def __init__(self, rates: CostRates, span: tuple[date, date] | None) -> None:
        self.pieces = [
            {"member_id": m, "valid_from": f, "valid_until": u, "minor_per_hour": r}
            for m, f, u, r in cost_pieces(rates, rates.group_of)
        ]
        self.members = [{"member_id": m} for m in rates.group_of]
        self.days = span_days(span)


def span_days(span: tuple[date, date] | None) -> list[dict[str, Any]]:
    """Rows of the day table: every day of the span with its week and month."""
    days: list[dict[str, Any]] = []
    if span is not None:
        day, last = span
        while day <= last:
            week = day - timedelta(days=day.weekday())
            days.append({"day": day, "week_start": week, "month_start": day.replace(day=1)})
            day += timedelta(days=1)
    return days


def _contract_rows(contracts: Iterable[PricedContract]) -> list[dict[str, Any]]:
    return [
        {
            "contract_id": c,
            "customer_id": cu,
            "kind": k,
            "valid_from": f,
            "valid_until": u,
            "minor_per_hour": r,
        }
        for c, cu, k, f, u, r in contract_pieces(contracts)
    ]


async def time_span(*, session: AsyncSession, workspace_id: int) -> tuple[date, date] | None:
    """The first and last work dates of the workspace's time (None: no time)."""
    found = []
    for edge in (sa.func.min, sa.func.max):  # apart: each is one seek of the date index
        stmt = sa.select(edge(_TE.c.work_date)).where(_TE.c.workspace_id == workspace_id)
        found.append((await session.execute(stmt)).scalar_one())
    if found[0] is None or found[1] is None:
        return None
    return _as_date(found[0]), _as_date(found[1])


async def _fill_pieces(
    session: AsyncSession, pieces: Pieces, contracts: Mapping[int, PricedContract]
) -> None:
    await _drop_pieces(session)
    await _fill_rates(session, pieces)
    await _fill_contracts(session, contracts)


async def _fill_rates(session: AsyncSession, pieces: Pieces) -> None:
    """The cost-rate tables (dropped first by the caller)."""
    conn = await session.connection()
    if dialect(session) == "sqlite":
        # The pages a block reads and writes stay in the page cache, not 2 MB of it; the
        # default comes back in _drop_pieces.
        await conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    filled: list[tuple[sa.Table, list[dict[str, Any]]]] = [(_PIECE, pieces.pieces)]
    if dialect(session) == "sqlite":
        filled += [(_MEMBER, pieces.members), (_DAY, pieces.days)]
    await _fill_tables(session, filled)
    if dialect(session) == "postgresql":
        # PostgreSQL joins the rate pieces by range (a hash join on the member) and works
        # weeks and months out cheaply; SQLite seeks one row per entry in the table below.
        await conn.execute(sa.text(f"ANALYZE {_PIECE.name}"))
        return
    await conn.run_sync(lambda sync: _RATE.create(sync))
    # Every member's cost rate, week and month on every day of the span: the aggregate
    # query takes all three from one equality seek per time entry.
    piece, day, member = _PIECE.c, _DAY.c, _MEMBER.c
    each_day = sa.select(
        member.member_id, day.day, piece.minor_per_hour, day.week_start, day.month_start
    ).select_from(
        _MEMBER.join(_DAY, sa.true()).outerjoin(
            _PIECE,
            sa.and_(
                piece.member_id == member.member_id,
                piece.valid_from <= day.day,
                day.day < piece.valid_until,
            ),
        )
    )
    columns = ["member_id", "day", "minor_per_hour", "week_start", "month_start"]
    await conn.execute(sa.insert(_RATE).from_select(columns, each_day))


async def _fill_contracts(session: AsyncSession, contracts: Mapping[int, PricedContract]) -> None:
    """The contract-piece table of `contracts` (dropped first by the caller)."""
    await _fill_tables(session, [(_CONTRACT, _contract_rows(contracts.values()))])
    if dialect(session) == "postgresql":
        conn = await session.connection()
        await conn.execute(sa.text(f"ANALYZE {_CONTRACT.name}"))


async def _fill_tables(
    session: AsyncSession, filled: Sequence[tuple[sa.Table, list[dict[str, Any]]]]
) -> None:
    conn = await session.connection()
    await conn.run_sync(lambda sync: _TMP.create_all(sync, tables=[t for t, _r in filled]))
    for table, rows in filled:
        for offset in range(0, len(rows), 5000):
            await conn.execute(sa.insert(table), rows[offset : offset + 5000])


async def _drop_pieces(session: AsyncSession) -> None:
    await _drop_tables(session, (_RATE, _PIECE, _MEMBER, _DAY, _CONTRACT))
    if dialect(session) == "sqlite":
        conn = await session.connection()
        await conn.exec_driver_sql("PRAGMA cache_size = -2000")


def _cost_join(session: AsyncSession) -> tuple[sa.Table, Any, Any, Any]:
    """The cost-rate table, its join condition, and each entry's week and month start."""
    day = _TE.c.work_date
    week_fn, month_fn = _period_starts(session)
    if dialect(session) == "postgresql":
        piece = _PIECE.c
        on = sa.and_(
            piece.member_id == _TE.c.member_id, piece.valid_from <= day, day < piece.valid_until
        )
        return _PIECE, on, week_fn, month_fn
    rate = _RATE.c
    on = sa.and_(rate.member_id == _TE.c.member_id, rate.day == day)
    # Members outside the table (none in practice) still get their periods from the date.
    week = sa.func.coalesce(rate.week_start, week_fn)
    return _RATE, on, week, sa.func.coalesce(rate.month_start, month_fn)


def _joined(
    cost: sa.Table, on: Any, workspace_id: int, customers: Sequence[int | None]
) -> tuple[Any, Any]:
    te, con = _TE, _CONTRACT.c
    day = te.c.work_date
    joined = te.outerjoin(cost, on).outerjoin(
        _CONTRACT,
        sa.and_(
            con.contract_id == te.c.contract_id,
            con.customer_id == te.c.customer_id,
            con.valid_from <= day,
            day < con.valid_until,
        ),
    )
    where = sa.and_(te.c.workspace_id == workspace_id, _customer_scope(te.c.customer_id, customers))
    return joined, where


SumsByCustomer = dict[int | None, dict[tuple[str, date], dict[int | None, list[int]]]]
MissingByCustomer = dict[int | None, dict[tuple[str, date, int | None], set[int]]]


async def _sum_time(
    session: AsyncSession, workspace_id: int, customers: Sequence[int | None]
) -> tuple[SumsByCustomer, MissingByCustomer]:
    """Time of `customers` summed per customer, contract, week and month in one query: the
    time is grouped per (week, month) pair once, and the pairs are added up per week and per
    month in SQL as well."""
    te, con = _TE.c, _CONTRACT.c
    cost, on, week, month = _cost_join(session)
    rate = cost.c
    billable = te.billable == sa.true()
    hourly = sa.and_(billable, con.kind == PricingKind.HOURLY.value)
    zero = sa.literal(0)
    uncosted = rate.minor_per_hour.is_(None)
    # PostgreSQL sums bigints as numeric (decoded as Decimal): the sums fit a bigint.
    postgres = dialect(session) == "postgresql"

    def total(value: Any) -> Any:
        summed = sa.func.sum(value)
        return sa.cast(summed, sa.BigInteger) if postgres else summed

    columns = [
        total(te.minutes).label("s0"),
        total(sa.case((billable, te.minutes), else_=zero)).label("s1"),
        total(te.minutes * sa.func.coalesce(rate.minor_per_hour, zero)).label("s2"),
        total(sa.case((uncosted, te.minutes), else_=zero)).label("s3"),
        total(sa.case((con.contract_id.is_(None), te.minutes), else_=zero)).label("s4"),
        total(
            sa.case((hourly, te.minutes * sa.func.coalesce(con.minor_per_hour, zero)), else_=0)
        ).label("s5"),
        total(
            sa.case((sa.and_(hourly, con.minor_per_hour.is_(None)), te.minutes), else_=zero)
        ).label("s6"),
        total(
            sa.case(
                (sa.and_(billable, con.kind == PricingKind.BLOCK.value), te.minutes), else_=zero
            )
        ).label("s7"),
    ]
    joined, where = _joined(cost, on, workspace_id, customers)
    pairs = (
        sa.select(
            te.customer_id.label("cu"),
            con.contract_id.label("co"),
            week.label("wk"),
            month.label("mo"),
            *columns,
        )
        .select_from(joined)
        .where(where)
        .group_by(te.customer_id, con.contract_id, week, month)
        .cte("pairs")
    )
    p = pairs.c
    totals = [total(p[f"s{i}"]) for i in range(8)]
    wk: Any = p.wk
    mo: Any = p.mo
    if not postgres:  # dates come back as text and are converted once each, below
        wk, mo = sa.type_coerce(wk, sa.String), sa.type_coerce(mo, sa.String)
    by_week = sa.select(p.cu, p.co, sa.literal("week"), wk, *totals).group_by(p.cu, p.co, p.wk)
    by_month = sa.select(p.cu, p.co, sa.literal("month"), mo, *totals).group_by(p.cu, p.co, p.mo)
    sums: SumsByCustomer = defaultdict(lambda: defaultdict(dict))
    uncosted_groups = False
    days: dict[Any, date] = {}
    result = await session.execute(sa.union_all(by_week, by_month))
    # Every sum is an integer, never NULL: each group has at least one entry and every
    # summed expression is an integer (zero when it does not apply).
    for customer_id, contract_id, kind, raw, *values in result:
        start = days.get(raw)
        if start is None:
            start = days[raw] = _as_date(raw)
        if values[_UNCOSTED]:
            uncosted_groups = True
        sums[customer_id][(kind, start)][contract_id] = values
    missing: MissingByCustomer = defaultdict(dict)
    if uncosted_groups:
        keys_m = (te.customer_id, con.contract_id, week, month, te.member_id)
        stmt_m = sa.select(*keys_m).select_from(joined).where(where, uncosted).group_by(*keys_m)
        for customer_id, contract_id, week_start, month_start, member_id in (
            await session.execute(stmt_m)
        ).all():
            for kind, raw in (("week", week_start), ("month", month_start)):
                key = (kind, _as_date(raw), contract_id)
                missing[customer_id].setdefault(key, set()).add(int(member_id))
    return sums, missing


# ---------------------------------------------------------------------------------------
# Recompute and store
# ---------------------------------------------------------------------------------------


@dataclass
class Summed:
    """A block of customers' time summed by `_sum_time`, with the contracts it used."""

    contracts: dict[int, PricedContract]
    sums: SumsByCustomer
    missing: MissingByCustomer


async def _sum_customers(
    *,
    session: AsyncSession,
    workspace_id: int,
    customers: Sequence[int | None],
    rates: CostRates | None = None,
    contracts: Mapping[int, PricedContract] | None = None,
    pieces: Pieces | None = None,
    rates_filled: bool = False,
) -> Summed:
    """The time of `customers` (sorted, None first) summed in the caller's transaction, with
    the rates and contracts it sees (those given must be what it sees). `rates_filled`: the
    connection holds the cost-rate tables of those rates already, and keeps them."""
    if contracts is None:
        contracts = await per_customer.load_contracts(
            session=session,
            workspace_id=workspace_id,
            customer_ids=[c for c in customers if c is not None],
        )
    wanted = set(customers)
    mine = {i: c for i, c in contracts.items() if c.customer_id in wanted}
    if not rates_filled:
        if pieces is None:
            if rates is None:
                rates = await per_customer.load_cost_rates(
                    session=session, workspace_id=workspace_id
                )
            span = await time_span(session=session, workspace_id=workspace_id)
            pieces = Pieces(rates, span)
        await _drop_pieces(session)
        await _fill_rates(session, pieces)
    try:
        await _fill_contracts(session, mine)
        sums, missing = await _sum_time(session, workspace_id, customers)
    finally:
        if rates_filled:
            await _drop_tables(session, [_CONTRACT])
        else:
            await _drop_pieces(session)
    return Summed(mine, sums, missing)


async def recompute_customers(
    *,
    session: AsyncSession,
    workspace_id: int,
    customers: Sequence[int | None],
    today: date,
    at: datetime,
    rates: CostRates | None = None,
    contracts: Mapping[int, PricedContract] | None = None,
    reported: set[str] | None = None,
    pieces: Pieces | None = None,
    summed: Summed | None = None,
) -> profit_store.WriteStats:
    """Recompute and store every result of `customers` (None: time against no customer) and
    clear their stale marks, in the caller's transaction. Same results as
    `models.engine.rebuild_customer` for each of them.

    `pieces` (with `rates` and `contracts`) lets a rebuild build the piece rows once;
    `summed` (`_sum_customers` of the same customers) is their time already summed from data
    the caller knows to be what this transaction sees."""
    if not customers:
        return profit_store.WriteStats()
    # Cost changes waiting are added first: the figures below come from the new rates.
    settled = await settle(session=session, workspace_id=workspace_id, at=at)
    ordered = sorted(set(customers), key=lambda c: -1 if c is None else c)
    await _lock_customers(session, workspace_id, ordered)
    stale_ids = await _stale_ids(session, workspace_id, ordered)
    if reported is None:
        reported = await profit_store.reported_period_keys(
            session=session, workspace_id=workspace_id
        )
    if summed is None:
        summed = await _sum_customers(
            session=session,
            workspace_id=workspace_id,
            customers=ordered,
            rates=rates,
            contracts=contracts,
            pieces=pieces,
        )
    old = await _stored_rows(session, workspace_id, ordered)
    stats = await _write(
        session,
        workspace_id,
        ordered,
        summed.sums,
        summed.missing,
        old,
        summed.contracts,
        today,
        at,
        reported,
    )
    for offset in range(0, len(stale_ids), 500):
        await session.execute(sa.delete(_SP).where(_SP.c.id.in_(stale_ids[offset : offset + 500])))
    if settled is not None:
        stats.rows_written += settled.rows_written
        stats.restatements += settled.restatements
    return stats


async def _write(
    session: AsyncSession,
    workspace_id: int,
    ordered: Sequence[int | None],
    sums: SumsByCustomer,
    missing: MissingByCustomer,
    old: dict[int | None, dict[tuple[str, date], dict[int, tuple[int, Values]]]],
    mine: Mapping[int, PricedContract],
    today: date,
    at: datetime,
    reported: set[str],
) -> profit_store.WriteStats:
    horizon = horizon_end(today)
    shares = DayShares()
    by_customer: dict[int, dict[int, PricedContract]] = defaultdict(dict)
    for contract in mine.values():
        by_customer[contract.customer_id][contract.id] = contract
    writes = _Writes(workspace_id, at)
    for customer_id in ordered:
        new = customer_rows(
            sums=sums.get(customer_id, {}),
            missing=missing.get(customer_id, {}),
            contracts=by_customer.get(customer_id, {}) if customer_id is not None else {},
            horizon=horizon,
            shares=shares,
        )
        writes.customer(customer_id, old.get(customer_id, {}), new, reported)
    return await writes.execute(session)


class _Writes:
    """Row changes of a block of customers: unchanged rows stay, changed ones are deleted
    and inserted again, and reported periods whose totals change are restated."""

    def __init__(self, workspace_id: int, at: datetime) -> None:
        self.workspace_id = workspace_id
        self.at = at
        self.delete_ids: list[int] = []
        self.inserts: list[tuple[Any, ...]] = []
        self.plan = profit_store.WritePlan()

    def customer(
        self,
        customer_id: int | None,
        old: Mapping[tuple[str, date], Mapping[int, tuple[int, Values]]],
        new: PeriodRows,
        reported: set[str],
    ) -> None:
        ws, at, inserts, delete_ids = self.workspace_id, self.at, self.inserts, self.delete_ids
        if not old and not reported:  # nothing stored, nothing reported: every row is new
            for (kind, start), after in new.items():
                inserts.extend(
                    (ws, kind, start, customer_id, contract_key, *values, at)
                    for contract_key, values in after.items()
                )
            return
        for key in old.keys() | new.keys() if old else new.keys():
            kind, start = key
            before = old.get(key, {}) if old else {}
            after = new.get(key, {})
            for contract_key, (row_id, values) in before.items():
                if after.get(contract_key) != values:
                    delete_ids.append(row_id)
            for contract_key, values in after.items():
                known = before.get(contract_key)
                if known is not None and known[1] == values:
                    continue
                inserts.append((ws, kind, start, customer_id, contract_key, *values, at))
            if reported and profit_store.period_of(kind, start).key in reported:
                before_total = sum_figures(figures_of_values(v) for _i, v in before.values())
                after_total = sum_figures(figures_of_values(v) for v in after.values())
                if profit_store.stored_values(before_total) != profit_store.stored_values(
                    after_total
                ):
                    self.plan.restate.append((kind, start, customer_id, before_total, after_total))

    async def execute(self, session: AsyncSession) -> profit_store.WriteStats:
        self.plan.delete_ids = self.delete_ids
        stats = await profit_store.execute_plan(
            session, self.plan, workspace_id=self.workspace_id, at=self.at
        )
        # In the unique index's order (period, customer, contract): each index page is
        # written once per block instead of once per customer.
        self.inserts.sort(key=lambda row: (row[1], row[2], row[3] or 0, row[4]))
        await profit_store.bulk_insert_rows(session, _PR, _INSERT_KEYS, self.inserts)
        stats.rows_written = len(self.inserts)
        return stats


_INSERT_KEYS = (
    "workspace_id",
    "period_kind",
    "period_start",
    "customer_id",
    "contract_key",
    *INT_FIELDS,
    "missing_rates",
    "computed_at",
)


async def _lock_customers(
    session: AsyncSession, workspace_id: int, ordered: Sequence[int | None]
) -> None:
    # One lock order everywhere (None first, then by id): no deadlock with a refresh. One
    # round trip for the whole block: the keys are locked in the order given.
    if dialect(session) != "postgresql":
        return
    # The block's aggregate groups a few hundred thousand entries: without JIT (compiling it
    # costs about 40 ms a query, more than it saves here) and in memory (the default 4 MB
    # work_mem spills its hash table to disk). Both for this transaction only.
    await session.execute(sa.text(f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'"))
    await session.execute(sa.text("SET LOCAL jit = off"))
    keys = [profit_store.customer_lock_key(workspace_id, c) for c in ordered]
    await session.execute(
        sa.text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[]))"
            " WITH ORDINALITY AS u(k, n)"
        ),
        {"keys": keys},
    )


def _customer_scope(column: Any, customers: Sequence[int | None]) -> Any:
    ids = [c for c in customers if c is not None]
    scope = [column.in_(ids)] if ids else []
    if None in customers:
        scope.append(column.is_(None))
    return sa.or_(*scope)


async def _stale_ids(
    session: AsyncSession, workspace_id: int, customers: Sequence[int | None]
) -> list[int]:
    stmt = sa.select(_SP.c.id).where(
        _SP.c.workspace_id == workspace_id, _customer_scope(_SP.c.customer_id, customers)
    )
    if dialect(session) == "postgresql":
        # Rows a refresh holds are skipped, not waited for: it deletes them itself.
        stmt = stmt.with_for_update(skip_locked=True)
    return [int(row[0]) for row in (await session.execute(stmt)).all()]


class _StoredDecoder:
    """Stored dates and member lists as the driver gives them, each distinct value converted
    once: most rows share a few hundred dates and an empty list."""

    def __init__(self) -> None:
        self.days: dict[Any, date] = {}
        self.lists: dict[str | None, tuple[int, ...]] = {}

    def day(self, raw: Any) -> date:
        day = self.days.get(raw)
        if day is None:
            day = self.days[raw] = _as_date(raw)
        return day

    def values(self, values: list[Any]) -> Values:
        """INT_FIELDS values and the member list as text (last) -> stored values."""
        text = values[-1]
        missing = self.lists.get(text)
        if missing is None:
            missing = self.lists[text] = tuple(sorted(int(m) for m in json.loads(text or "[]")))
        values[-1] = missing
        return tuple(values)


async def _stored_rows(
    session: AsyncSession, workspace_id: int, customers: Sequence[int | None]
) -> dict[int | None, dict[tuple[str, date], dict[int, tuple[int, Values]]]]:
    pr = _PR.c
    # Dates and member lists come back as the driver gives them and are converted once per
    # distinct value: most rows share a few hundred dates and an empty list.
    plain = dialect(session) == "sqlite"
    start = sa.type_coerce(pr.period_start, sa.String) if plain else pr.period_start
    stmt = sa.select(
        pr.customer_id,
        pr.period_kind,
        start,
        pr.contract_key,
        pr.id,
        *[pr[name] for name in INT_FIELDS],
        sa.cast(pr.missing_rates, sa.Text),
    ).where(pr.workspace_id == workspace_id, _customer_scope(pr.customer_id, customers))
    old: dict[int | None, dict[tuple[str, date], dict[int, tuple[int, Values]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    decode = _StoredDecoder()
    for customer_id, kind, raw, contract_key, row_id, *values in (
        await session.execute(stmt)
    ).all():
        old[customer_id][(kind, decode.day(raw))][contract_key] = (row_id, decode.values(values))
    return old


async def rebuild(
    *,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: int,
    today: date,
    at: datetime,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    chunk: int = CHUNK_CUSTOMERS,
) -> profit_store.WriteStats:
    """Recompute every stored result from scratch, set-based, one transaction per block of
    `chunk` customers.

    `progress(done, total)` is called after each block. Other writers keep working in
    between; what they change meanwhile is marked stale and refreshed as usual. Rates,
    contracts and reported periods are read in each block's own transaction, so a change
    committed between blocks is never overwritten by figures from before it; the cost-rate
    pieces are built again only when the rates or the time span changed.
    """
    async with sessions() as session, session.begin():
        customers = await per_customer.customers_with_data(
            session=session, workspace_id=workspace_id
        )
        postgres = dialect(session) == "postgresql"
        engine = session.bind
    blocks = [customers[offset : offset + chunk] for offset in range(0, len(customers), chunk)]
    total = profit_store.WriteStats()
    done = 0

    async def finished(block: Sequence[int | None], stats: profit_store.WriteStats) -> None:
        nonlocal done
        total.add(stats)
        done += len(block)
        if progress is not None:
            maybe = progress(done, len(customers))
            if maybe is not None:
                await maybe

    if (
        not postgres
        and len(blocks) > 1
        and isinstance(engine, AsyncEngine)
        and _two_connections(engine)
    ):
        await _rebuild_reading_ahead(
            engine=engine,
            sessions=sessions,
            workspace_id=workspace_id,
            blocks=blocks,
            today=today,
            at=at,
            finished=finished,
        )
        return total
    cached: tuple[CostRates, tuple[date, date] | None, Pieces] | None = None

    async def one(block: Sequence[int | None]) -> None:
        nonlocal cached
        async with sessions() as session, session.begin():
            await settle(session=session, workspace_id=workspace_id, at=at)  # before the rates
            rates = await per_customer.load_cost_rates(session=session, workspace_id=workspace_id)
            span = await time_span(session=session, workspace_id=workspace_id)
            if cached is None or cached[0] != rates or cached[1] != span:
                cached = (rates, span, Pieces(rates, span))
            stats = await recompute_customers(
                session=session,
                workspace_id=workspace_id,
                customers=block,
                today=today,
                at=at,
                rates=rates,
                pieces=cached[2],
            )
        await finished(block, stats)

    # PostgreSQL works on one block's aggregate while Docket builds and writes the rows of
    # the one before (each block its own transaction and connection; their customers' locks
    # never overlap). SQLite without an engine of its own: a block at a time.
    overlap = REBUILD_OVERLAP if postgres else 1
    running: set[asyncio.Task[None]] = set()
    try:
        for block in blocks:
            if len(running) >= overlap:
                done_now, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done_now:
                    task.result()  # a failed block stops the rebuild
            running.add(asyncio.create_task(one(block)))
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return total


async def _rebuild_reading_ahead(
    *,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: int,
    blocks: Sequence[Sequence[int | None]],
    today: date,
    at: datetime,
    finished: Callable[[Sequence[int | None], profit_store.WriteStats], Awaitable[None]],
) -> None:
    """SQLite: the blocks in turn on one writing connection, while a second, reading
    connection sums the time of the next block (SQLite runs each in its own thread; both
    work at once).

    A block's sums are used only if they are what its own transaction sees: the next block's
    read starts after this block's BEGIN IMMEDIATE, and the writing connection's
    `PRAGMA data_version` (which moves when another connection commits) is the same after
    the next BEGIN IMMEDIATE as after this one. Otherwise that block is summed again inside
    its own transaction. The rebuild's own writes (results, stale marks) are nothing the
    sums read."""
    ordered = [sorted(set(b), key=lambda c: -1 if c is None else c) for b in blocks]
    began = [asyncio.Event() for _ in blocks]
    loop = asyncio.get_running_loop()
    # Each block's sums until its transaction takes them (then they are let go).
    ahead: dict[int, asyncio.Future[Summed]] = {i: loop.create_future() for i in range(len(blocks))}

    async def read_ahead(reader: AsyncConnection) -> None:
        cached: tuple[CostRates, tuple[date, date] | None, Pieces] | None = None
        filled: Pieces | None = None  # the cost-rate tables the reading connection holds
        try:
            for index, block in enumerate(ordered):
                await began[max(index - 1, 0)].wait()
                async with sessions(bind=reader) as session, session.begin():
                    rates = await per_customer.load_cost_rates(
                        session=session, workspace_id=workspace_id
                    )
                    span = await time_span(session=session, workspace_id=workspace_id)
                    if cached is None or cached[0] != rates or cached[1] != span:
                        cached = (rates, span, Pieces(rates, span))
                    if filled is not cached[2]:
                        await _drop_pieces(session)
                        await _fill_rates(session, cached[2])
                        filled = cached[2]
                    summed = await _sum_customers(
                        session=session,
                        workspace_id=workspace_id,
                        customers=block,
                        rates_filled=True,
                    )
                ahead[index].set_result(summed)
        finally:
            async with sessions(bind=reader) as session, session.begin():
                await _drop_pieces(session)

    reading = engine.execution_options(**{READONLY_OPTION: True})
    async with engine.connect() as writer, reading.connect() as reader:
        task = asyncio.create_task(read_ahead(reader))
        try:
            version: int | None = None
            for index, block in enumerate(ordered):
                async with sessions(bind=writer) as session, session.begin():
                    seen = version
                    version = await _data_version(session)
                    began[index].set()
                    await session.execute(sa.text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
                    await settle(session=session, workspace_id=workspace_id, at=at)
                    waiting: set[asyncio.Future[Any]] = {ahead[index], task}
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if not ahead[index].done():
                        task.result()  # the read failed: stop with its error
                    summed: Summed | None = ahead.pop(index).result()
                    if index > 0 and version != seen:
                        logger.info("profitability rebuild: data changed, block summed again")
                        summed = None
                    stats = await recompute_customers(
                        session=session,
                        workspace_id=workspace_id,
                        customers=block,
                        today=today,
                        at=at,
                        summed=summed,
                    )
                    await session.execute(sa.text("PRAGMA cache_size = -2000"))
                await finished(block, stats)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _two_connections(engine: AsyncEngine) -> bool:
    """Whether `engine` opens a database file with a connection of its own per checkout (an
    in-memory database, or one shared connection, cannot read beside a writer)."""
    database = engine.url.database
    single = (sa.pool.StaticPool, sa.pool.SingletonThreadPool)
    return bool(database) and database != ":memory:" and not isinstance(engine.pool, single)


async def _data_version(session: AsyncSession) -> int:
    return int((await session.execute(sa.text("PRAGMA data_version"))).scalar_one())


async def refresh_many(
    *,
    session: AsyncSession,
    workspace_id: int,
    today: date,
    at: datetime,
    customers: int = CHUNK_CUSTOMERS,
) -> profit_refresh.RefreshStats:
    """Recompute, set-based, every period of up to `customers` customers that have stale
    marks (the oldest marks first), in the caller's transaction: the path for a backlog too
    large for `models.profit_refresh.refresh_some` (a back-dated rate, an import). Cost changes
    waiting are a step of their own, as in `refresh_step`."""
    settled = await _settle_as_step(session, workspace_id, at)
    if settled is not None:
        return settled
    stmt = (
        sa.select(_SP.c.customer_id, sa.func.min(_SP.c.id))
        .where(_SP.c.workspace_id == workspace_id)
        .group_by(_SP.c.customer_id)
        .order_by(sa.func.min(_SP.c.id))
        .limit(customers)
    )
    picked = [row[0] for row in (await session.execute(stmt)).all()]
    stats = profit_refresh.RefreshStats()
    if not picked:
        return stats
    count_stmt = sa.select(sa.func.count()).where(
        _SP.c.workspace_id == workspace_id, _customer_scope(_SP.c.customer_id, picked)
    )
    marks = int((await session.execute(count_stmt)).scalar_one())
    written = await recompute_customers(
        session=session, workspace_id=workspace_id, customers=picked, today=today, at=at
    )
    stats.customer_periods = marks
    stats.rows_written = written.rows_written
    stats.restatements = written.restatements
    return stats


async def refresh_step(
    *,
    session: AsyncSession,
    workspace_id: int,
    today: date,
    at: datetime,
    limit: int = 20,
    backlog: int = BULK_BACKLOG,
    customers: int = BULK_CUSTOMERS,
) -> profit_refresh.RefreshStats:
    """One step of the background refresh, in the caller's transaction: `limit` stale
    customer-periods one customer at a time (models.profit_refresh.refresh_some) while the
    backlog is small, whole customers set-based (`refresh_many`) when it holds more than `backlog`:
    `customers` of them per step, a rebuild's block when it holds more than LARGE_BACKLOG."""
    settled = await _settle_as_step(session, workspace_id, at)
    if settled is not None:
        return settled
    claimed = await profit_refresh.claim_stale(
        session=session, workspace_id=workspace_id, limit=limit
    )
    # Only a full claim can be part of a large backlog: a small change costs no count.
    if len(claimed) == limit:
        waiting = await profit_refresh.stale_count(session=session, workspace_id=workspace_id)
        if waiting > backlog:
            if waiting > LARGE_BACKLOG:
                customers = max(customers, CHUNK_CUSTOMERS)
            return await refresh_many(
                session=session, workspace_id=workspace_id, today=today, at=at, customers=customers
            )
    return await profit_refresh.refresh_some(
        session=session, workspace_id=workspace_id, at=at, claimed=claimed, settled=True
    )


# ---------------------------------------------------------------------------------------
# Cost-rate changes, added to the stored rows as differences (models.cost_changes)
# ---------------------------------------------------------------------------------------


async def settle(
    *, session: AsyncSession, workspace_id: int, at: datetime
) -> profit_refresh.RefreshStats | None:
    """Apply the cost-rate changes waiting, in the caller's transaction, before it reads any
    rate; None when none waited. Afterwards (PostgreSQL) the transaction holds the cost lock,
    so no change commits until it ends."""
    if not await cost_changes.has_pending(session, workspace_id):
        await cost_changes.hold(session, workspace_id, exclusive=False)
        # A change committed between the check and the lock is applied below (PostgreSQL
        # settles the rare case of two transactions doing so by failing one).
        if dialect(session) != "postgresql" or not await cost_changes.has_pending(
            session, workspace_id
        ):
            return None
    await cost_changes.hold(session, workspace_id, exclusive=True)
    return await apply_cost_changes(session=session, workspace_id=workspace_id, at=at)


async def _settle_as_step(
    session: AsyncSession, workspace_id: int, at: datetime
) -> profit_refresh.RefreshStats | None:
    """`settle` as a refresh step of its own (None: nothing waited). It counts at least one
    customer-period, so a caller looping until a step does nothing comes back for the stale
    marks."""
    settled = await settle(session=session, workspace_id=workspace_id, at=at)
    if settled is not None:
        settled.customer_periods = max(settled.customer_periods, 1)
    return settled


async def apply_cost_changes(
    *, session: AsyncSession, workspace_id: int, at: datetime
) -> profit_refresh.RefreshStats:
    """Add every waiting cost-rate change to the stored rows' labour cost in a few set-based
    statements, and restate reported periods it moves; rows of customer-periods marked stale
    are left to their recompute. The caller holds the cost lock exclusively (PostgreSQL)."""
    stats = profit_refresh.RefreshStats()
    changes = await cost_changes.take_pending(session, workspace_id)
    span = await time_span(session=session, workspace_id=workspace_id)
    if not changes or span is None:
        return stats
    contracts = await per_customer.load_contracts(session=session, workspace_id=workspace_id)
    pieces = [
        {"member_id": m, "valid_from": f, "valid_until": u, "delta": new - old}
        for deltas in changes
        for m, f, u, old, new in deltas
        if old is not None and new is not None and f <= span[1] and u > span[0]
    ]
    conn = await session.connection()
    tables = [_DAY, _CONTRACT, _DELTA_PIECE, _DELTA_DAY, _LABOUR_DELTA]
    await _drop_tables(session, tables)
    await conn.run_sync(lambda sync: _TMP.create_all(sync, tables=tables))
    try:
        filled = ((_DAY, span_days(span)), (_CONTRACT, _contract_rows(contracts.values())))
        for table, rows in filled:
            for offset in range(0, len(rows), 5000):
                await conn.execute(sa.insert(table), rows[offset : offset + 5000])
        if pieces:
            await conn.execute(sa.insert(_DELTA_PIECE), pieces)
        await _sum_labour_deltas(session, workspace_id)
        await _apply_labour(session, workspace_id, at, stats)
    finally:
        await _drop_tables(session, tables)
    return stats


async def _drop_tables(session: AsyncSession, tables: Iterable[sa.Table]) -> None:
    conn = await session.connection()
    for table in tables:
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))


async def _sum_labour_deltas(session: AsyncSession, workspace_id: int) -> None:
    """Fill the labour-delta table: (rate after - rate before) x minutes of the changed
    members' time, per customer, contract, week and month (as `_sum_time` groups them)."""
    conn = await session.connection()
    piece, day, dd = _DELTA_PIECE.c, _DAY.c, _DELTA_DAY.c
    # Changes of the same member and day add up (each one before -> after of the last).
    each_day = (
        sa.select(
            piece.member_id, day.day, sa.func.sum(piece.delta), day.week_start, day.month_start
        )
        .select_from(
            _DELTA_PIECE.join(
                _DAY, sa.and_(piece.valid_from <= day.day, day.day < piece.valid_until)
            )
        )
        .group_by(piece.member_id, day.day, day.week_start, day.month_start)
    )
    columns = ["member_id", "day", "delta", "week_start", "month_start"]
    await conn.execute(sa.insert(_DELTA_DAY).from_select(columns, each_day))
    if dialect(session) == "postgresql":
        for table in (_DAY, _CONTRACT, _DELTA_DAY):
            await conn.execute(sa.text(f"ANALYZE {table.name}"))
    te, con = _TE.c, _CONTRACT.c
    # The changed members' time only: SQLite reads the customer index (it covers every
    # column used) and seeks the day's delta for the few entries of those members.
    members = sa.select(dd.member_id).distinct().scalar_subquery()
    joined = _TE.join(
        _DELTA_DAY, sa.and_(dd.member_id == te.member_id, dd.day == te.work_date)
    ).outerjoin(
        _CONTRACT,
        sa.and_(
            con.contract_id == te.contract_id,
            con.customer_id == te.customer_id,
            con.valid_from <= te.work_date,
            te.work_date < con.valid_until,
        ),
    )
    customer = sa.func.coalesce(te.customer_id, 0)
    key = sa.func.coalesce(con.contract_id, 0)
    pairs = (
        sa.select(
            customer.label("cu"),
            key.label("co"),
            dd.week_start.label("wk"),
            dd.month_start.label("mo"),
            sa.func.sum(te.minutes * dd.delta).label("s"),
        )
        .select_from(joined)
        .where(te.workspace_id == workspace_id, te.member_id.in_(members))
        .group_by(customer, key, dd.week_start, dd.month_start)
        .cte("pairs")
    )
    p = pairs.c
    total = sa.func.sum(p.s)
    by_week = sa.select(sa.literal("week"), p.wk, p.cu, p.co, total).group_by(p.cu, p.co, p.wk)
    by_month = sa.select(sa.literal("month"), p.mo, p.cu, p.co, total).group_by(p.cu, p.co, p.mo)
    columns = ["period_kind", "period_start", "customer_id", "contract_key", "delta"]
    rolled_up = sa.union_all(by_week, by_month)
    await conn.execute(sa.insert(_LABOUR_DELTA).from_select(columns, rolled_up))
    if dialect(session) == "postgresql":
        # Tens of thousands of rows: the UPDATE and the restatements' join plan by them.
        await conn.execute(sa.text(f"ANALYZE {_LABOUR_DELTA.name}"))


def _same_customer(stored: Any, delta: Any) -> tuple[Any, Any]:
    """A stored row's customer against a delta table's (0: no customer, NULL in the results),
    as two conditions, each of which can seek the results' unique index."""
    return (
        sa.and_(delta != 0, stored == delta),
        sa.and_(delta == 0, stored.is_(None)),
    )


async def _apply_labour(
    session: AsyncSession, workspace_id: int, at: datetime, stats: profit_refresh.RefreshStats
) -> None:
    """Add the labour-delta table to the stored rows, restating reported periods."""
    conn = await session.connection()
    lab, sp, pr = _LABOUR_DELTA.c, _SP.c, _PR.c
    marked_customer = (
        sa.func.coalesce(sp.customer_id, 0) == lab.customer_id
        if dialect(session) == "postgresql"
        else sp.customer_id.is_(sa.func.nullif(lab.customer_id, 0))  # SQLite seeks with IS
    )
    marked = sa.exists().where(
        sp.workspace_id == workspace_id,
        sp.period_kind == lab.period_kind,
        sp.period_start == lab.period_start,
        marked_customer,
    )
    # Nothing to add, or the customer-period is recomputed anyway (with the new rates).
    await conn.execute(sa.delete(_LABOUR_DELTA).where(sa.or_(lab.delta == 0, marked)))
    periods = [
        (kind, _as_date(raw))
        for kind, raw in (
            await conn.execute(sa.select(lab.period_kind, lab.period_start).distinct())
        ).all()
    ]
    if not periods:
        return
    reported = await profit_store.reported_period_keys(session=session, workspace_id=workspace_id)
    restated = [
        (kind, start)
        for kind, start in periods
        if profit_store.period_of(kind, start).key in reported
    ]
    plan = profit_store.WritePlan()
    if restated:
        await _plan_restatements(session, workspace_id, restated, plan)
    matches = sa.and_(
        pr.workspace_id == workspace_id,
        pr.period_kind == lab.period_kind,
        pr.period_start == lab.period_start,
        pr.contract_key == lab.contract_key,
    )
    updated = 0
    for same_customer in _same_customer(pr.customer_id, lab.customer_id):
        result = await conn.execute(
            sa.update(_PR)
            .values(labour_cost_60=pr.labour_cost_60 + lab.delta, computed_at=at)
            .where(matches, same_customer)
        )
        updated += result.rowcount
    counted = (
        await conn.execute(
            sa.select(
                sa.func.count(),
                sa.select(sa.func.count())
                .select_from(
                    sa.select(lab.period_kind, lab.period_start, lab.customer_id)
                    .distinct()
                    .subquery()
                )
                .scalar_subquery(),
            ).select_from(_LABOUR_DELTA)
        )
    ).one()
    if updated < counted[0]:
        await _mark_unstored(session, workspace_id, at)
    written = await profit_store.execute_plan(session, plan, workspace_id=workspace_id, at=at)
    stats.customer_periods += int(counted[1])
    stats.rows_written += updated
    stats.restatements += written.restatements


async def _plan_restatements(
    session: AsyncSession,
    workspace_id: int,
    restated: Sequence[tuple[str, date]],
    plan: profit_store.WritePlan,
) -> None:
    """Restatements of the reported periods the labour deltas move (before the update)."""
    lab = _LABOUR_DELTA.c
    wanted = sa.or_(
        *[sa.and_(lab.period_kind == kind, lab.period_start == start) for kind, start in restated]
    )
    moved: dict[tuple[str, date, int | None], int] = defaultdict(int)
    for kind, raw, customer, delta in (
        await session.execute(
            sa.select(lab.period_kind, lab.period_start, lab.customer_id, lab.delta).where(wanted)
        )
    ).all():
        moved[(kind, _as_date(raw), customer or None)] += int(delta)
    totals = await _restated_totals(session, workspace_id, wanted)
    for (kind, start, customer), delta in sorted(moved.items(), key=lambda i: str(i[0])):
        before = totals.get((kind, start, customer), Figures())
        after = replace(before, labour_cost_60=before.labour_cost_60 + delta)
        if delta:
            plan.restate.append((kind, start, customer, before, after))


async def _restated_totals(
    session: AsyncSession, workspace_id: int, wanted: Any
) -> dict[tuple[str, date, int | None], Figures]:
    """The stored totals of the customer-periods the labour-delta table holds in `wanted`
    periods: only their rows are read (each found through the results' unique index)."""
    lab, pr = _LABOUR_DELTA.c, _PR.c
    keys = (
        sa.select(lab.period_kind, lab.period_start, lab.customer_id)
        .where(wanted)
        .distinct()
        .subquery()
    )
    plain = dialect(session) == "sqlite"
    start = sa.type_coerce(pr.period_start, sa.String) if plain else pr.period_start
    columns = [pr[name] for name in INT_FIELDS]
    totals: dict[tuple[str, date, int | None], Figures] = {}
    decode = _StoredDecoder()
    for same_customer in _same_customer(pr.customer_id, keys.c.customer_id):
        joined = keys.join(
            _PR,
            sa.and_(
                pr.workspace_id == workspace_id,
                pr.period_kind == keys.c.period_kind,
                pr.period_start == keys.c.period_start,
                same_customer,
            ),
        )
        stmt = sa.select(
            pr.period_kind, start, pr.customer_id, *columns, sa.cast(pr.missing_rates, sa.Text)
        ).select_from(joined)
        for kind, raw, customer, *values in (await session.execute(stmt)).all():
            key = (kind, decode.day(raw), customer)
            row = figures_of_values(decode.values(values))
            known = totals.get(key)
            totals[key] = row if known is None else known + row
    return totals


async def _mark_unstored(session: AsyncSession, workspace_id: int, at: datetime) -> None:
    """Customer-periods a delta found no stored row for (results out of step with the time):
    recomputed from scratch instead."""
    lab, pr = _LABOUR_DELTA.c, _PR.c
    stored = sa.exists().where(
        pr.workspace_id == workspace_id,
        pr.period_kind == lab.period_kind,
        pr.period_start == lab.period_start,
        pr.contract_key == lab.contract_key,
        sa.func.coalesce(pr.customer_id, 0) == lab.customer_id,
    )
    rows = (
        await session.execute(
            sa.select(lab.customer_id, lab.period_kind, lab.period_start).where(~stored).distinct()
        )
    ).all()
    keys = [
        (customer or None, profit_store.period_of(kind, _as_date(raw)))
        for customer, kind, raw in rows
    ]
    logger.warning("profitability: %s customer-period(s) had no stored row; recomputing", len(keys))
    await mark_stale(session=session, workspace_id=workspace_id, keys=keys, at=at)
