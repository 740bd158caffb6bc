"""Profitability persistence: stored results per customer, contract and period, kept fresh.

How it works:

- Time is aggregated in SQL (minutes per member, contract, work date and billable flag) and
  handed to the pure engine (models.profitability.compute_period) with the customer's
  contracts, every cost rate, and, for prepaid blocks, the billable minutes used before the
  period (also summed in SQL). Summing per day is exact: cost and hourly revenue are linear in
  minutes, and a block's revenue within one day does not depend on the order of its entries.
- Results are stored per (customer, contract, period) for ISO weeks and calendar months, as
  exact integers (`ProfitResult`). `contract_key` 0 holds time on no usable contract, and
  `customer_id` None holds time logged against no customer.
- Changes mark customer-periods stale (models.timelog); `refresh_some` recomputes a few of them
  per transaction. `rebuild` recomputes everything per customer, chaining block usage from
  period to period; it gives the same results as the incremental path.
- Fixed fees and direct costs of open-ended contracts are materialized up to the horizon (end of
  the current month or week); `ensure_horizon` marks new periods as the calendar moves on.
- Restatements: when a period already reported (a `ReportRun` of that period key that was
  queued, posted or made final) gets different figures for a customer, a pending `Restatement`
  keeps what was reported (before) and what is true now (after); later changes update its
  "after", and it disappears if the figures return to what was reported. The next report of
  that period kind lists it and marks it reported (`record_report_run`).
"""

from __future__ import annotations

import logging
import zlib
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.periods import Period, month_of, week_of
from models.profitability import (
    INT_FIELDS,
    CostRates,
    Entry,
    Figures,
    PricedContract,
    PricingKind,
    RowKey,
    attributed_contract,
    compute_period,
    sum_figures,
)
from models.rates import RateRow
from models.reporting import (
    NO_CONTRACT,
    NO_CUSTOMER,
    Line,
    Quality,
    Report,
    RestatementItem,
    figures_from_json,
    figures_to_json,
    report_json,
)
from models.sql import dialect
from models.tables import (
    ChargeRate,
    Contract,
    ContractKind,
    CostRate,
    Customer,
    Member,
    ProfitResult,
    ReportRun,
    Restatement,
    StalePeriod,
    TimeEntry,
    Workspace,
)
from models.timelog import horizon_end, mark_stale, periods_of_range

logger = logging.getLogger(__name__)

PERIOD_KINDS = ("week", "month")
NOT_REPORTED = ("claimed", "skipped")
"""ReportRun statuses that do not count as "reported" (nothing reached anyone)."""

# Core tables (typed Any): plain-column queries return rows, never ORM objects.
_TE: Any = TimeEntry.__table__  # type: ignore[attr-defined]
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]
_SP: Any = StalePeriod.__table__  # type: ignore[attr-defined]
_CR: Any = CostRate.__table__  # type: ignore[attr-defined]
_CH: Any = ChargeRate.__table__  # type: ignore[attr-defined]
_CO: Any = Contract.__table__  # type: ignore[attr-defined]
_CU: Any = Customer.__table__  # type: ignore[attr-defined]
_ME: Any = Member.__table__  # type: ignore[attr-defined]


def period_of(kind: str, start: date) -> Period:
    """The week or month starting on `start`."""
    if kind == "week":
        return week_of(start)
    if kind == "month":
        return month_of(start)
    raise ValueError(f"unknown period kind {kind!r}")


# ---------------------------------------------------------------------------------------
# Loading plain values
# ---------------------------------------------------------------------------------------


async def load_cost_rates(*, session: AsyncSession, workspace_id: int) -> CostRates:
    """Every cost rate of the workspace and each member's group, as the pure engine wants."""
    member: dict[int, list[RateRow]] = defaultdict(list)
    group: dict[int, list[RateRow]] = defaultdict(list)
    default: list[RateRow] = []
    stmt = (
        sa.select(_CR.c.member_id, _CR.c.group_id, _CR.c.effective_from, _CR.c.minor_per_hour)
        .where(_CR.c.workspace_id == workspace_id)
        .order_by(_CR.c.effective_from, _CR.c.id)
    )
    for member_id, group_id, effective_from, minor in (await session.execute(stmt)).all():
        row = RateRow(effective_from, int(minor))
        if member_id is not None:
            member[member_id].append(row)
        elif group_id is not None:
            group[group_id].append(row)
        else:
            default.append(row)
    groups = await session.execute(
        sa.select(_ME.c.id, _ME.c.group_id).where(_ME.c.workspace_id == workspace_id)
    )
    return CostRates(
        member=dict(member),
        group_of={int(m): g for m, g in groups.all()},
        group=dict(group),
        default=tuple(default),
    )


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


# ---------------------------------------------------------------------------------------
# Storing results and restatements
# ---------------------------------------------------------------------------------------

_Stored = tuple[tuple[int, ...], tuple[int, ...]]  # (INT_FIELDS values, missing member ids)


def stored_values(fig: Figures) -> _Stored:
    """What a stored row keeps of `fig`: comparable plain values."""
    return tuple(getattr(fig, n) for n in INT_FIELDS), tuple(sorted(fig.missing_rates))


def _figures_of(values: Any) -> Figures:
    return Figures(
        **{n: int(values[n]) for n in INT_FIELDS},
        missing_rates=frozenset(int(m) for m in values["missing_rates"] or ()),
    )


def customer_lock_key(workspace_id: int, customer_id: int | None) -> int:
    """The PostgreSQL advisory lock key of one customer's stored results."""
    return zlib.crc32(f"docket-profit:{workspace_id}:{customer_id or 0}".encode())


async def _lock_customer(session: AsyncSession, workspace_id: int, customer_id: int | None) -> None:
    # Refreshes and rebuilds of one customer take turns (SQLite serialises all writers).
    if dialect(session) == "postgresql":
        key = customer_lock_key(workspace_id, customer_id)
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


async def reported_period_keys(*, session: AsyncSession, workspace_id: int) -> set[str]:
    """Keys of periods already reported (weekly/monthly post queued or posted, or final)."""
    stmt = (
        select(ReportRun.period_key)
        .where(
            ReportRun.workspace_id == workspace_id,
            col(ReportRun.status).not_in(NOT_REPORTED),
        )
        .distinct()
    )
    return set((await session.exec(stmt)).all())


async def _restate(
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    start: date,
    customer_id: int | None,
    before: Figures,
    after: Figures,
    at: datetime,
) -> bool:
    stmt = select(Restatement).where(
        Restatement.workspace_id == workspace_id,
        Restatement.period_kind == kind,
        Restatement.period_start == start,
        col(Restatement.reported_in_run_id).is_(None),
        col(Restatement.customer_id).is_(None)
        if customer_id is None
        else Restatement.customer_id == customer_id,
    )
    pending = (await session.exec(stmt)).first()
    if pending is None:
        session.add(
            Restatement(
                workspace_id=workspace_id,
                period_kind=kind,
                period_start=start,
                customer_id=customer_id,
                before=figures_to_json(before),
                after=figures_to_json(after),
                created_at=at,
            )
        )
        return True
    if stored_values(figures_from_json(pending.before)) == stored_values(after):
        await session.delete(pending)  # back to what was reported: nothing to restate
        return False
    pending.after = figures_to_json(after)
    session.add(pending)
    return True


@dataclass
class WriteStats:
    """What storing a customer's results changed."""

    rows_written: int = 0
    rows_deleted: int = 0
    restatements: int = 0

    def add(self, other: WriteStats) -> None:
        """Count `other`'s changes in these."""
        self.rows_written += other.rows_written
        self.rows_deleted += other.rows_deleted
        self.restatements += other.restatements


async def _store_customer(
    session: AsyncSession,
    *,
    workspace_id: int,
    customer_id: int | None,
    periods: Collection[tuple[str, date]] | None,
    new: Mapping[tuple[str, date], Mapping[RowKey, Figures]],
    reported: set[str],
    at: datetime,
) -> WriteStats:
    """Replace a customer's stored rows for `periods` (None: every period) with `new`."""
    cond = [_PR.c.workspace_id == workspace_id, _customer_filter_pr(customer_id)]
    stmt = sa.select(*STORED_COLUMNS).where(*cond)
    if periods is None and dialect(session) == "sqlite":
        # No index leads with the customer, and SQLite then reads every stored row of the
        # workspace (0.3 s at 200k rows, per customer). Naming the workspace's periods (a scan
        # of the small period index) lets it seek the unique (workspace, kind, start, customer)
        # index instead. PostgreSQL filters on the customer inside that index scan: faster.
        period_stmt = (
            sa.select(_PR.c.period_kind, _PR.c.period_start)
            .where(_PR.c.workspace_id == workspace_id)
            .distinct()
        )
        periods_held = (await session.execute(period_stmt)).all()
        if not periods_held:
            stmt = stmt.where(sa.false())
        else:
            stmt = stmt.where(
                _PR.c.period_kind.in_(sorted({kind for kind, _start in periods_held})),
                _PR.c.period_start.in_(sorted({start for _kind, start in periods_held})),
            )
    elif periods is not None:
        if not periods:
            return WriteStats()
        starts = sorted({start for _kind, start in periods})
        stmt = stmt.where(
            _PR.c.period_kind.in_(sorted({kind for kind, _start in periods})),
            _PR.c.period_start.in_(starts),
        )
    old: StoredRows = defaultdict(dict)
    for row in (await session.execute(stmt)).mappings().all():
        key, contract_key, row_id, fig = stored_row_of(row)
        if periods is not None and key not in periods:
            continue
        old[key][contract_key] = (row_id, fig)
    plan = WritePlan()
    plan_customer(
        plan,
        workspace_id=workspace_id,
        customer_id=customer_id,
        periods=periods,
        old=old,
        new=new,
        reported=reported,
        at=at,
    )
    return await execute_plan(session, plan, workspace_id=workspace_id, at=at)


StoredRows = dict[tuple[str, date], dict[int, tuple[int, Figures]]]
"""A customer's stored results: (period kind, start) -> contract key -> (row id, figures)."""


def stored_row_of(row: Any) -> tuple[tuple[str, date], int, int, Figures]:
    """(period key, contract key, row id, figures) of a stored result row mapping."""
    return (
        (row["period_kind"], row["period_start"]),
        int(row["contract_key"]),
        int(row["id"]),
        _figures_of(row),
    )


STORED_COLUMNS: tuple[Any, ...] = (
    _PR.c.id,
    _PR.c.period_kind,
    _PR.c.period_start,
    _PR.c.contract_key,
    *[_PR.c[n] for n in INT_FIELDS],
    _PR.c.missing_rates,
)
"""The columns `stored_row_of` reads."""


@dataclass
class WritePlan:
    """Row changes (and restatements to record) for one or many customers, written at once."""

    delete_ids: list[int] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    restate: list[tuple[str, date, int | None, Figures, Figures]] = field(default_factory=list)


def plan_customer(
    plan: WritePlan,
    *,
    workspace_id: int,
    customer_id: int | None,
    periods: Collection[tuple[str, date]] | None,
    old: Mapping[tuple[str, date], Mapping[int, tuple[int, Figures]]],
    new: Mapping[tuple[str, date], Mapping[RowKey, Figures]],
    reported: set[str],
    at: datetime,
) -> None:
    """Add to `plan` what replaces a customer's stored rows for `periods` (None: every period)
    with `new`: unchanged rows stay, changed ones are deleted and inserted again."""
    delete_ids, inserts = plan.delete_ids, plan.inserts
    wanted = set(old) | set(new) if periods is None else set(periods)
    for key in sorted(wanted):
        kind, start = key
        before_rows = old.get(key, {})
        after_rows = {
            (contract_id or 0): fig for (_c, contract_id), fig in new.get(key, {}).items()
        }
        for contract_key, (row_id, fig) in before_rows.items():
            if contract_key not in after_rows or stored_values(
                after_rows[contract_key]
            ) != stored_values(fig):
                delete_ids.append(row_id)
        for contract_key, fig in after_rows.items():
            known = before_rows.get(contract_key)
            if known is not None and stored_values(known[1]) == stored_values(fig):
                continue
            inserts.append(
                {
                    "workspace_id": workspace_id,
                    "period_kind": kind,
                    "period_start": start,
                    "customer_id": customer_id,
                    "contract_key": contract_key,
                    **{n: getattr(fig, n) for n in INT_FIELDS},
                    "missing_rates": sorted(fig.missing_rates),
                    "computed_at": at,
                }
            )
        if period_of(kind, start).key in reported:
            before_total = sum_figures(fig for _id, fig in before_rows.values())
            after_total = sum_figures(after_rows.values())
            if stored_values(before_total) != stored_values(after_total):
                plan.restate.append((kind, start, customer_id, before_total, after_total))


async def execute_plan(
    session: AsyncSession, plan: WritePlan, *, workspace_id: int, at: datetime
) -> WriteStats:
    """Write a `WritePlan`: deletes, bulk inserts and restatements, in the caller's
    transaction."""
    stats = WriteStats()
    for kind, start, customer_id, before_total, after_total in plan.restate:
        if await _restate(
            session, workspace_id, kind, start, customer_id, before_total, after_total, at
        ):
            stats.restatements += 1
    delete_ids, inserts = plan.delete_ids, plan.inserts
    for offset in range(0, len(delete_ids), 500):
        await session.execute(sa.delete(_PR).where(_PR.c.id.in_(delete_ids[offset : offset + 500])))
    await bulk_insert(session, _PR, inserts)
    stats.rows_deleted, stats.rows_written = len(delete_ids), len(inserts)
    return stats


async def bulk_insert(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows (all with the same keys) in the caller's transaction."""
    if rows:
        keys = tuple(rows[0])
        await bulk_insert_rows(session, table, keys, [tuple(r[k] for k in keys) for r in rows])


async def bulk_insert_rows(
    session: AsyncSession, table: Any, keys: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert many rows, each a tuple of the values of `keys`, in the caller's transaction.

    Each distinct value goes through its column type's own bind processor once (results hold
    few distinct dates, one time stamp and mostly empty lists), and the rows go to the driver
    in one executemany per batch: for a rebuild's hundreds of thousands of rows this is
    several times faster than per-row parameter processing.
    """
    if not rows:
        return
    conn = await session.connection()
    compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=list(keys))
    order = list(compiled.positiontup or keys)
    where = [list(keys).index(k) for k in order]
    converters = []
    for k in order:
        processor = table.c[k].type._cached_bind_processor(conn.dialect)
        converters.append(None if processor is None else _cached(processor))
    plain = all(c is None for c in converters) and where == list(range(len(keys)))
    for offset in range(0, len(rows), 10_000):
        chunk = rows[offset : offset + 10_000]
        if plain:
            batch = [tuple(row) for row in chunk]
        else:
            batch = [
                tuple(
                    value if c is None or value is None else c(value)
                    for c, value in zip(converters, [row[i] for i in where], strict=True)
                )
                for row in chunk
            ]
        await conn.exec_driver_sql(str(compiled), batch)


def _cached(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    cache: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        key = tuple(value) if isinstance(value, list) else value
        done = cache.get(key, cache)
        if done is cache:
            done = cache[key] = processor(list(value) if isinstance(value, tuple) else value)
        return done

    return convert


def _customer_filter_pr(customer_id: int | None) -> Any:
    if customer_id is None:
        return _PR.c.customer_id.is_(None)
    return _PR.c.customer_id == customer_id


# ---------------------------------------------------------------------------------------
# Incremental refresh
# ---------------------------------------------------------------------------------------


@dataclass
class RefreshStats:
    """What one `refresh_some` call did."""

    customer_periods: int = 0
    rows_written: int = 0
    restatements: int = 0


async def refresh_some(
    *, session: AsyncSession, workspace_id: int, at: datetime, limit: int = 20
) -> RefreshStats:
    """Recompute up to `limit` stale customer-periods (oldest marks first) and store them.

    Runs in the caller's transaction; call it again while it returns work. On PostgreSQL the
    stale rows are claimed with SKIP LOCKED so replicas share the queue.
    """
    stmt = (
        sa.select(_SP.c.id, _SP.c.period_kind, _SP.c.period_start, _SP.c.customer_id)
        .where(_SP.c.workspace_id == workspace_id)
        .order_by(_SP.c.id)
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    claimed = (await session.execute(stmt)).all()
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
        await _lock_customer(session, workspace_id, customer_id)
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
        written = await _store_customer(
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


# ---------------------------------------------------------------------------------------
# Full rebuild
# ---------------------------------------------------------------------------------------


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
    await _lock_customer(session, workspace_id, customer_id)
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
    stats = await _store_customer(
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


class BlockRecompute(Protocol):
    """Recomputes and stores every result of a block of customers in the caller's
    transaction (models.profit_bulk.recompute_customers has this shape)."""

    def __call__(
        self,
        *,
        session: AsyncSession,
        workspace_id: int,
        customers: Sequence[int | None],
        today: date,
        at: datetime,
        rates: CostRates | None = None,
        reported: set[str] | None = None,
    ) -> Awaitable[WriteStats]: ...


async def rebuild(
    *,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: int,
    today: date,
    at: datetime,
    progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    recompute: BlockRecompute | None = None,
    chunk: int = 1,
) -> WriteStats:
    """Recompute every stored result from scratch, one transaction per block of `chunk`
    customers: with `recompute` (set-based, models.profit_bulk), else one customer at a time.

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
            if recompute is not None:
                total.add(
                    await recompute(
                        session=session,
                        workspace_id=workspace_id,
                        customers=block,
                        today=today,
                        at=at,
                        rates=rates,
                        reported=reported,
                    )
                )
            for customer_id in block if recompute is None else ():
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


# ---------------------------------------------------------------------------------------
# Reading results into a report
# ---------------------------------------------------------------------------------------


async def _names(
    session: AsyncSession, workspace_id: int
) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
    customer_rows = await session.execute(
        sa.select(_CU.c.id, _CU.c.name).where(_CU.c.workspace_id == workspace_id)
    )
    contract_rows = await session.execute(
        sa.select(_CO.c.id, _CO.c.name, _CO.c.kind).where(_CO.c.workspace_id == workspace_id)
    )
    customers = {int(i): str(n) for i, n in customer_rows.all()}
    contracts = {int(i): (str(n), str(k)) for i, n, k in contract_rows.all()}
    return customers, contracts


def _sort_name(name: str, customer_id: int | None) -> tuple[int, str]:
    return (1 if customer_id is None else 0, name.casefold())


async def stored_rows(
    *,
    session: AsyncSession,
    workspace_id: int,
    period: Period,
    customer_ids: Collection[int | None] | None = None,
) -> dict[RowKey, Figures]:
    """The stored exact figures of a week or month per (customer, contract)."""
    stmt = sa.select(_PR).where(
        _PR.c.workspace_id == workspace_id,
        _PR.c.period_kind == period.kind,
        _PR.c.period_start == period.start,
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds = [_PR.c.customer_id.in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(_PR.c.customer_id.is_(None))
        stmt = stmt.where(sa.or_(*conds) if conds else sa.false())
    rows: dict[RowKey, Figures] = {}
    for row in (await session.execute(stmt)).mappings().all():
        key = (row["customer_id"], int(row["contract_key"]) or None)
        rows[key] = _figures_of(row)
    return rows


async def build_report(
    *,
    session: AsyncSession,
    workspace_id: int,
    period: Period,
    customer_ids: Collection[int | None] | None = None,
    restatement_kinds: Collection[str] | None = None,
) -> Report:
    """The report of a week or month from stored results (see models.reporting).

    `customer_ids` limits it to some customers (None: everyone; include None for time against
    no customer). Restatements listed: those not yet reported, of the same period kind as
    `period` unless `restatement_kinds` says otherwise, for the same customers.
    """
    if period.kind not in PERIOD_KINDS:
        raise ValueError(f"results are kept for weeks and months, not {period.kind!r}")
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    customer_names, contract_names = await _names(session, workspace_id)
    rows = await stored_rows(
        session=session, workspace_id=workspace_id, period=period, customer_ids=customer_ids
    )

    def customer_name(customer_id: int | None) -> str:
        if customer_id is None:
            return NO_CUSTOMER
        return customer_names.get(customer_id, f"customer {customer_id}")

    per_customer: dict[int | None, Figures] = {}
    contract_lines = []
    for (customer_id, contract_id), fig in rows.items():
        per_customer[customer_id] = per_customer.get(customer_id, Figures()) + fig
        name, kind = (
            contract_names.get(contract_id, (NO_CONTRACT, None))
            if contract_id
            else (
                NO_CONTRACT,
                None,
            )
        )
        contract_lines.append(
            Line(
                customer_id=customer_id,
                customer=customer_name(customer_id),
                figures=fig,
                contract_id=contract_id,
                contract=name,
                kind=kind,
            )
        )
    customers = sorted(
        (
            Line(customer_id=c, customer=customer_name(c), figures=f)
            for c, f in per_customer.items()
        ),
        key=lambda line: _sort_name(line.customer, line.customer_id),
    )
    contract_lines.sort(
        key=lambda line: (
            *_sort_name(line.customer, line.customer_id),
            line.contract_id is None,
            (line.contract or "").casefold(),
        )
    )
    total = sum_figures(rows.values())
    missing = sorted(total.missing_rates)
    member_names: dict[int, str] = {}
    if missing:
        member_rows = await session.execute(
            sa.select(_ME.c.id, _ME.c.name, _ME.c.email).where(_ME.c.id.in_(missing))
        )
        member_names = {int(i): str(n or e or f"member {i}") for i, n, e in member_rows.all()}
    stale_stmt = sa.select(
        sa.func.count(sa.distinct(sa.func.coalesce(_SP.c.customer_id, 0)))
    ).where(
        _SP.c.workspace_id == workspace_id,
        _SP.c.period_kind == period.kind,
        _SP.c.period_start == period.start,
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds = [_SP.c.customer_id.in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(_SP.c.customer_id.is_(None))
        stale_stmt = stale_stmt.where(sa.or_(*conds) if conds else sa.false())
    quality = Quality(
        uncosted_minutes=total.uncosted_minutes,
        unattributed_minutes=total.unattributed_minutes,
        unpriced_minutes=total.unpriced_minutes,
        missing_rates=tuple(
            sorted((member_names.get(m, f"member {m}") for m in missing), key=str.casefold)
        ),
        stale_customers=int((await session.execute(stale_stmt)).scalar_one()),
    )
    restatements = await pending_restatements(
        session=session,
        workspace_id=workspace_id,
        kinds=(period.kind,) if restatement_kinds is None else restatement_kinds,
        customer_ids=customer_ids,
    )
    return Report(
        period=period,
        currency=ws.currency,
        total=total,
        customers=tuple(customers),
        contracts=tuple(contract_lines),
        quality=quality,
        restatements=tuple(
            RestatementItem(
                id=r.id or 0,
                period_key=period_of(r.period_kind, r.period_start).key,
                customer_id=r.customer_id,
                customer=customer_name(r.customer_id),
                before=figures_from_json(r.before),
                after=figures_from_json(r.after),
            )
            for r in restatements
        ),
        customer_filter=(
            tuple(customer_name(c) for c in customer_ids) if customer_ids is not None else None
        ),
    )


async def pending_restatements(
    *,
    session: AsyncSession,
    workspace_id: int,
    kinds: Collection[str] = PERIOD_KINDS,
    customer_ids: Collection[int | None] | None = None,
) -> list[Restatement]:
    """Restatements not yet listed in a report, oldest period first."""
    stmt = select(Restatement).where(
        Restatement.workspace_id == workspace_id,
        col(Restatement.reported_in_run_id).is_(None),
        col(Restatement.period_kind).in_(list(kinds)),
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds: list[Any] = [col(Restatement.customer_id).in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(col(Restatement.customer_id).is_(None))
        stmt = stmt.where(sa.or_(*conds) if conds else sa.false())
    stmt = stmt.order_by(col(Restatement.period_start), col(Restatement.id))
    return list((await session.exec(stmt)).all())


async def mark_restatements_reported(
    *, session: AsyncSession, workspace_id: int, run_id: int, restatement_ids: Collection[int]
) -> int:
    """Record that a report run listed these restatements; returns how many were pending."""
    if not restatement_ids:
        return 0
    result = await session.execute(
        sa.update(Restatement)
        .where(
            col(Restatement.workspace_id) == workspace_id,
            col(Restatement.id).in_(list(restatement_ids)),
            col(Restatement.reported_in_run_id).is_(None),
        )
        .values(reported_in_run_id=run_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def record_report_run(
    *, session: AsyncSession, workspace_id: int, kind: str, report: Report, at: datetime
) -> ReportRun:
    """Record that `report` was reported (kind "final", "weekly" or "monthly"): the run keeps
    the JSON snapshot, the period counts as reported from now on (later changes restate it),
    and the restatements the report listed are marked as reported in this run.

    Reporting the same kind and period again updates the run's snapshot.
    """
    stmt = select(ReportRun).where(
        ReportRun.workspace_id == workspace_id,
        ReportRun.kind == kind,
        ReportRun.period_key == report.period.key,
    )
    run = (await session.exec(stmt)).first()
    if run is None:
        run = ReportRun(
            workspace_id=workspace_id, kind=kind, period_key=report.period.key, claimed_at=at
        )
    run.status = "final" if kind == "final" else "posted"
    run.snapshot = report_json(report)
    run.posted_at = at
    session.add(run)
    await session.flush()
    assert run.id is not None
    await mark_restatements_reported(
        session=session,
        workspace_id=workspace_id,
        run_id=run.id,
        restatement_ids=[item.id for item in report.restatements],
    )
    return run
