"""Time entries: log, edit and delete them (with the refusals), and mark what they make stale.

Rules:

- Refused, with a reason a person can act on: a duration of zero or less, a date in the future
  (in the workspace's time zone), and more than 24 h on one day for one person (the sum of that
  member's entries that day, the edited entry counted once).
- People edit and delete their own entries; managers and admins anyone's.
- An entry on a ticket takes the ticket's customer and contract. An entry with a contract and no
  customer takes the contract's customer, so `customer_id` is set whenever `contract_id` is
  (the profitability engine relies on it).
- Every change marks the customer-periods it touches as stale (week and month of the old and
  the new work date; for a prepaid block every later period with time on that contract) and
  flags the session so the refresh worker wakes after commit. Rate, contract and member changes
  use the other `mark_*` functions here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.people import can_see_money
from models.periods import Period, month_of, months_between, week_of, weeks_between
from models.sql import dialect
from models.tables import (
    Contract,
    ContractKind,
    EventKind,
    Member,
    StalePeriod,
    Ticket,
    TicketEvent,
    TimeEntry,
)
from models.timeparse import format_minutes

MAX_DAY_MINUTES = 24 * 60
NOTE_MAX = 2000

_TE: Any = TimeEntry.__table__  # type: ignore[attr-defined]
_CO: Any = Contract.__table__  # type: ignore[attr-defined]

StaleKey = tuple[int | None, Period]
"""A customer (None: time against no customer) and a week or month to recompute."""


class TimeRefused(Exception):
    """A time entry Docket will not record or change; the message says why."""


@dataclass(frozen=True)
class EntryKey:
    """Where an entry's minutes count: what a change to it makes stale."""

    customer_id: int | None
    contract_id: int | None
    work_date: date

    @classmethod
    def of(cls, entry: TimeEntry) -> EntryKey:
        return cls(entry.customer_id, entry.contract_id, entry.work_date)


def refusal(
    *, minutes: int, work_date: date, today: date, other_minutes_that_day: int
) -> str | None:
    """Why an entry cannot be recorded, or None. Pure; `today` is the workspace's date."""
    if minutes <= 0:
        return "The duration must be more than zero, e.g. `30m` or `1h30`."
    if work_date > today:
        return (
            f"{work_date.isoformat()} is in the future. Log time on the day you worked "
            "(today or earlier)."
        )
    total = other_minutes_that_day + minutes
    if total > MAX_DAY_MINUTES:
        return (
            f"That makes {format_minutes(total)} on {work_date.isoformat()}, more than 24h in "
            f"one day (already logged: {format_minutes(other_minutes_that_day)})."
        )
    return None


# ---------------------------------------------------------------------------------------
# Stale marking
# ---------------------------------------------------------------------------------------


def horizon_end(today: date) -> date:
    """The last date results are kept for: the end of today's month (or week, if later).

    Fixed fees and direct costs of open-ended contracts are materialized up to here; the
    refresh worker moves it forward as the calendar does (engine.ensure_horizon).
    """
    return max(month_of(today).end, week_of(today).end)


def periods_of_range(start: date, end: date) -> list[Period]:
    """Every week and month touching `start..end`."""
    return [*weeks_between(start, end), *months_between(start, end)]


async def mark_stale(
    *, session: AsyncSession, workspace_id: int, keys: Iterable[StaleKey], at: datetime
) -> int:
    """Queue customer-periods for the refresh worker; returns how many distinct keys.

    An existing row is updated (not ignored): on PostgreSQL the upsert then waits for a
    refresh that holds the row and re-inserts after it, so no change is ever lost.
    """
    unique = {(c, p.kind, p.start) for c, p in keys}
    if not unique:
        return 0
    table: Any = StalePeriod.__table__  # type: ignore[attr-defined]
    known = [
        {
            "workspace_id": workspace_id,
            "period_kind": kind,
            "period_start": start,
            "customer_id": c,
            "marked_at": at,
        }
        for c, kind, start in sorted(unique, key=lambda k: (k[0] or 0, k[1], k[2]))
    ]
    with_customer = [row for row in known if row["customer_id"] is not None]
    internal = [row for row in known if row["customer_id"] is None]
    if with_customer:
        ins: Any = (postgresql if dialect(session) == "postgresql" else sqlite).insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=["workspace_id", "period_kind", "period_start", "customer_id"],
            set_={"marked_at": ins.excluded.marked_at},
        )
        for offset in range(0, len(with_customer), 1000):
            await session.execute(stmt, with_customer[offset : offset + 1000])
    if internal:
        # NULLs never conflict in a unique key: the refresh claims every row of a key at once.
        await session.execute(sa.insert(table), internal)
    session.info["profit_dirty"] = True
    return len(unique)


async def _block_contracts(session: AsyncSession, contract_ids: Collection[int]) -> dict[int, int]:
    """Block contracts among `contract_ids`: id -> customer id."""
    if not contract_ids:
        return {}
    stmt = sa.select(_CO.c.id, _CO.c.customer_id).where(
        _CO.c.id.in_(list(contract_ids)), _CO.c.kind == ContractKind.BLOCK.value
    )
    return {int(i): int(c) for i, c in (await session.execute(stmt)).all()}


async def _dates_with_time(
    session: AsyncSession,
    workspace_id: int,
    *,
    since: date,
    contract_id: int | None = None,
    member_ids: Collection[int] | None = None,
) -> set[tuple[int | None, date]]:
    """Distinct (customer, work date) of entries on or after `since`, optionally filtered."""
    if contract_id is not None:
        # Contract ids are unique across workspaces: filtering on it alone lets the database
        # use the (contract, date) index instead of scanning the workspace's dates.
        stmt = sa.select(_TE.c.customer_id, _TE.c.work_date).where(
            _TE.c.contract_id == contract_id, _TE.c.work_date >= since
        )
    elif member_ids is not None:
        # Member ids are unique too (the member index then beats the workspace's dates).
        stmt = sa.select(_TE.c.customer_id, _TE.c.work_date).where(
            _TE.c.member_id.in_(list(member_ids)), _TE.c.work_date >= since
        )
    else:
        stmt = sa.select(_TE.c.customer_id, _TE.c.work_date).where(
            _TE.c.workspace_id == workspace_id, _TE.c.work_date >= since
        )
    stmt = stmt.distinct()
    return {(c, d) for c, d in (await session.execute(stmt)).all()}


def _keys_for_dates(pairs: Iterable[tuple[int | None, date]]) -> set[StaleKey]:
    keys: set[StaleKey] = set()
    periods: dict[date, tuple[Period, Period]] = {}  # a day's week and month, made once
    for customer_id, day in pairs:
        week_month = periods.get(day)
        if week_month is None:
            week_month = periods[day] = (week_of(day), month_of(day))
        keys.add((customer_id, week_month[0]))
        keys.add((customer_id, week_month[1]))
    return keys


async def _block_dates_with_time(
    session: AsyncSession, since: Mapping[int, date]
) -> set[tuple[int | None, date]]:
    """Distinct (customer, work date) of each contract's entries on or after its `since` day,
    in one query (contract ids are unique across workspaces)."""
    if not since:
        return set()
    stmt = (
        sa.select(_TE.c.contract_id, _TE.c.customer_id, _TE.c.work_date)
        .where(_TE.c.contract_id.in_(list(since)), _TE.c.work_date >= min(since.values()))
        .distinct()
    )
    rows = (await session.execute(stmt)).all()
    return {(c, d) for k, c, d in rows if d >= since[k]}


async def mark_entry_changes(
    *, session: AsyncSession, workspace_id: int, changes: Iterable[EntryKey], at: datetime
) -> int:
    """Mark what changed entries touch: their weeks and months, and for prepaid blocks every
    later period with time on the contract (block usage moves the later entries' revenue)."""
    pairs: set[tuple[int | None, date]] = set()
    first_block_day: dict[int, date] = {}
    for key in changes:
        pairs.add((key.customer_id, key.work_date))
        if key.contract_id is not None:
            known = first_block_day.get(key.contract_id)
            if known is None or key.work_date < known:
                first_block_day[key.contract_id] = key.work_date
    blocks = await _block_contracts(session, first_block_day)
    pairs |= await _block_dates_with_time(session, {k: first_block_day[k] for k in blocks})
    return await mark_stale(
        session=session, workspace_id=workspace_id, keys=_keys_for_dates(pairs), at=at
    )


async def mark_members_from(
    *,
    session: AsyncSession,
    workspace_id: int,
    member_ids: Collection[int] | None,
    since: date,
    at: datetime,
) -> int:
    """A cost rate changed from `since` for these members (None: everyone): mark their time."""
    pairs = await _dates_with_time(session, workspace_id, since=since, member_ids=member_ids)
    return await mark_stale(
        session=session, workspace_id=workspace_id, keys=_keys_for_dates(pairs), at=at
    )


async def mark_contract_time_from(
    *, session: AsyncSession, workspace_id: int, contract_id: int, since: date, at: datetime
) -> int:
    """A contract's charge rate changed from `since`: mark the periods with time on it."""
    pairs = await _dates_with_time(session, workspace_id, since=since, contract_id=contract_id)
    return await mark_stale(
        session=session, workspace_id=workspace_id, keys=_keys_for_dates(pairs), at=at
    )


@dataclass(frozen=True)
class ContractSpan:
    """The dates a contract's monthly amounts could count on, before or after a change."""

    customer_id: int
    start: date
    end: date | None


async def mark_contract_change(
    *,
    session: AsyncSession,
    workspace_id: int,
    contract_id: int,
    spans: Iterable[ContractSpan],
    today: date,
    at: datetime,
) -> int:
    """A contract was created or changed: mark every period with time on it and every period
    its old and new date ranges touch (up to the results horizon)."""
    keys = _keys_for_dates(
        await _dates_with_time(session, workspace_id, since=date.min, contract_id=contract_id)
    )
    limit = horizon_end(today)
    for span in spans:
        last = limit if span.end is None else min(span.end, limit)
        if span.start <= last:
            keys |= {(span.customer_id, p) for p in periods_of_range(span.start, last)}
    return await mark_stale(session=session, workspace_id=workspace_id, keys=keys, at=at)


# ---------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------


async def _lock_member(session: AsyncSession, member_id: int) -> None:
    # The 24-hour check reads then writes: serialise one member's entries (SQLite already
    # serialises every writer with BEGIN IMMEDIATE).
    if dialect(session) == "postgresql":
        await session.execute(
            sa.select(sa.literal(1))
            .select_from(Member.__table__)  # type: ignore[attr-defined]
            .where(col(Member.id) == member_id)
            .with_for_update()
        )


async def minutes_on_day(
    *,
    session: AsyncSession,
    workspace_id: int,
    member_id: int,
    day: date,
    excluding_entry_id: int | None = None,
) -> int:
    """The member's logged minutes on `day` (optionally without one entry)."""
    stmt = select(sa.func.coalesce(sa.func.sum(TimeEntry.minutes), 0)).where(
        TimeEntry.workspace_id == workspace_id,
        TimeEntry.member_id == member_id,
        TimeEntry.work_date == day,
    )
    if excluding_entry_id is not None:
        stmt = stmt.where(col(TimeEntry.id) != excluding_entry_id)
    return int((await session.exec(stmt)).one())


async def _contract_customer(session: AsyncSession, workspace_id: int, contract_id: int) -> int:
    contract = await session.get(Contract, contract_id)
    if contract is None or contract.workspace_id != workspace_id:
        raise TimeRefused("That contract does not exist.")
    return contract.customer_id


def _check(*, minutes: int, work_date: date, today: date, other: int) -> None:
    reason = refusal(
        minutes=minutes, work_date=work_date, today=today, other_minutes_that_day=other
    )
    if reason is not None:
        raise TimeRefused(reason)


async def _history(
    session: AsyncSession,
    entry: TimeEntry,
    actor: Member,
    action: str,
    at: datetime,
) -> None:
    if entry.ticket_id is None:
        return
    verb = {"logged": "Logged", "edited": "Changed time entry to", "deleted": "Deleted"}[action]
    body = f"{verb} {format_minutes(entry.minutes)} on {entry.work_date.isoformat()}"
    if action != "deleted" and entry.note:
        body += f": {entry.note}"
    session.add(
        TicketEvent(
            workspace_id=entry.workspace_id,
            ticket_id=entry.ticket_id,
            kind=EventKind.TIME_LOGGED,
            actor_id=actor.id,
            actor_label=actor.name or actor.email or "",
            body=body,
            data={
                "action": action,
                "time_entry_id": entry.id,
                "minutes": entry.minutes,
                "work_date": entry.work_date.isoformat(),
                "billable": entry.billable,
            },
            created_at=at,
        )
    )


async def log_time(
    *,
    session: AsyncSession,
    workspace_id: int,
    member: Member,
    minutes: int,
    work_date: date,
    today: date,
    at: datetime,
    ticket_id: int | None = None,
    customer_id: int | None = None,
    contract_id: int | None = None,
    billable: bool = True,
    note: str = "",
) -> TimeEntry:
    """Record an entry for `member`; raises TimeRefused with the reason it cannot be.

    With a ticket, the ticket's customer and contract are used (the arguments are ignored).
    """
    assert member.id is not None
    if not member.active:
        raise TimeRefused("Your Docket membership is inactive; ask an admin.")
    if ticket_id is not None:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or ticket.workspace_id != workspace_id:
            raise TimeRefused("That ticket does not exist.")
        customer_id, contract_id = ticket.customer_id, ticket.contract_id
    if contract_id is not None:
        owner = await _contract_customer(session, workspace_id, contract_id)
        if customer_id is None:
            customer_id = owner
        elif customer_id != owner:
            raise TimeRefused("That contract belongs to another customer.")
    await _lock_member(session, member.id)
    other = await minutes_on_day(
        session=session, workspace_id=workspace_id, member_id=member.id, day=work_date
    )
    _check(minutes=minutes, work_date=work_date, today=today, other=other)
    entry = TimeEntry(
        workspace_id=workspace_id,
        member_id=member.id,
        ticket_id=ticket_id,
        customer_id=customer_id,
        contract_id=contract_id,
        work_date=work_date,
        minutes=minutes,
        billable=billable,
        note=note.strip()[:NOTE_MAX],
        created_at=at,
        updated_at=at,
    )
    session.add(entry)
    await session.flush()
    await _history(session, entry, member, "logged", at)
    await mark_entry_changes(
        session=session, workspace_id=workspace_id, changes=[EntryKey.of(entry)], at=at
    )
    return entry


async def get_entry(*, session: AsyncSession, workspace_id: int, entry_id: int) -> TimeEntry:
    """An entry of this workspace; TimeRefused when there is none with that number."""
    entry = await session.get(TimeEntry, entry_id)
    if entry is None or entry.workspace_id != workspace_id:
        raise TimeRefused(f"There is no time entry {entry_id}. `/time list` shows yours.")
    return entry


def _check_owner(entry: TimeEntry, actor: Member, verb: str) -> None:
    if entry.member_id != actor.id and not can_see_money(actor):
        raise TimeRefused(
            f"Entry {entry.id} is someone else's; only managers can {verb} other people's time."
        )


async def edit_time(
    *,
    session: AsyncSession,
    workspace_id: int,
    actor: Member,
    entry_id: int,
    today: date,
    at: datetime,
    minutes: int | None = None,
    work_date: date | None = None,
    billable: bool | None = None,
    note: str | None = None,
) -> TimeEntry:
    """Change an entry (None keeps a field); same refusals as logging, plus ownership."""
    entry = await get_entry(session=session, workspace_id=workspace_id, entry_id=entry_id)
    _check_owner(entry, actor, "edit")
    before = EntryKey.of(entry)
    new_minutes = entry.minutes if minutes is None else minutes
    new_date = entry.work_date if work_date is None else work_date
    await _lock_member(session, entry.member_id)
    other = await minutes_on_day(
        session=session,
        workspace_id=workspace_id,
        member_id=entry.member_id,
        day=new_date,
        excluding_entry_id=entry.id,
    )
    # An untouched future date (impossible unless imported) is not the editor's fault.
    check_today = max(today, entry.work_date) if work_date is None else today
    _check(minutes=new_minutes, work_date=new_date, today=check_today, other=other)
    entry.minutes = new_minutes
    entry.work_date = new_date
    if billable is not None:
        entry.billable = billable
    if note is not None:
        entry.note = note.strip()[:NOTE_MAX]
    entry.updated_at = at
    session.add(entry)
    await session.flush()
    await _history(session, entry, actor, "edited", at)
    await mark_entry_changes(
        session=session, workspace_id=workspace_id, changes=[before, EntryKey.of(entry)], at=at
    )
    return entry


async def delete_time(
    *, session: AsyncSession, workspace_id: int, actor: Member, entry_id: int, at: datetime
) -> TimeEntry:
    """Delete an entry (own, or anyone's for managers); returns the deleted row's values."""
    entry = await get_entry(session=session, workspace_id=workspace_id, entry_id=entry_id)
    _check_owner(entry, actor, "delete")
    gone = TimeEntry.model_validate(entry.model_dump())
    await _history(session, entry, actor, "deleted", at)
    await session.delete(entry)
    await session.flush()
    await mark_entry_changes(
        session=session, workspace_id=workspace_id, changes=[EntryKey.of(gone)], at=at
    )
    return gone


async def recent_entries(
    *, session: AsyncSession, workspace_id: int, member_id: int, limit: int = 15
) -> list[TimeEntry]:
    """The member's latest entries, newest work date first."""
    stmt = (
        select(TimeEntry)
        .where(TimeEntry.workspace_id == workspace_id, TimeEntry.member_id == member_id)
        .order_by(col(TimeEntry.work_date).desc(), col(TimeEntry.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def retarget_ticket_time(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    customer_id: int | None,
    contract_id: int | None,
    at: datetime,
) -> int:
    """Move a ticket's entries to its new customer and contract (after the ticket changed);
    returns how many moved. Both the old and the new customer-periods are marked."""
    stmt = select(TimeEntry).where(
        TimeEntry.workspace_id == workspace_id, TimeEntry.ticket_id == ticket_id
    )
    entries = list((await session.exec(stmt)).all())
    if contract_id is not None and customer_id is None:
        customer_id = await _contract_customer(session, workspace_id, contract_id)
    changes: list[EntryKey] = []
    for entry in entries:
        if (entry.customer_id, entry.contract_id) == (customer_id, contract_id):
            continue
        changes.append(EntryKey.of(entry))
        entry.customer_id, entry.contract_id, entry.updated_at = customer_id, contract_id, at
        session.add(entry)
        changes.append(EntryKey.of(entry))
    if changes:
        await session.flush()
        await mark_entry_changes(session=session, workspace_id=workspace_id, changes=changes, at=at)
    return len(changes) // 2
