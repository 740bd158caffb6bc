"""Set-based profitability recompute: many customers and every period at once.

The per-customer engine (models.engine) hands each customer's daily time to the pure rules one
period at a time. When many periods change at once (a back-dated rate, an import of history,
`docket rebuild`) that loop is the limit, so this module computes the same figures for a
whole block of customers with one SQL pass per block:

- The rules that depend on a date are turned into small temporary tables of pieces over which
  they are constant, built in Python by the pure rule functions themselves: each member's cost
  rate (member, group, default: `CostRates.resolve`), each hourly contract's charge rate
  (`rate_in_force`) and every usable contract with its dates and kind. Days in no piece are
  uncosted (or unpriced), exactly as the pure rules leave them.
- One aggregate query joins the time entries to those pieces and sums, per customer, contract
  (or none), week and month: minutes, billable minutes, labour cost, uncosted, unattributed,
  hourly revenue, unpriced and the billable minutes each prepaid block consumed. Cost and
  hourly revenue are linear in minutes, so summing them in SQL is exact.
- Prepaid blocks need only the usage at each period's start: a block's revenue over a period
  is the change of its cumulative (rounded) revenue plus overage (`block_revenue_60` on the
  period's minutes), chained over the periods in date order.
- Fixed fees and direct costs: each contract-month's day shares are split once and summed
  over the active days of each period.

The results are the engine's own figures to the cent (a property test holds both paths
equal), written with one diff against the stored rows per block of customers, in one
transaction per block (PostgreSQL takes the same per-customer locks as a refresh).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from models import engine as per_customer
from models.money import SUBUNITS, split_largest_remainder
from models.periods import month_of, week_of
from models.profitability import (
    CostRates,
    Figures,
    PricedContract,
    PricingKind,
    RowKey,
    block_revenue_60,
)
from models.rates import rate_in_force
from models.sql import dialect
from models.timelog import horizon_end, periods_of_range

logger = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 400
"""Customers recomputed per transaction by a rebuild: bounds memory and lock time."""

BULK_BACKLOG = 200
"""Stale customer-periods above which a refresh step recomputes whole customers set-based:
a back-dated rate or an import marks thousands at once."""

BULK_CUSTOMERS = 100
"""Customers per set-based refresh step: a step stays well under a second, so SQLite's
write lock is free between steps."""

_FAR = date(9999, 12, 31)

Piece = tuple[int, date, date, int]
"""(member or contract id, from, until (exclusive), minor units per hour)."""
_TE: Any = per_customer._TE
_PR: Any = per_customer._PR
_SP: Any = per_customer._SP

_TMP = sa.MetaData()
_RATE = sa.Table(
    "docket_tmp_cost_piece",
    _TMP,
    sa.Column("member_id", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # exclusive
    sa.Column("minor_per_hour", sa.BigInteger, nullable=False),
    sa.Index("ix_docket_tmp_cost_piece", "member_id", "valid_from"),
    prefixes=["TEMPORARY"],
)
_CONTRACT = sa.Table(
    "docket_tmp_contract",
    _TMP,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),  # inclusive
    prefixes=["TEMPORARY"],
)
_CHARGE = sa.Table(
    "docket_tmp_charge_piece",
    _TMP,
    sa.Column("contract_id", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),  # exclusive
    sa.Column("minor_per_hour", sa.BigInteger, nullable=False),
    sa.Index("ix_docket_tmp_charge_piece", "contract_id", "valid_from"),
    prefixes=["TEMPORARY"],
)

# Sums of the aggregate query, in this order after (customer, contract, week, month).
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


class DayShares:
    """Monthly amounts split over their month's days, each (amount, month) split once."""

    def __init__(self) -> None:
        self._prefix: dict[tuple[int, date], list[int]] = {}

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
        total = 0
        while first <= last:
            end = min(last, month_of(first).end)
            total += self.between(monthly_minor, first, end)
            first = end + timedelta(days=1)
        return total


def customer_figures(
    *,
    customer_id: int | None,
    sums: Mapping[tuple[str, date], Mapping[int | None, Sequence[int]]],
    missing: Mapping[tuple[str, date, int | None], set[int]],
    contracts: Mapping[int, PricedContract],
    horizon: date,
    shares: DayShares,
) -> dict[tuple[str, date], dict[RowKey, Figures]]:
    """Every week and month result of one customer from its summed time (pure); the same
    periods and rows as `models.engine.customer_results`."""
    periods: dict[str, set[date]] = {"week": set(), "month": set()}
    for kind, start in sums:
        periods[kind].add(start)
    with_amounts = [
        c for c in contracts.values() if c.monthly_fee_minor or c.monthly_direct_cost_minor
    ]
    for contract in with_amounts:
        last = horizon if contract.end is None else min(contract.end, horizon)
        if contract.start <= last:
            for p in periods_of_range(contract.start, last):
                periods[p.kind].add(p.start)
    blocks = {c.id: c for c in contracts.values() if c.kind is PricingKind.BLOCK}
    results: dict[tuple[str, date], dict[RowKey, Figures]] = {}
    for kind, starts in periods.items():
        used: dict[int, int] = {}
        for start in sorted(starts):
            period = week_of(start) if kind == "week" else month_of(start)
            summed = sums.get((kind, start), {})
            # Fixed fees and direct costs first: (revenue, direct cost) per contract.
            amounts: dict[int | None, tuple[int, int]] = {}
            for contract in with_amounts:
                first = max(period.start, contract.start)
                last = period.end if contract.end is None else min(period.end, contract.end)
                if first > last:
                    continue
                fee = contract.monthly_fee_minor if contract.kind is PricingKind.FIXED else 0
                direct = contract.monthly_direct_cost_minor
                if fee or direct:
                    amounts[contract.id] = (
                        shares.over(fee, first, last) * SUBUNITS,
                        shares.over(direct, first, last) * SUBUNITS,
                    )
            rows: dict[RowKey, Figures] = {}
            for contract_id in summed.keys() | amounts.keys():
                values = summed.get(contract_id, _NO_TIME)
                revenue, direct_cost = amounts.get(contract_id, (0, 0))
                revenue += values[_HOURLY]
                block = blocks.get(contract_id) if contract_id is not None else None
                if block is not None and values[_BLOCK]:
                    earned, used[block.id] = block_revenue_60(
                        block, used.get(block.id, 0), values[_BLOCK]
                    )
                    revenue += earned
                rows[(customer_id, contract_id)] = Figures(
                    minutes=values[_MINUTES],
                    billable_minutes=values[_BILLABLE],
                    revenue_60=revenue,
                    labour_cost_60=values[_LABOUR],
                    direct_cost_60=direct_cost,
                    uncosted_minutes=values[_UNCOSTED],
                    unattributed_minutes=values[_UNATTRIBUTED],
                    unpriced_minutes=values[_UNPRICED],
                    missing_rates=frozenset(missing.get((kind, start, contract_id), ())),
                )
            results[(kind, start)] = rows
    return results


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


async def _fill_pieces(
    session: AsyncSession, rates: CostRates, contracts: Mapping[int, PricedContract]
) -> None:
    conn = await session.connection()
    for table in (_RATE, _CONTRACT, _CHARGE):
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
    await conn.run_sync(_TMP.create_all)
    rate_rows = [
        {"member_id": m, "valid_from": f, "valid_until": u, "minor_per_hour": r}
        for m, f, u, r in cost_pieces(rates, rates.group_of)
    ]
    contract_rows = [
        {
            "id": c.id,
            "customer_id": c.customer_id,
            "kind": c.kind.value,
            "start_date": c.start,
            "end_date": c.end or _FAR,
        }
        for c in contracts.values()
    ]
    charge_rows = [
        {"contract_id": c, "valid_from": f, "valid_until": u, "minor_per_hour": r}
        for c, f, u, r in charge_pieces(contracts.values())
    ]
    for table, rows in ((_RATE, rate_rows), (_CONTRACT, contract_rows), (_CHARGE, charge_rows)):
        for offset in range(0, len(rows), 5000):
            await conn.execute(sa.insert(table), rows[offset : offset + 5000])


async def _drop_pieces(session: AsyncSession) -> None:
    conn = await session.connection()
    for table in (_RATE, _CONTRACT, _CHARGE):
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))


def _joined(session: AsyncSession, workspace_id: int, customers: Sequence[int | None]) -> Any:
    te, rate, con, charge = _TE, _RATE.c, _CONTRACT.c, _CHARGE.c
    day = te.c.work_date
    joined = (
        te.outerjoin(
            _RATE,
            sa.and_(
                rate.member_id == te.c.member_id, rate.valid_from <= day, day < rate.valid_until
            ),
        )
        .outerjoin(
            _CONTRACT,
            sa.and_(
                con.id == te.c.contract_id,
                con.customer_id == te.c.customer_id,
                con.start_date <= day,
                day <= con.end_date,
            ),
        )
        .outerjoin(
            _CHARGE,
            sa.and_(
                charge.contract_id == con.id, charge.valid_from <= day, day < charge.valid_until
            ),
        )
    )
    where = sa.and_(te.c.workspace_id == workspace_id, _customer_scope(te.c.customer_id, customers))
    return joined, where


async def _sum_time(
    session: AsyncSession, workspace_id: int, customers: Sequence[int | None]
) -> tuple[
    dict[int | None, dict[tuple[str, date], dict[int | None, list[int]]]],
    dict[int | None, dict[tuple[str, date, int | None], set[int]]],
]:
    te, rate, con, charge = _TE.c, _RATE.c, _CONTRACT.c, _CHARGE.c
    week, month = _period_starts(session)
    billable = te.billable == sa.true()
    hourly = sa.and_(billable, con.kind == PricingKind.HOURLY.value)
    zero = sa.literal(0)
    columns = [
        sa.func.sum(te.minutes),
        sa.func.sum(sa.case((billable, te.minutes), else_=zero)),
        sa.func.sum(te.minutes * sa.func.coalesce(rate.minor_per_hour, zero)),
        sa.func.sum(sa.case((rate.member_id.is_(None), te.minutes), else_=zero)),
        sa.func.sum(sa.case((con.id.is_(None), te.minutes), else_=zero)),
        sa.func.sum(
            sa.case((hourly, te.minutes * sa.func.coalesce(charge.minor_per_hour, zero)), else_=0)
        ),
        sa.func.sum(
            sa.case((sa.and_(hourly, charge.contract_id.is_(None)), te.minutes), else_=zero)
        ),
        sa.func.sum(
            sa.case(
                (sa.and_(billable, con.kind == PricingKind.BLOCK.value), te.minutes), else_=zero
            )
        ),
    ]
    joined, where = _joined(session, workspace_id, customers)
    keys = (te.customer_id, con.id, week, month)
    stmt = sa.select(*keys, *columns).select_from(joined).where(where).group_by(*keys)
    sums: dict[int | None, dict[tuple[str, date], dict[int | None, list[int]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    uncosted_groups = False
    days: dict[Any, date] = {}
    for customer_id, contract_id, week_start, month_start, *values in (
        await session.execute(stmt)
    ).all():
        ints = [int(v or 0) for v in values]
        uncosted_groups = uncosted_groups or ints[_UNCOSTED] > 0
        mine = sums[customer_id]
        for kind, raw in (("week", week_start), ("month", month_start)):
            start = days.get(raw)
            if start is None:
                start = days[raw] = _as_date(raw)
            in_period = mine[(kind, start)]
            held = in_period.get(contract_id)
            if held is None:
                in_period[contract_id] = list(ints)
            else:
                for index, value in enumerate(ints):
                    held[index] += value
    missing: dict[int | None, dict[tuple[str, date, int | None], set[int]]] = defaultdict(dict)
    if uncosted_groups:
        keys_m = (te.customer_id, con.id, week, month, te.member_id)
        stmt_m = (
            sa.select(*keys_m)
            .select_from(joined)
            .where(where, rate.member_id.is_(None))
            .group_by(*keys_m)
        )
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
) -> per_customer.WriteStats:
    """Recompute and store every result of `customers` (None: time against no customer) and
    clear their stale marks, in the caller's transaction. Same results as
    `models.engine.rebuild_customer` for each of them."""
    if not customers:
        return per_customer.WriteStats()
    ordered = sorted(set(customers), key=lambda c: -1 if c is None else c)
    for customer_id in ordered:  # one lock order everywhere: no deadlock with a refresh
        await per_customer._lock_customer(session, workspace_id, customer_id)
    stale_ids = await _stale_ids(session, workspace_id, ordered)
    if rates is None:
        rates = await per_customer.load_cost_rates(session=session, workspace_id=workspace_id)
    if reported is None:
        reported = await per_customer.reported_period_keys(
            session=session, workspace_id=workspace_id
        )
    wanted = set(ordered)
    if contracts is None:
        contracts = await per_customer.load_contracts(
            session=session,
            workspace_id=workspace_id,
            customer_ids=[c for c in ordered if c is not None],
        )
    mine = {i: c for i, c in contracts.items() if c.customer_id in wanted}
    await _fill_pieces(session, rates, mine)
    try:
        sums, missing = await _sum_time(session, workspace_id, ordered)
    finally:
        await _drop_pieces(session)
    old = await _stored_rows(session, workspace_id, ordered)
    horizon = horizon_end(today)
    shares = DayShares()
    by_customer: dict[int, dict[int, PricedContract]] = defaultdict(dict)
    for contract in mine.values():
        by_customer[contract.customer_id][contract.id] = contract
    plan = per_customer.WritePlan()
    for customer_id in ordered:
        new = customer_figures(
            customer_id=customer_id,
            sums=sums.get(customer_id, {}),
            missing=missing.get(customer_id, {}),
            contracts=by_customer.get(customer_id, {}) if customer_id is not None else {},
            horizon=horizon,
            shares=shares,
        )
        per_customer.plan_customer(
            plan,
            workspace_id=workspace_id,
            customer_id=customer_id,
            periods=None,
            old=old.get(customer_id, {}),
            new=new,
            reported=reported,
            at=at,
        )
    stats = await per_customer.execute_plan(session, plan, workspace_id=workspace_id, at=at)
    for offset in range(0, len(stale_ids), 500):
        await session.execute(sa.delete(_SP).where(_SP.c.id.in_(stale_ids[offset : offset + 500])))
    return stats


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


async def _stored_rows(
    session: AsyncSession, workspace_id: int, customers: Sequence[int | None]
) -> dict[int | None, per_customer.StoredRows]:
    stmt = sa.select(_PR.c.customer_id, *per_customer.STORED_COLUMNS).where(
        _PR.c.workspace_id == workspace_id, _customer_scope(_PR.c.customer_id, customers)
    )
    old: dict[int | None, per_customer.StoredRows] = defaultdict(lambda: defaultdict(dict))
    for row in (await session.execute(stmt)).mappings().all():
        key, contract_key, row_id, fig = per_customer.stored_row_of(row)
        old[row["customer_id"]][key][contract_key] = (row_id, fig)
    return old


async def rebuild(
    *,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: int,
    today: date,
    at: datetime,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    chunk: int = CHUNK_CUSTOMERS,
) -> per_customer.WriteStats:
    """Recompute every stored result from scratch, set-based, `chunk` customers per
    transaction (see `models.engine.rebuild`)."""
    return await per_customer.rebuild(
        sessions=sessions,
        workspace_id=workspace_id,
        today=today,
        at=at,
        progress=progress,
        recompute=recompute_customers,
        chunk=chunk,
    )


async def refresh_many(
    *,
    session: AsyncSession,
    workspace_id: int,
    today: date,
    at: datetime,
    customers: int = CHUNK_CUSTOMERS,
) -> per_customer.RefreshStats:
    """Recompute, set-based, every period of up to `customers` customers that have stale
    marks (the oldest marks first), in the caller's transaction: the path for a backlog too
    large for `models.engine.refresh_some` (a back-dated rate, an import)."""
    stmt = (
        sa.select(_SP.c.customer_id, sa.func.min(_SP.c.id))
        .where(_SP.c.workspace_id == workspace_id)
        .group_by(_SP.c.customer_id)
        .order_by(sa.func.min(_SP.c.id))
        .limit(customers)
    )
    picked = [row[0] for row in (await session.execute(stmt)).all()]
    stats = per_customer.RefreshStats()
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
) -> per_customer.RefreshStats:
    """One step of the background refresh, in the caller's transaction: `limit` stale
    customer-periods one customer at a time (models.engine.refresh_some) while the backlog is
    small, whole customers set-based (`refresh_many`) when it holds more than `backlog`."""
    waiting = await per_customer.stale_count(session=session, workspace_id=workspace_id)
    if waiting > backlog:
        return await refresh_many(
            session=session, workspace_id=workspace_id, today=today, at=at, customers=customers
        )
    return await per_customer.refresh_some(
        session=session, workspace_id=workspace_id, at=at, limit=limit
    )
