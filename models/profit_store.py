"""Stored profitability results: writing them, and restating reported periods.

- Results are stored per (customer, contract, period) for ISO weeks and calendar months, as
  exact integers (`ProfitResult`). `contract_key` 0 holds time on no usable contract, and
  `customer_id` None holds time logged against no customer.
- A customer's new results replace its stored rows through a `WritePlan`: unchanged rows stay,
  changed ones are deleted and inserted again, in bulk (`bulk_insert_rows`).
- Restatements: when a period already reported (a `ReportRun` of that period key that was
  queued, posted or made final) gets different figures for a customer, a pending `Restatement`
  keeps what was reported (before) and what is true now (after); later changes update its
  "after", and it disappears if the figures return to what was reported. The next report of
  that period kind lists it and marks it reported (models.profit_report.record_report_run).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.periods import Period, month_of, week_of
from models.profitability import (
    INT_FIELDS,
    Figures,
    RowKey,
    sum_figures,
)
from models.reporting import (
    figures_from_json,
    figures_to_json,
)
from models.sql import dialect
from models.tables import (
    ProfitResult,
    ReportRun,
    Restatement,
)

# Core tables (typed Any): plain-column queries return rows, never ORM objects.
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]


PERIOD_KINDS = ("week", "month")
NOT_REPORTED = ("claimed", "skipped")
"""ReportRun statuses that do not count as "reported" (nothing reached anyone)."""


def period_of(kind: str, start: date) -> Period:
    """The week or month starting on `start`."""
    if kind == "week":
        return week_of(start)
    if kind == "month":
        return month_of(start)
    raise ValueError(f"unknown period kind {kind!r}")


_Stored = tuple[tuple[int, ...], tuple[int, ...]]  # (INT_FIELDS values, missing member ids)


def stored_values(fig: Figures) -> _Stored:
    """What a stored row keeps of `fig`: comparable plain values."""
    return tuple(getattr(fig, n) for n in INT_FIELDS), tuple(sorted(fig.missing_rates))


def figures_of_row(values: Any) -> Figures:
    """The figures of a stored result row mapping."""
    return Figures(
        **{n: int(values[n]) for n in INT_FIELDS},
        missing_rates=frozenset(int(m) for m in values["missing_rates"] or ()),
    )


def customer_lock_key(workspace_id: int, customer_id: int | None) -> int:
    """The PostgreSQL advisory lock key of one customer's stored results."""
    return zlib.crc32(f"docket-profit:{workspace_id}:{customer_id or 0}".encode())


async def lock_customer(session: AsyncSession, workspace_id: int, customer_id: int | None) -> None:
    """Take one customer's results for this transaction (PostgreSQL; SQLite has one writer)."""
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


_RS: Any = Restatement.__table__  # type: ignore[attr-defined]


async def _restate_all(
    session: AsyncSession,
    workspace_id: int,
    items: Sequence[tuple[str, date, int | None, Figures, Figures]],
    at: datetime,
) -> int:
    """Record (kind, start, customer, before, after) changes of reported periods, in a few
    statements however many there are (a back-dated rate restates every reported week of
    every customer): a new pending restatement keeps `before`; an existing one gets the new
    "after", or goes if the figures are back to what was reported. Returns how many are
    pending for these changes now."""
    if not items:
        return 0
    rs = _RS.c
    periods = sorted({(kind, start) for kind, start, *_rest in items})
    stmt = sa.select(rs.id, rs.period_kind, rs.period_start, rs.customer_id, rs.before).where(
        rs.workspace_id == workspace_id,
        rs.reported_in_run_id.is_(None),
        sa.or_(*[sa.and_(rs.period_kind == k, rs.period_start == s) for k, s in periods]),
    )
    pending = {
        (kind, start, customer): (row_id, before)
        for row_id, kind, start, customer, before in (await session.execute(stmt)).all()
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    deletes: list[int] = []
    for kind, start, customer_id, before, after in items:
        found = pending.get((kind, start, customer_id))
        if found is None:
            inserts.append(
                {
                    "workspace_id": workspace_id,
                    "period_kind": kind,
                    "period_start": start,
                    "customer_id": customer_id,
                    "before": figures_to_json(before),
                    "after": figures_to_json(after),
                    "created_at": at,
                }
            )
        elif stored_values(figures_from_json(found[1])) == stored_values(after):
            deletes.append(found[0])  # back to what was reported: nothing to restate
        else:
            updates.append({"row_id": found[0], "new_after": figures_to_json(after)})
    if inserts:
        await session.execute(sa.insert(_RS), inserts)
    if updates:
        await session.execute(
            sa.update(_RS)
            .where(rs.id == sa.bindparam("row_id"))
            .values(after=sa.bindparam("new_after", type_=rs.after.type)),
            updates,
            execution_options={"synchronize_session": False},
        )
    for offset in range(0, len(deletes), 500):
        await session.execute(sa.delete(_RS).where(rs.id.in_(deletes[offset : offset + 500])))
    return len(inserts) + len(updates)


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


async def store_customer(
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
        figures_of_row(row),
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
    stats.restatements = await _restate_all(session, workspace_id, plan.restate, at)
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


COPY_FROM_ROWS = 1_000
"""On PostgreSQL, at least this many rows are written with COPY instead of INSERT."""


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
    # PostgreSQL: many rows go by COPY (binary, the driver's own type codecs: the values are
    # the same as for the INSERT), several times faster than one INSERT each.
    copy: Any = None
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        copy = driver.copy_records_to_table
    for offset in range(0, len(rows), 10_000):
        chunk = rows[offset : offset + 10_000]
        if plain:
            batch = [tuple(row) for row in chunk]
        else:
            # Column by column: only the columns with a converter are touched value by value.
            columns = list(zip(*chunk, strict=True))
            batch = list(
                zip(
                    *[
                        columns[i]
                        if c is None
                        else [None if value is None else c(value) for value in columns[i]]
                        for c, i in zip(converters, where, strict=True)
                    ],
                    strict=True,
                )
            )
        if copy is not None:
            await copy(table.name, records=batch, columns=order)
        else:
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
