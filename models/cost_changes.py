"""Cost-rate changes kept as differences: a back-dated rate without recomputing every period.

A cost rate saved for a member, a group or the workspace default changes the resolved rate
(member, then group, then default) of some members over some days. Labour cost is exact and
linear in minutes, so each stored row's labour cost moves by (rate after - rate before) x the
minutes those members worked on those days, and nothing else in a row depends on cost rates,
as long as no day goes from costed to uncosted or back (that changes the uncosted minutes and
who is missing a rate; `save_cost_rate` then marks the members' time stale as before).

- `rate_deltas` (pure) finds the changed ranges; `record` keeps them as one `CostChange`.
- The refresh adds them to the stored rows (`models.profit_bulk.settle`) before anything
  recomputes results from the rates, so no row gets a change twice. Rows of customer-periods
  still marked stale are left to their recompute.
- SQLite has one writer (every transaction starts with BEGIN IMMEDIATE). On PostgreSQL a rate
  change takes the workspace's cost lock exclusively (`hold`), and a refresh takes it shared,
  or exclusively to apply pending changes, before it reads any rate: a change never commits
  while a refresh that read the old rates is running, and a refresh that reads the new rates
  finds the change pending and applies it first.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from models.profitability import CostRates
from models.rates import RateRow
from models.sql import dialect
from models.tables import CostChange, CostRate, Member

_CR: Any = CostRate.__table__  # type: ignore[attr-defined]
_ME: Any = Member.__table__  # type: ignore[attr-defined]
_CC: Any = CostChange.__table__  # type: ignore[attr-defined]

FAR = date(9999, 12, 31)
"""The open end of the last range (exclusive ends everywhere)."""

Delta = tuple[int, date, date, int | None, int | None]
"""(member, from, until (exclusive), rate before, rate after); None: uncosted."""


class CostChangesPending(RuntimeError):
    """A recompute from the rates was asked for while cost changes wait to be applied: the
    caller must settle them first (models.profit_bulk.settle, as every refresh step does)."""


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


def _edges(rates: CostRates, member_id: int) -> set[date]:
    edges = {r.effective_from for r in rates.default}
    edges.update(r.effective_from for r in rates.member.get(member_id, ()))
    group_id = rates.group_of.get(member_id)
    if group_id is not None:
        edges.update(r.effective_from for r in rates.group.get(group_id, ()))
    return edges


def rate_deltas(before: CostRates, after: CostRates, members: Iterable[int]) -> list[Delta]:
    """The ranges over which each member's resolved cost rate differs between `before` and
    `after`, with both rates; adjacent ranges of the same pair are merged (pure)."""
    deltas: list[Delta] = []
    for member_id in sorted(set(members)):
        ordered = sorted(_edges(before, member_id) | _edges(after, member_id))
        for index, start in enumerate(ordered):
            until = ordered[index + 1] if index + 1 < len(ordered) else FAR
            old, new = before.resolve(member_id, start), after.resolve(member_id, start)
            old_rate = None if old is None else old.minor_per_hour
            new_rate = None if new is None else new.minor_per_hour
            if old_rate == new_rate:
                continue
            if deltas:
                m, first, last, o, n = deltas[-1]
                if (m, last, o, n) == (member_id, start, old_rate, new_rate):
                    deltas[-1] = (m, first, until, o, n)
                    continue
            deltas.append((member_id, start, until, old_rate, new_rate))
    return deltas


def costs_everywhere(deltas: Sequence[Delta]) -> bool:
    """Whether every changed day has a rate before and after (only labour cost moves)."""
    return all(old is not None and new is not None for _m, _f, _u, old, new in deltas)


def lock_key(workspace_id: int) -> int:
    """The PostgreSQL advisory lock key of one workspace's cost rates."""
    return zlib.crc32(f"docket-cost-rates:{workspace_id}".encode())


async def hold(session: AsyncSession, workspace_id: int, *, exclusive: bool) -> None:
    """Take the workspace's cost lock for this transaction (PostgreSQL; SQLite has one
    writer): exclusively to change rates or apply changes, shared to recompute from them."""
    if dialect(session) != "postgresql":
        return
    take = sa.func.pg_advisory_xact_lock if exclusive else sa.func.pg_advisory_xact_lock_shared
    await session.execute(sa.select(take(lock_key(workspace_id))))


async def record(
    *, session: AsyncSession, workspace_id: int, deltas: Sequence[Delta], at: datetime
) -> None:
    """Keep a change for the refresh to add to the stored results."""
    rows = [[m, f.isoformat(), u.isoformat(), o, n] for m, f, u, o, n in deltas]
    await session.execute(
        sa.insert(_CC).values(workspace_id=workspace_id, deltas=rows, created_at=at)
    )
    session.info["profit_dirty"] = True


_PENDING = sa.text("SELECT 1 FROM cost_change WHERE workspace_id = :ws LIMIT 1")


async def has_pending(session: AsyncSession, workspace_id: int) -> bool:
    """Whether a change waits to be applied (every refresh step asks: plain SQL, nothing to
    compile)."""
    return (await session.execute(_PENDING, {"ws": workspace_id})).first() is not None


async def take_pending(session: AsyncSession, workspace_id: int) -> list[list[Delta]]:
    """The waiting changes, oldest first, deleted in the caller's transaction (which applies
    them); on PostgreSQL the caller holds the cost lock exclusively."""
    stmt = (
        sa.select(_CC.c.id, _CC.c.deltas)
        .where(_CC.c.workspace_id == workspace_id)
        .order_by(_CC.c.id)
    )
    rows = (await session.execute(stmt)).all()
    if not rows:
        return []
    await session.execute(sa.delete(_CC).where(_CC.c.id.in_([r[0] for r in rows])))
    return [
        [(int(m), date.fromisoformat(f), date.fromisoformat(u), o, n) for m, f, u, o, n in deltas]
        for _id, deltas in rows
    ]


async def guard(session: AsyncSession, workspace_id: int) -> None:
    """Before a recompute reads the rates: hold the cost lock shared, and refuse while a
    change waits (its caller settles changes first)."""
    await hold(session, workspace_id, exclusive=False)
    if await has_pending(session, workspace_id):
        raise CostChangesPending("cost-rate changes wait to be applied; settle them first")
