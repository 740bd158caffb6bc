"""Profitability per customer: plain values loaded from the database, and one customer's
results computed by the pure engine (models.profitability).

- Time is aggregated in SQL (minutes per member, contract, work date and billable flag) and
  handed to the pure engine (models.profitability.compute_period) with the customer's
  contracts, every cost rate, and, for prepaid blocks, the billable minutes used before the
  period (also summed in SQL). Summing per day is exact: cost and hourly revenue are linear in
  minutes, and a block's revenue within one day does not depend on the order of its entries.
- `rebuild` recomputes everything one customer at a time, chaining block usage from period to
  period; it gives the same results as the incremental refresh (models.profit_refresh) and the
  set-based recompute (models.profit_bulk), which `docket rebuild` uses.
- Storing results and restatements: models.profit_store; reports: models.profit_report.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cost_changes import guard, load_cost_rates
from models.periods import Period, week_of
from models.profit_store import (
    PERIOD_KINDS,
    WriteStats,
    lock_customer,
    period_of,
    reported_period_keys,
    store_customer,
)
from models.profitability import (
    CostRates,
    Entry,
    Figures,
    PricedContract,
    PricingKind,
    RowKey,
    attributed_contract,
    compute_period,
)
from models.rates import RateRow
from models.sql import dialect
from models.tables import (
    ChargeRate,
    Contract,
    ProfitResult,
    StalePeriod,
    TimeEntry,
)
from models.timelog import horizon_end, periods_of_range

logger = logging.getLogger(__name__)

# Core tables (typed Any): plain-column queries return rows, never ORM objects.
_TE: Any = TimeEntry.__table__  # type: ignore[attr-defined]
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]
_SP: Any = StalePeriod.__table__  # type: ignore[attr-defined]
_CH: Any = ChargeRate.__table__  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# Loading plain values
# ---------------------------------------------------------------------------------------


def to_pure_contract(row: Contract, charge_rates: Iterable[RateRow] = ()) -> PricedContract:
    """A stored contract as the pure engine's, keeping only the fields of its kind."""
    assert row.id is not None
    kind = PricingKind(row.kind)
    return PricedContract(
        id=row.id,
        customer_id=row.customer_id,
        kind=kind,
        start=row.start_date,
        end=row.end_date,
        charge_rates=tuple(charge_rates) if kind is PricingKind.HOURLY else (),
        monthly_fee_minor=row.monthly_fee_minor if kind is PricingKind.FIXED else 0,
        block_minutes=row.block_minutes if kind is PricingKind.BLOCK else 0,
        block_price_minor=row.block_price_minor if kind is PricingKind.BLOCK else 0,
        overage_minor_per_hour=row.overage_minor_per_hour if kind is PricingKind.BLOCK else 0,
        monthly_direct_cost_minor=row.monthly_direct_cost_minor,
    )


async def load_contracts(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int | None = None,
    customer_ids: Collection[int] | None = None,
) -> dict[int, PricedContract]:
    """Contracts (of one customer, of `customer_ids`, or all) with their charge rates, by id.

    A stored contract the pure engine refuses (e.g. a block of 0 hours) is left out, with a
    warning: its time then counts as unattributed instead of stopping every refresh.
    """
    stmt = select(Contract).where(Contract.workspace_id == workspace_id)
    if customer_id is not None:
        stmt = stmt.where(Contract.customer_id == customer_id)
    if customer_ids is not None:
        stmt = stmt.where(col(Contract.customer_id).in_(list(customer_ids)))
    rows = list((await session.exec(stmt)).all())
    if not rows:
        return {}
    rates: dict[int, list[RateRow]] = defaultdict(list)
    rate_stmt = (
        sa.select(_CH.c.contract_id, _CH.c.effective_from, _CH.c.minor_per_hour)
        .where(_CH.c.contract_id.in_([r.id for r in rows]))
        .order_by(_CH.c.effective_from, _CH.c.id)
    )
    for contract_id, effective_from, minor in (await session.execute(rate_stmt)).all():
        rates[contract_id].append(RateRow(effective_from, int(minor)))
    result: dict[int, PricedContract] = {}
    for row in rows:
        assert row.id is not None
        try:
            result[row.id] = to_pure_contract(row, rates.get(row.id, ()))
        except ValueError as exc:
            logger.warning("contract %s is left out of profitability: %s", row.id, exc)
    return result


def _customer_filter(customer_id: int | None) -> Any:
    if customer_id is None:
        return _TE.c.customer_id.is_(None)
    return _TE.c.customer_id == customer_id


async def load_entries(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int | None,
    start: date | None = None,
    end: date | None = None,
) -> list[Entry]:
    """A customer's time (None: time against no customer) summed per member, contract, day
    and billable flag, as pure entries in work-date order.

    Time against no customer never earns revenue, so its contract is dropped.
    """
    stmt = sa.select(
        _TE.c.member_id,
        _TE.c.contract_id,
        _TE.c.work_date,
        _TE.c.billable,
        sa.func.sum(_TE.c.minutes),
    ).where(_TE.c.workspace_id == workspace_id, _customer_filter(customer_id))
    if start is not None:
        stmt = stmt.where(_TE.c.work_date >= start)
    if end is not None:
        stmt = stmt.where(_TE.c.work_date <= end)
    stmt = stmt.group_by(
        _TE.c.member_id, _TE.c.contract_id, _TE.c.work_date, _TE.c.billable
    ).order_by(_TE.c.work_date)
    entries = []
    for index, (member_id, contract_id, work_date, billable, minutes) in enumerate(
        (await session.execute(stmt)).all()
    ):
        entries.append(
            Entry(
                id=index,
                member_id=member_id,
                customer_id=customer_id,
                contract_id=contract_id if customer_id is not None else None,
                work_date=work_date,
                minutes=int(minutes),
                billable=bool(billable),
            )
        )
    return entries


async def block_usage_before(
    *, session: AsyncSession, contracts: Mapping[int, PricedContract], before: date
) -> dict[int, int]:
    """Billable minutes each block contract consumed before `before` (what the pure engine's
    `block_usage_before` counts: the contract's customer, while the contract was active)."""
    usage: dict[int, int] = {}
    for contract in contracts.values():
        if contract.kind is not PricingKind.BLOCK or contract.start >= before:
            continue
        last = before - timedelta(days=1)
        if contract.end is not None and contract.end < last:
            last = contract.end
        stmt = sa.select(sa.func.coalesce(sa.func.sum(_TE.c.minutes), 0)).where(
            _TE.c.contract_id == contract.id,
            _TE.c.customer_id == contract.customer_id,
            _TE.c.billable.is_(True),
            _TE.c.work_date >= contract.start,
            _TE.c.work_date <= last,
        )
        used = int((await session.execute(stmt)).scalar_one())
        if used:
            usage[contract.id] = used
    return usage


async def compute_customer_periods(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int | None,
    periods: Collection[Period],
    rates: CostRates | None = None,
    contracts: Mapping[int, PricedContract] | None = None,
) -> dict[Period, dict[RowKey, Figures]]:
    """Fresh exact figures of one customer in several periods (weeks, months or free ranges),
    straight from the time entries; nothing is stored.

    One query loads the customer's time over the whole span; block usage before each period
    is the usage before the span (summed in SQL) plus what the loaded time used up to it.
    """
    if not periods:
        return {}
    if rates is None:
        rates = await load_cost_rates(session=session, workspace_id=workspace_id)
    if contracts is None:
        contracts = (
            {}
            if customer_id is None
            else await load_contracts(
                session=session, workspace_id=workspace_id, customer_id=customer_id
            )
        )
    ordered = sorted(set(periods), key=lambda p: (p.start, p.end))
    first = ordered[0].start
    entries = await load_entries(
        session=session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        start=first,
        end=max(p.end for p in ordered),
    )
    days = [e.work_date for e in entries]
    usage = await block_usage_before(session=session, contracts=contracts, before=first)
    consumed = 0  # entries before the current period's start already added to `usage`
    result: dict[Period, dict[RowKey, Figures]] = {}
    for period in ordered:
        while consumed < len(entries) and entries[consumed].work_date < period.start:
            entry = entries[consumed]
            consumed += 1
            contract = attributed_contract(entry, contracts) if entry.billable else None
            if contract is not None and contract.kind is PricingKind.BLOCK:
                usage[contract.id] = usage.get(contract.id, 0) + entry.minutes
        inside = entries[bisect_left(days, period.start) : bisect_right(days, period.end)]
        figures = compute_period(
            period=period,
            entries=inside,
            contracts=contracts,
            rates=rates,
            block_used_before=usage,
        )
        result[period] = dict(figures.rows)
    return result


async def compute_customer_period(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int | None,
    period: Period,
    rates: CostRates | None = None,
    contracts: Mapping[int, PricedContract] | None = None,
) -> dict[RowKey, Figures]:
    """Fresh exact figures of one customer in one period (see `compute_customer_periods`)."""
    found = await compute_customer_periods(
        session=session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        periods=[period],
        rates=rates,
        contracts=contracts,
    )
    return found[period]


def customer_results(
    *,
    entries: list[Entry],
    contracts: Mapping[int, PricedContract],
    rates: CostRates,
    horizon: date,
) -> dict[tuple[str, date], Mapping[RowKey, Figures]]:
    """Every week and month result of one customer from all its time (pure).

    Periods: those with time, and those the contracts' monthly amounts reach up to `horizon`.
    Block usage is chained from period to period (periods without time consume nothing).
    """
    by_period: dict[tuple[str, date], list[Entry]] = defaultdict(list)
    keys_of: dict[date, tuple[tuple[str, date], tuple[str, date]]] = {}
    for entry in entries:
        day = entry.work_date
        keys = keys_of.get(day)
        if keys is None:  # a year of entries has at most a few hundred distinct days
            keys = keys_of[day] = (("week", week_of(day).start), ("month", day.replace(day=1)))
        by_period[keys[0]].append(entry)
        by_period[keys[1]].append(entry)
    for contract in contracts.values():
        if not (contract.monthly_fee_minor or contract.monthly_direct_cost_minor):
            continue
        last = horizon if contract.end is None else min(contract.end, horizon)
        if contract.start <= last:
            for p in periods_of_range(contract.start, last):
                by_period.setdefault((p.kind, p.start), [])
    results: dict[tuple[str, date], Mapping[RowKey, Figures]] = {}
    for kind in PERIOD_KINDS:
        used: Mapping[int, int] = {}
        for key in sorted(k for k in by_period if k[0] == kind):
            figures = compute_period(
                period=period_of(*key),
                entries=by_period[key],
                contracts=contracts,
                rates=rates,
                block_used_before=used,
            )
            used = figures.block_used_after
            results[key] = figures.rows
    return results


async def customers_with_data(*, session: AsyncSession, workspace_id: int) -> list[int | None]:
    """Every customer that has (or had) time, contracts, results or stale marks; None (time
    against no customer) first when there is any."""
    found: set[int | None] = set()
    for stmt in (
        sa.select(_TE.c.customer_id).where(_TE.c.workspace_id == workspace_id).distinct(),
        sa.select(Contract.__table__.c.customer_id)  # type: ignore[attr-defined]
        .where(Contract.__table__.c.workspace_id == workspace_id)  # type: ignore[attr-defined]
        .distinct(),
        sa.select(_PR.c.customer_id).where(_PR.c.workspace_id == workspace_id).distinct(),
        sa.select(_SP.c.customer_id).where(_SP.c.workspace_id == workspace_id).distinct(),
    ):
        found.update(row[0] for row in (await session.execute(stmt)).all())
    return sorted(found, key=lambda c: -1 if c is None else c)


async def rebuild_customer(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int | None,
    today: date,
    at: datetime,
    rates: CostRates | None = None,
    reported: set[str] | None = None,
) -> WriteStats:
    """Recompute and store every result of one customer, and clear its stale marks."""
    await guard(session, workspace_id)
    await lock_customer(session, workspace_id, customer_id)
    stale_stmt = sa.select(_SP.c.id).where(
        _SP.c.workspace_id == workspace_id,
        _SP.c.customer_id.is_(None) if customer_id is None else _SP.c.customer_id == customer_id,
    )
    if dialect(session) == "postgresql":
        # Rows a refresh holds are skipped, not waited for: it deletes them itself.
        stale_stmt = stale_stmt.with_for_update(skip_locked=True)
    stale_ids = [row[0] for row in (await session.execute(stale_stmt)).all()]
    if rates is None:
        rates = await load_cost_rates(session=session, workspace_id=workspace_id)
    if reported is None:
        reported = await reported_period_keys(session=session, workspace_id=workspace_id)
    contracts = (
        {}
        if customer_id is None
        else await load_contracts(
            session=session, workspace_id=workspace_id, customer_id=customer_id
        )
    )
    entries = await load_entries(
        session=session, workspace_id=workspace_id, customer_id=customer_id
    )
    results = customer_results(
        entries=entries, contracts=contracts, rates=rates, horizon=horizon_end(today)
    )
    stats = await store_customer(
        session,
        workspace_id=workspace_id,
        customer_id=customer_id,
        periods=None,
        new=results,
        reported=reported,
        at=at,
    )
    for offset in range(0, len(stale_ids), 500):
        await session.execute(sa.delete(_SP).where(_SP.c.id.in_(stale_ids[offset : offset + 500])))
    return stats


async def rebuild(
    *,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: int,
    today: date,
    at: datetime,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    chunk: int = 1,
) -> WriteStats:
    """Recompute every stored result from scratch one customer at a time, one transaction
    per block of `chunk` customers (`docket rebuild` uses models.profit_bulk.rebuild, which
    stores the same results).

    `progress(done, total)` is called after each block. Other writers keep working in
    between; what they change meanwhile is marked stale and refreshed as usual.
    """
    async with sessions() as session, session.begin():
        customers = await customers_with_data(session=session, workspace_id=workspace_id)
        rates = await load_cost_rates(session=session, workspace_id=workspace_id)
        reported = await reported_period_keys(session=session, workspace_id=workspace_id)
    total = WriteStats()
    for offset in range(0, len(customers), chunk):
        block = customers[offset : offset + chunk]
        async with sessions() as session, session.begin():
            for customer_id in block:
                total.add(
                    await rebuild_customer(
                        session=session,
                        workspace_id=workspace_id,
                        customer_id=customer_id,
                        today=today,
                        at=at,
                        rates=rates,
                        reported=reported,
                    )
                )
        if progress is not None:
            maybe = progress(offset + len(block), len(customers))
            if maybe is not None:
                await maybe
    return total
