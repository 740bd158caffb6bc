"""The incremental profitability refresh: a few stale customer-periods per transaction.

Changes mark customer-periods stale (models.timelog); `refresh_some` recomputes a few of them
per transaction with the per-customer engine (models.engine) and stores them
(models.profit_store). Fixed fees and direct costs of open-ended contracts are materialized up
to the horizon (end of the current month or week); `ensure_horizon` marks new periods as the
calendar moves on. A large backlog is recomputed set-based (models.profit_bulk.refresh_step).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.cost_changes import guard, load_cost_rates
from models.engine import compute_customer_periods, load_contracts
from models.periods import Period, week_of
from models.profit_store import (
    PERIOD_KINDS,
    lock_customer,
    period_of,
    reported_period_keys,
    store_customer,
)
from models.profitability import (
    Figures,
    RowKey,
)
from models.sql import dialect
from models.tables import (
    Contract,
    ContractKind,
    ProfitResult,
    StalePeriod,
)
from models.timelog import horizon_end, mark_stale, periods_of_range

# Core tables (typed Any): plain-column queries return rows, never ORM objects.
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]
_SP: Any = StalePeriod.__table__  # type: ignore[attr-defined]


class RefreshStats:
    """What one `refresh_some` call did."""

    customer_periods: int = 0
    rows_written: int = 0
    restatements: int = 0


async def claim_stale(*, session: AsyncSession, workspace_id: int, limit: int) -> Sequence[Any]:
    """The oldest `limit` stale marks (id, period kind, period start, customer), claimed in
    the caller's transaction (SKIP LOCKED on PostgreSQL, so replicas share the queue)."""
    stmt = (
        sa.select(_SP.c.id, _SP.c.period_kind, _SP.c.period_start, _SP.c.customer_id)
        .where(_SP.c.workspace_id == workspace_id)
        .order_by(_SP.c.id)
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return (await session.execute(stmt)).all()


async def refresh_some(
    *,
    session: AsyncSession,
    workspace_id: int,
    at: datetime,
    limit: int = 20,
    claimed: Sequence[Any] | None = None,
    settled: bool = False,
) -> RefreshStats:
    """Recompute up to `limit` stale customer-periods (oldest marks first) and store them,
    or the marks already `claimed` (`claim_stale`).

    Runs in the caller's transaction; call it again while it returns work. Cost-rate changes
    waiting to be applied must be settled first: `settled` says the caller did so in this
    transaction (models.profit_bulk.refresh_step), else it is checked here.
    """
    if not settled:
        await guard(session, workspace_id)
    if claimed is None:
        claimed = await claim_stale(session=session, workspace_id=workspace_id, limit=limit)
    stats = RefreshStats()
    if not claimed:
        return stats
    by_customer: dict[int | None, set[tuple[str, date]]] = defaultdict(set)
    for _id, kind, start, customer_id in claimed:
        by_customer[customer_id].add((kind, start))
    rates = await load_cost_rates(session=session, workspace_id=workspace_id)
    reported = await reported_period_keys(session=session, workspace_id=workspace_id)
    # One lock order everywhere (None first, then by id): concurrent refreshes cannot deadlock.
    for customer_id in sorted(by_customer, key=lambda c: -1 if c is None else c):
        keys = by_customer[customer_id]
        await lock_customer(session, workspace_id, customer_id)
        contracts = (
            {}
            if customer_id is None
            else await load_contracts(
                session=session, workspace_id=workspace_id, customer_id=customer_id
            )
        )
        computed = await compute_customer_periods(
            session=session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            periods=[period_of(kind, start) for kind, start in keys],
            rates=rates,
            contracts=contracts,
        )
        new: dict[tuple[str, date], Mapping[RowKey, Figures]] = {
            (p.kind, p.start): rows for p, rows in computed.items()
        }
        written = await store_customer(
            session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            periods=keys,
            new=new,
            reported=reported,
            at=at,
        )
        stats.customer_periods += len(keys)
        stats.rows_written += written.rows_written
        stats.restatements += written.restatements
    ids = [row[0] for row in claimed]
    await session.execute(sa.delete(_SP).where(_SP.c.id.in_(ids)))
    return stats


async def stale_count(
    *, session: AsyncSession, workspace_id: int, period: Period | None = None
) -> int:
    """Stale customer-periods waiting (of one period, or all)."""
    stmt = sa.select(sa.func.count()).select_from(_SP).where(_SP.c.workspace_id == workspace_id)
    if period is not None:
        stmt = stmt.where(_SP.c.period_kind == period.kind, _SP.c.period_start == period.start)
    return int((await session.execute(stmt)).scalar_one())


async def ensure_horizon(
    *, session: AsyncSession, workspace_id: int, today: date, at: datetime
) -> int:
    """Mark the periods that fixed fees and direct costs reach but results do not yet cover
    (the calendar moved on); returns how many customer-periods were marked."""
    limit = horizon_end(today)
    contracts = (
        await session.exec(
            select(Contract).where(
                Contract.workspace_id == workspace_id,
                sa.or_(
                    sa.and_(
                        col(Contract.kind) == ContractKind.FIXED,
                        col(Contract.monthly_fee_minor) > 0,
                    ),
                    col(Contract.monthly_direct_cost_minor) > 0,
                ),
                col(Contract.start_date) <= limit,
            )
        )
    ).all()
    if not contracts:
        return 0
    latest_stmt = (
        sa.select(_PR.c.contract_key, _PR.c.period_kind, sa.func.max(_PR.c.period_start))
        .where(
            _PR.c.workspace_id == workspace_id,
            _PR.c.contract_key.in_([c.id for c in contracts]),
        )
        .group_by(_PR.c.contract_key, _PR.c.period_kind)
    )
    latest = {(k, kind): start for k, kind, start in (await session.execute(latest_stmt)).all()}
    keys = []
    for contract in contracts:
        last = limit if contract.end_date is None else min(contract.end_date, limit)
        if last < contract.start_date:
            continue
        for kind in PERIOD_KINDS:
            needed = period_of(kind, week_of(last).start if kind == "week" else last.replace(day=1))
            have = latest.get((contract.id, kind))
            if have is not None and have >= needed.start:
                continue
            # A stored period was computed for all its days: start after it.
            first = contract.start_date
            if have is not None:
                first = max(first, period_of(kind, have).end + timedelta(days=1))
            if first > last:
                continue
            keys += [
                (contract.customer_id, p) for p in periods_of_range(first, last) if p.kind == kind
            ]
    return await mark_stale(session=session, workspace_id=workspace_id, keys=keys, at=at)
