"""Service levels in the database: calendars, policies, each ticket's clocks and its notices.

The rules are in models.sla; this module feeds them a ticket's history and keeps the result
in `ticket_sla` (with `next_check_at`, the next moment the scan must look at the ticket).
Every ticket change calls `refresh_ticket_sla` in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.outbox import (
    SLACK,
    SlackCall,
    delivery_target,
    enqueue,
    payload_json,
    slack_call,
)
from models.sla import (
    CALENDAR_KINDS,
    DEFAULT_HOURS,
    DEFAULT_POLICY,
    DEFAULT_WARNING_PCT,
    PRIORITIES,
    Calendar,
    DurationError,
    Mark,
    MarkKind,
    Policy,
    PriorityTargets,
    SlaInput,
    Target,
    TargetState,
    TargetStatus,
    TicketClock,
    check_duration,
    evaluate,
)
from models.sql import dialect, insert_ignore
from models.tables import (
    Contract,
    EventKind,
    Member,
    OutboxMessage,
    OutboxStatus,
    SlaHoliday,
    SlaHours,
    SlaNotice,
    SlaPolicy,
    SlaTarget,
    Ticket,
    TicketEvent,
    TicketSla,
    Workspace,
)

# Where a customer-opened ticket came from ("created" entry's `source`).
CUSTOMER_SOURCES = frozenset({"email", "slack"})

States = dict[Target, TargetState]


@dataclass
class SlaSettings:
    """A workspace's calendar, policies and warning share, read once per scan or change."""

    calendar: Calendar
    policies: dict[str, tuple[int, Policy]] = field(default_factory=dict)
    contract_policy: dict[int, str] = field(default_factory=dict)
    warning_pct: int = DEFAULT_WARNING_PCT

    def policy_for(self, contract_id: int | None) -> tuple[int, Policy] | None:
        """The contract's policy, else the workspace default, else None (no SLA)."""
        name = self.contract_policy.get(contract_id) if contract_id is not None else None
        found = self.policies.get(name) if name else None
        return found or self.policies.get(DEFAULT_POLICY)


def _clock_time(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute)) if hour != "24" else time(23, 59, 59, 999999)


async def workspace_calendar(*, session: AsyncSession, workspace_id: int) -> Calendar:
    """The workspace's business hours and holidays in its time zone."""
    workspace = await session.get(Workspace, workspace_id)
    zone = ZoneInfo(workspace.timezone if workspace is not None else "UTC")
    rows = (await session.exec(select(SlaHours).where(SlaHours.workspace_id == workspace_id))).all()
    hours = (
        {r.weekday: (_clock_time(r.start), _clock_time(r.end)) for r in rows}
        if rows
        else dict(DEFAULT_HOURS)
    )
    days = (
        await session.exec(select(SlaHoliday).where(SlaHoliday.workspace_id == workspace_id))
    ).all()
    return Calendar(zone=zone, hours=hours, holidays=frozenset(d.day for d in days))


async def has_policies(*, session: AsyncSession, workspace_id: int) -> bool:
    """Whether any SLA policy exists (without one, no ticket has a clock)."""
    stmt = select(SlaPolicy.id).where(SlaPolicy.workspace_id == workspace_id).limit(1)
    return (await session.exec(stmt)).first() is not None


async def workspace_policies(
    *, session: AsyncSession, workspace_id: int
) -> dict[str, tuple[int, Policy]]:
    """Every policy of the workspace by name, with its targets."""
    policies = (
        await session.exec(select(SlaPolicy).where(SlaPolicy.workspace_id == workspace_id))
    ).all()
    targets = (
        await session.exec(select(SlaTarget).where(SlaTarget.workspace_id == workspace_id))
    ).all()
    by_policy: dict[int, dict[str, PriorityTargets]] = {}
    for t in targets:
        by_policy.setdefault(t.policy_id, {})[t.priority] = PriorityTargets(
            t.first_response, t.resolution
        )
    out: dict[str, tuple[int, Policy]] = {}
    for p in policies:
        assert p.id is not None
        out[p.name] = (p.id, Policy(p.name, p.calendar, by_policy.get(p.id, {})))
    return out


async def sla_settings(*, session: AsyncSession, workspace_id: int) -> SlaSettings:
    """Everything the rules need from the workspace."""
    workspace = await session.get(Workspace, workspace_id)
    contracts = (
        await session.exec(
            select(Contract.id, Contract.sla_policy).where(
                Contract.workspace_id == workspace_id, col(Contract.sla_policy).is_not(None)
            )
        )
    ).all()
    return SlaSettings(
        calendar=await workspace_calendar(session=session, workspace_id=workspace_id),
        policies=await workspace_policies(session=session, workspace_id=workspace_id),
        contract_policy={cid: name for cid, name in contracts if cid is not None and name},
        warning_pct=workspace.sla_warning_pct if workspace is not None else DEFAULT_WARNING_PCT,
    )


def clock_from_events(ticket: Ticket, events: Iterable[TicketEvent]) -> TicketClock:
    """A ticket's SLA history from its audit trail (created, status moves, priority edits,
    public replies by the team)."""
    status, priority, customer = ticket.status, ticket.priority, False
    marks: list[Mark] = []
    for event in events:
        data: dict[str, Any] = event.data or {}
        if event.kind == EventKind.CREATED:
            status = str(data.get("status") or status)
            priority = str(data.get("priority") or priority)
            customer = data.get("source") in CUSTOMER_SOURCES
        elif event.kind == EventKind.STATUS and data.get("to"):
            marks.append(Mark(event.created_at, MarkKind.STATUS, str(data["to"])))
        elif event.kind == EventKind.EDITED:
            change = (data.get("changes") or {}).get("priority")
            if isinstance(change, list) and len(change) == 2:
                marks.append(Mark(event.created_at, MarkKind.PRIORITY, str(change[1])))
        elif event.kind == EventKind.AGENT_REPLY and not event.deleted:
            marks.append(Mark(event.created_at, MarkKind.REPLY))
    return TicketClock(
        created_at=ticket.created_at,
        status=status,
        priority=priority,
        customer_opened=customer,
        marks=marks,
    )


_CLOCK_KINDS = (EventKind.CREATED, EventKind.STATUS, EventKind.EDITED, EventKind.AGENT_REPLY)


async def ticket_clocks(
    *, session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket]
) -> dict[int, TicketClock]:
    """The SLA history of several tickets, read in one query."""
    ids = [t.id for t in tickets if t.id is not None]
    events: dict[int, list[TicketEvent]] = {i: [] for i in ids}
    for chunk in range(0, len(ids), 500):
        rows = (
            await session.exec(
                select(TicketEvent)
                .where(
                    TicketEvent.workspace_id == workspace_id,
                    col(TicketEvent.ticket_id).in_(ids[chunk : chunk + 500]),
                    col(TicketEvent.kind).in_([k.value for k in _CLOCK_KINDS]),
                )
                .order_by(col(TicketEvent.id))
            )
        ).all()
        for row in rows:
            events[row.ticket_id].append(row)
    return {t.id: clock_from_events(t, events[t.id]) for t in tickets if t.id is not None}


def evaluate_ticket(
    settings: SlaSettings, ticket: Ticket, clock: TicketClock, now: datetime
) -> tuple[int | None, States]:
    """The policy id and both targets' state of one ticket at `now`."""
    found = settings.policy_for(ticket.contract_id)
    policy_id, policy = found if found is not None else (None, None)
    states = evaluate(clock, policy, settings.calendar, now, warning_pct=settings.warning_pct)
    return policy_id, states


def next_check(states: States, now: datetime) -> datetime | None:
    """When the scan must next look: the earliest warning or due instant of a running target
    (now, for one already breached, so its notice is claimed)."""
    moments: list[datetime] = []
    for state in states.values():
        if state.status == TargetStatus.BREACHED and state.stopped_at is None:
            moments.append(now)
        elif state.status == TargetStatus.RUNNING:
            moments.extend(m for m in (state.warn_at, state.due) if m is not None and m > now)
            if state.warn_at is not None and state.warn_at <= now:
                moments.append(now)
    return min(moments) if moments else None


def after_scan(states: States, now: datetime) -> datetime | None:
    """The next check once everything due at `now` has been claimed."""
    moments = [
        m
        for state in states.values()
        if state.status == TargetStatus.RUNNING
        for m in (state.warn_at, state.due)
        if m is not None and m > now
    ]
    return min(moments) if moments else None


def _running_due(state: TargetState) -> datetime | None:
    # Stored only while the clock runs, so "overdue" and "due today" are plain comparisons.
    return state.due if state.stopped_at is None and not state.paused else None


def _row_values(policy_id: int | None, states: States, now: datetime) -> dict[str, Any]:
    first, resolution = states[Target.FIRST_RESPONSE], states[Target.RESOLUTION]
    return {
        "policy_id": policy_id,
        "first_response_status": first.status.value,
        "first_response_due": _running_due(first),
        "resolution_status": resolution.status.value,
        "resolution_due": _running_due(resolution),
        "evaluated_at": now,
    }


def sla_due_between(start: datetime | None, end: datetime) -> Any:
    """A ticket filter: a running target falls due in [start, end) (any time before `end`
    when `start` is None: overdue)."""

    def window(due: Any) -> Any:
        return sa.and_(due >= start, due < end) if start is not None else due <= end

    return sa.exists().where(
        col(TicketSla.ticket_id) == col(Ticket.id),
        sa.or_(window(col(TicketSla.first_response_due)), window(col(TicketSla.resolution_due))),
    )


async def store_states(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    policy_id: int | None,
    states: States,
    next_check_at: datetime | None,
    now: datetime,
) -> None:
    """Write a ticket's evaluated clocks (insert or update its one row)."""
    values = {**_row_values(policy_id, states, now), "next_check_at": next_check_at}
    table = TicketSla.__table__  # type: ignore[attr-defined]
    updated = await session.execute(
        sa.update(table)
        .where(table.c.ticket_id == ticket_id, table.c.workspace_id == workspace_id)
        .values(**values)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        await insert_ignore(
            session,
            TicketSla,
            {"workspace_id": workspace_id, "ticket_id": ticket_id, **values},
            conflict=["ticket_id"],
        )


async def _refresh(
    session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket], at: datetime
) -> dict[int, States]:
    settings = await sla_settings(session=session, workspace_id=workspace_id)
    clocks = await ticket_clocks(session=session, workspace_id=workspace_id, tickets=tickets)
    out: dict[int, States] = {}
    for ticket in tickets:
        assert ticket.id is not None
        policy_id, states = evaluate_ticket(settings, ticket, clocks[ticket.id], at)
        await store_states(
            session=session,
            workspace_id=workspace_id,
            ticket_id=ticket.id,
            policy_id=policy_id,
            states=states,
            next_check_at=next_check(states, at),
            now=at,
        )
        out[ticket.id] = states
    return out


async def refresh_ticket_sla(
    *, session: AsyncSession, workspace_id: int, ticket_id: int, at: datetime
) -> States | None:
    """Re-evaluate one ticket's clocks after a change (None when the workspace has no SLA)."""
    if not await has_policies(session=session, workspace_id=workspace_id):
        return None
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None or ticket.workspace_id != workspace_id:
        return None
    return (await _refresh(session, workspace_id, [ticket], at))[ticket_id]


async def refresh_tickets_sla(
    *, session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket], at: datetime
) -> dict[int, States]:
    """Re-evaluate new tickets' clocks (empty when the workspace has no SLA)."""
    if not tickets or not await has_policies(session=session, workspace_id=workspace_id):
        return {}
    return await _refresh(
        session, workspace_id, [t for t in tickets if t.workspace_id == workspace_id], at
    )


async def refresh_open_tickets(*, session: AsyncSession, workspace_id: int, at: datetime) -> int:
    """Re-evaluate every unfinished ticket (after the calendar or a policy changed)."""
    if not await has_policies(session=session, workspace_id=workspace_id):
        return 0
    tickets = (
        await session.exec(
            select(Ticket).where(
                Ticket.workspace_id == workspace_id,
                col(Ticket.status).in_(["new", "open", "waiting"]),
            )
        )
    ).all()
    return len(await _refresh(session, workspace_id, tickets, at))


async def ticket_states(
    *, session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket], now: datetime
) -> dict[int, States]:
    """The clocks of some tickets at `now`, from their history (what cards and reports show)."""
    settings = await sla_settings(session=session, workspace_id=workspace_id)
    clocks = await ticket_clocks(session=session, workspace_id=workspace_id, tickets=tickets)
    out: dict[int, States] = {}
    for ticket in tickets:
        if ticket.id is not None:
            out[ticket.id] = evaluate_ticket(settings, ticket, clocks[ticket.id], now)[1]
    return out


def _due(workspace_id: int, now: datetime) -> tuple[Any, ...]:
    """The workspace's tickets whose next SLA check is due."""
    return (
        TicketSla.workspace_id == workspace_id,
        col(TicketSla.next_check_at).is_not(None),
        col(TicketSla.next_check_at) <= now,
    )


async def due_checks(
    *, session: AsyncSession, workspace_id: int, now: datetime, limit: int = 500
) -> list[int]:
    """Ids of tickets whose next check is due (oldest first)."""
    stmt = (
        select(TicketSla.ticket_id)
        .where(*_due(workspace_id, now))
        .order_by(col(TicketSla.next_check_at))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def set_next_check(
    *, session: AsyncSession, workspace_id: int, ticket_id: int, at: datetime | None
) -> None:
    """Move a ticket's next check (after the scan handled it)."""
    table = TicketSla.__table__  # type: ignore[attr-defined]
    await session.execute(
        sa.update(table)
        .where(table.c.ticket_id == ticket_id, table.c.workspace_id == workspace_id)
        .values(next_check_at=at)
    )


@dataclass(frozen=True)
class Notice:
    """A warning or breach to send: who gets it and what it says."""

    ticket: Ticket
    target: Target
    kind: str  # "warning" / "breach"
    round: int
    assignee_slack_id: str | None
    text: str


def _insert_ignore_many(
    session: AsyncSession, model: type[SQLModel], rows: list[dict[str, Any]], conflict: list[str]
) -> Any:
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    ins: Any = (
        postgresql.insert(table) if dialect(session) == "postgresql" else sqlite.insert(table)
    )
    return ins.values(rows).on_conflict_do_nothing(index_elements=conflict)


def _notice_messages(notice: Notice, at: datetime) -> list[dict[str, Any]]:
    """The outbox rows of one notice: the card's thread and/or the assignee's DM."""
    ticket_id = notice.ticket.id
    workspace_id = notice.ticket.workspace_id
    key = f"sla:{ticket_id}:{notice.target.value}:{notice.kind}:{notice.round}"
    payloads: list[tuple[str, SlackCall]] = []
    if notice.kind == "breach" or not notice.assignee_slack_id:
        thread = SlackCall(
            "chat.postMessage",
            {"text": notice.text, "unfurl_links": False},
            in_thread_of=ticket_id,
        )
        payloads.append((f"{key}:thread", thread))
    if notice.assignee_slack_id:
        dm = slack_call(
            "chat.postMessage",
            channel=notice.assignee_slack_id,
            text=notice.text,
            unfurl_links=False,
        )
        payloads.append((f"{key}:dm", dm))
    return [
        {
            "workspace_id": workspace_id,
            "idempotency_key": idem,
            "kind": SLACK,
            "ordering_key": f"ticket:{ticket_id}",
            "target": delivery_target(payload),
            "payload": payload_json(payload),
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }
        for idem, payload in payloads
    ]


async def queue_notices(
    *, session: AsyncSession, workspace_id: int, notices: Sequence[Notice], at: datetime
) -> list[Notice]:
    """Claim notices (once per ticket, target, kind and reopening) and queue their messages;
    returns the ones claimed here (another scanner may have claimed the rest first).

    A warning goes to the assignee's DM, or the card's thread when unassigned; a breach to the
    card's thread and the assignee's DM. Claims and messages are written in two statements
    whatever the number of notices.
    """
    if not notices:
        return []
    by_key = {(n.ticket.id, n.target.value, n.kind, n.round): n for n in notices}
    claims = [
        {
            "workspace_id": workspace_id,
            "ticket_id": ticket_id,
            "target": target,
            "kind": kind,
            "round": round_,
            "created_at": at,
        }
        for ticket_id, target, kind, round_ in by_key
    ]
    table: sa.Table = SlaNotice.__table__  # type: ignore[attr-defined]
    stmt = _insert_ignore_many(
        session, SlaNotice, claims, ["ticket_id", "target", "kind", "round"]
    ).returning(table.c.ticket_id, table.c.target, table.c.kind, table.c.round)
    claimed = [by_key[tuple(row)] for row in (await session.execute(stmt)).all()]
    messages = [m for notice in claimed for m in _notice_messages(notice, at)]
    if messages:
        await session.execute(
            _insert_ignore_many(session, OutboxMessage, messages, ["idempotency_key"])
        )
        session.info["outbox_dirty"] = True
    return claimed


async def queue_notice(
    *, session: AsyncSession, workspace_id: int, notice: Notice, at: datetime
) -> bool:
    """Claim and queue one notice; False when it was claimed before."""
    claimed = await queue_notices(
        session=session, workspace_id=workspace_id, notices=[notice], at=at
    )
    return bool(claimed)


def local_day(settings: SlaSettings, at: datetime) -> date:
    """The workspace's date at an instant."""
    return at.astimezone(settings.calendar.zone).date()


# --------------------------------------------------------------------------- settings


class SlaInputError(ValueError):
    """A calendar or policy value that cannot be saved; the message says which and why."""


def check_clock(text: str) -> str:
    """`9:00` -> `09:00`; SlaInputError for anything that is not a time of day (24:00 is)."""
    try:
        hour, minute = (int(part) for part in text.strip().split(":"))
    except ValueError:
        raise SlaInputError(f"{text!r} is not a time like 09:00") from None
    if not (0 <= hour <= 24 and 0 <= minute < 60) or (hour == 24 and minute):
        raise SlaInputError(f"{text!r} is not a time like 09:00")
    return f"{hour:02d}:{minute:02d}"


async def replace_business_hours(
    *, session: AsyncSession, workspace_id: int, hours: dict[int, tuple[str, str]]
) -> None:
    """Set the business hours (weekday 0 = Monday); a weekday not given is closed."""
    for weekday, (start, end) in hours.items():
        if not 0 <= weekday <= 6:
            raise SlaInputError(f"weekday {weekday} is not 0-6")
        if check_clock(end) <= check_clock(start):
            raise SlaInputError(f"hours end ({end}) must be after they start ({start})")
    await session.execute(sa.delete(SlaHours).where(col(SlaHours.workspace_id) == workspace_id))
    for weekday, (start, end) in sorted(hours.items()):
        session.add(
            SlaHours(
                workspace_id=workspace_id,
                weekday=weekday,
                start=check_clock(start),
                end=check_clock(end),
            )
        )
    await session.flush()


async def save_holiday(*, session: AsyncSession, workspace_id: int, day: date, name: str) -> None:
    """Add a holiday (or rename an existing one)."""
    existing = (
        await session.exec(
            select(SlaHoliday).where(SlaHoliday.workspace_id == workspace_id, SlaHoliday.day == day)
        )
    ).first()
    holiday = existing or SlaHoliday(workspace_id=workspace_id, day=day)
    holiday.name = name.strip()[:200]
    session.add(holiday)
    await session.flush()


async def remove_holiday(*, session: AsyncSession, workspace_id: int, day: date) -> None:
    """Remove the workspace's holiday on `day` (nothing when there is none)."""
    await session.execute(
        sa.delete(SlaHoliday).where(
            col(SlaHoliday.workspace_id) == workspace_id, col(SlaHoliday.day) == day
        )
    )


async def list_holidays(*, session: AsyncSession, workspace_id: int) -> list[tuple[date, str]]:
    """The workspace's holidays as (date, name), in date order."""
    rows = await session.exec(
        select(SlaHoliday)
        .where(SlaHoliday.workspace_id == workspace_id)
        .order_by(col(SlaHoliday.day))
    )
    return [(h.day, h.name) for h in rows.all()]


async def set_contract_policy(
    *,
    session: AsyncSession,
    workspace_id: int,
    contract: Contract,
    policy: str | None,
    at: datetime,
) -> bool:
    """Give a contract of the workspace its SLA policy (None: the workspace default); the
    clocks of unfinished tickets follow. False when it already had that policy."""
    if contract.workspace_id != workspace_id or contract.sla_policy == policy:
        return False
    contract.sla_policy = policy
    session.add(contract)
    await session.flush()
    await refresh_open_tickets(session=session, workspace_id=workspace_id, at=at)
    return True


async def save_policy(
    *,
    session: AsyncSession,
    workspace_id: int,
    name: str,
    calendar: str,
    targets: dict[str, PriorityTargets],
) -> int:
    """Create or replace a policy's calendar kind and its targets for the priorities given."""
    name = name.strip()
    if not name or len(name) > 100:
        raise SlaInputError("a policy needs a name of up to 100 characters")
    if calendar not in CALENDAR_KINDS:
        raise SlaInputError(f"calendar {calendar!r} is not business or 24x7")
    clean: dict[str, PriorityTargets] = {}
    for priority, entry in targets.items():
        if priority not in PRIORITIES:
            raise SlaInputError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        try:
            clean[priority] = PriorityTargets(
                check_duration(entry.first_response) if entry.first_response else None,
                check_duration(entry.resolution) if entry.resolution else None,
            )
        except DurationError as exc:
            raise SlaInputError(str(exc)) from None
    policy = (
        await session.exec(
            select(SlaPolicy).where(SlaPolicy.workspace_id == workspace_id, SlaPolicy.name == name)
        )
    ).first() or SlaPolicy(workspace_id=workspace_id, name=name)
    policy.calendar = calendar
    session.add(policy)
    await session.flush()
    assert policy.id is not None
    for priority, entry in clean.items():
        row = (
            await session.exec(
                select(SlaTarget).where(
                    SlaTarget.policy_id == policy.id, SlaTarget.priority == priority
                )
            )
        ).first() or SlaTarget(workspace_id=workspace_id, policy_id=policy.id, priority=priority)
        row.first_response, row.resolution = entry.first_response, entry.resolution
        session.add(row)
    await session.flush()
    return policy.id


async def set_warning_pct(*, session: AsyncSession, workspace_id: int, pct: int) -> None:
    """The share of a target's time at which the assignee is warned (1-99)."""
    if not 1 <= pct <= 99:
        raise SlaInputError("the warning share is a percentage from 1 to 99")
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    workspace.sla_warning_pct = pct
    session.add(workspace)
    await session.flush()


# --------------------------------------------------------------------------- the scan


@dataclass(frozen=True)
class NoticeFacts:
    """What a warning or breach message says (rendered by the caller)."""

    ticket: Ticket
    state: TargetState
    kind: str  # "warning" / "breach"
    zone: ZoneInfo
    now: datetime


@dataclass
class ScanResult:
    checked: int = 0
    queued: int = 0
    more: bool = False
    claimed: list[Notice] = field(default_factory=list)


def notices_due(states: States, now: datetime) -> list[tuple[TargetState, str]]:
    """The notices a ticket's running targets call for at `now`: a breach once past due, a
    warning once past the warning share but not yet due."""
    out: list[tuple[TargetState, str]] = []
    for state in states.values():
        if state.stopped_at is not None or state.paused:
            continue
        if state.status == TargetStatus.BREACHED:
            out.append((state, "breach"))
        elif state.status == TargetStatus.RUNNING and state.warn_at and state.warn_at <= now:
            out.append((state, "warning"))
    return out


async def scan_due(
    *,
    session: AsyncSession,
    workspace_id: int,
    now: datetime,
    render: Callable[[NoticeFacts], str],
    limit: int = 500,
) -> ScanResult:
    """Evaluate the tickets whose next check is due, claim and queue their notices, and move
    their next check on. Several scanners may run at once: each notice is claimed once."""
    stmt = (
        select(TicketSla)
        .where(*_due(workspace_id, now))
        .order_by(col(TicketSla.next_check_at))
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await session.exec(stmt)).all()
    result = ScanResult(checked=len(rows), more=len(rows) == limit)
    if not rows:
        return result
    settings = await sla_settings(session=session, workspace_id=workspace_id)
    ids = [r.ticket_id for r in rows]
    tickets = (
        await session.exec(
            select(Ticket).where(Ticket.workspace_id == workspace_id, col(Ticket.id).in_(ids))
        )
    ).all()
    assignees = {t.assignee_id for t in tickets if t.assignee_id is not None}
    slack_ids = dict(
        (
            await session.exec(
                select(Member.id, Member.slack_user_id).where(
                    Member.workspace_id == workspace_id,
                    col(Member.id).in_(assignees),
                    col(Member.active).is_(True),
                )
            )
        ).all()
    )
    clocks = await ticket_clocks(session=session, workspace_id=workspace_id, tickets=tickets)
    table = TicketSla.__table__  # type: ignore[attr-defined]
    updates: list[dict[str, Any]] = []
    notices: list[Notice] = []
    for ticket in tickets:
        assert ticket.id is not None
        policy_id, states = evaluate_ticket(settings, ticket, clocks[ticket.id], now)
        for state, kind in notices_due(states, now):
            facts = NoticeFacts(ticket, state, kind, settings.calendar.zone, now)
            assignee = slack_ids.get(ticket.assignee_id) if ticket.assignee_id else None
            notices.append(Notice(ticket, state.target, kind, state.round, assignee, render(facts)))
        updates.append(
            {
                "b_ticket_id": ticket.id,
                **_row_values(policy_id, states, now),
                "next_check_at": after_scan(states, now),
            }
        )
    claimed = await queue_notices(
        session=session, workspace_id=workspace_id, notices=notices, at=now
    )
    result.queued = len(claimed)
    result.claimed = claimed
    if updates:
        await session.execute(
            sa.update(table).where(table.c.ticket_id == sa.bindparam("b_ticket_id")),
            updates,
            execution_options={"synchronize_session": False},
        )
    return result


async def sla_inputs(
    *, session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket]
) -> dict[int, SlaInput]:
    """What each ticket's card needs to show its clocks; empty when the workspace has no SLA
    policy (one cheap query then)."""
    if not tickets or not await has_policies(session=session, workspace_id=workspace_id):
        return {}
    settings = await sla_settings(session=session, workspace_id=workspace_id)
    clocks = await ticket_clocks(session=session, workspace_id=workspace_id, tickets=tickets)
    out: dict[int, SlaInput] = {}
    for ticket in tickets:
        assert ticket.id is not None
        found = settings.policy_for(ticket.contract_id)
        policy = found[1] if found is not None else None
        out[ticket.id] = SlaInput(
            clock=clocks[ticket.id],
            policy=policy,
            calendar=settings.calendar,
            warning_pct=settings.warning_pct,
        )
    return out


async def queue_card_refresh(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    key: str,
    text: str,
    blocks: list[dict[str, Any]],
    at: datetime,
) -> int | None:
    """Redraw the ticket's card after a notice (so it shows the warning or breach); keyed by
    the notice, since the ticket's version has not changed. Nothing until the card is posted."""
    if not ticket.card_ts:
        return None
    payload = SlackCall("chat.update", {"text": text, "blocks": blocks}, updates_card_of=ticket.id)
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        key=f"{key}:card",
        payload=payload,
        at=at,
        ordering_key=f"ticket:{ticket.id}",
    )
