"""Tickets: create, change (with optimistic locking), list, and their history.

Every function is keyword-only, takes the caller's `session` and an explicit `at`, and is
scoped by `workspace_id`. A change is one `UPDATE ... WHERE id = ? AND version = ?`; zero rows
means someone changed the ticket first (TicketConflict). Button actions are small deltas and
go through `update_with_retry`, which re-reads and re-applies them; modal submissions carry
the version they were opened at and are refused when it moved.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.directory import match_customers
from models.lifecycle import ACTIVE, check_move
from models.routing import ThreadTarget, card_channel, card_thread
from models.sla import SlaInput
from models.sla_store import refresh_ticket_sla, refresh_tickets_sla, sla_due_between, sla_inputs
from models.sql import dialect, insert_ignore
from models.tables import (
    Contact,
    Contract,
    Customer,
    EventKind,
    Member,
    Priority,
    Ticket,
    TicketEvent,
    TicketStatus,
    TimeEntry,
    Workspace,
)
from models.timelog import retarget_ticket_time

TITLE_MAX = 300
DESCRIPTION_MAX = 20_000
NOTE_HISTORY_MAX = 10


class _Keep:
    """The "leave this field as it is" marker of TicketUpdate (None means "clear it")."""

    _instance: _Keep | None = None

    def __new__(cls) -> _Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "KEEP"

    def __bool__(self) -> bool:
        return False


KEEP = _Keep()


@dataclass(frozen=True)
class TicketCreate:
    """What a person supplies for a new ticket."""

    title: str
    description: str = ""
    priority: str = Priority.NORMAL
    customer_id: int | None = None
    contact_id: int | None = None
    contract_id: int | None = None
    assignee_id: int | None = None
    requester_email: str | None = None
    source_permalink: str | None = None


# The fields a ticket update may set, each tracked in the ticket's history.
_TRACKED = (
    "title",
    "description",
    "priority",
    "status",
    "customer_id",
    "contact_id",
    "contract_id",
    "assignee_id",
)


@dataclass(frozen=True)
class TicketUpdate:
    """A change to a ticket: every field left at KEEP stays as it is."""

    title: str | _Keep = KEEP
    description: str | _Keep = KEEP
    priority: str | _Keep = KEEP
    status: str | _Keep = KEEP
    customer_id: int | _Keep | None = KEEP
    contact_id: int | _Keep | None = KEEP
    contract_id: int | _Keep | None = KEEP
    assignee_id: int | _Keep | None = KEEP

    def fields(self) -> dict[str, Any]:
        """The fields this update sets (KEEP ones left out)."""
        return {n: getattr(self, n) for n in _TRACKED if getattr(self, n) is not KEEP}


class TicketNotFound(LookupError):
    """No such ticket in this workspace."""


class TicketInputError(ValueError):
    """Input that cannot be saved; `field` names the form field it belongs to."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(message)


class TicketConflict(Exception):
    """The ticket changed since it was read; `changed_by` says who changed it last."""

    def __init__(self, *, ticket_id: int, number: int, changed_by: str) -> None:
        self.ticket_id = ticket_id
        self.number = number
        self.changed_by = changed_by
        super().__init__(f"#{number} was changed by {changed_by}; reopen it to see the latest")


@dataclass
class TicketChange:
    """The outcome of an update: the ticket after it, what it was before, and the events."""

    ticket: Ticket
    before: dict[str, Any]
    events: list[TicketEvent] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)

    @property
    def previous_assignee_id(self) -> int | None:
        return self.before.get("assignee_id")

    @property
    def assignee_changed(self) -> bool:
        return self.before.get("assignee_id") != self.ticket.assignee_id

    @property
    def status_changed(self) -> bool:
        return self.before.get("status") != self.ticket.status


@dataclass(frozen=True)
class TicketCard:
    """Everything a ticket card shows, as plain values (what the Block Kit builders take)."""

    id: int
    number: int
    title: str
    description: str
    status: str
    priority: str
    version: int
    created_at: datetime
    customer_id: int | None = None
    customer_name: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    contract_id: int | None = None
    contract_name: str | None = None
    assignee_id: int | None = None
    assignee_slack_id: str | None = None
    assignee_name: str | None = None
    requester_email: str | None = None
    source_permalink: str | None = None
    card_channel: str | None = None
    card_ts: str | None = None
    verified: bool = True  # False: opened by mail whose sender was not authenticated
    sla: SlaInput | None = None  # None: the workspace has no SLA policy


def _snapshot(ticket: Ticket) -> dict[str, Any]:
    return {name: getattr(ticket, name) for name in (*_TRACKED, "version", "number")}


def actor_label(member: Member | None) -> str:
    """How an actor is named in the history ("someone" when unknown)."""
    if member is None:
        return "someone"
    return member.name or member.email or member.slack_user_id or f"member {member.id}"


def clean_title(title: str) -> str:
    """One line, trimmed, within the column's length."""
    flat = " ".join(title.split())
    return flat[:TITLE_MAX]


# -- reading ------------------------------------------------------------------------------


async def get_ticket(*, session: AsyncSession, workspace_id: int, ticket_id: int) -> Ticket:
    """The ticket as stored now (never a stale copy from the session's identity map)."""
    stmt = (
        select(Ticket)
        .where(Ticket.id == ticket_id, Ticket.workspace_id == workspace_id)
        .execution_options(populate_existing=True)
    )
    ticket = (await session.exec(stmt)).first()
    if ticket is None:
        raise TicketNotFound(f"no ticket {ticket_id}")
    return ticket


async def ticket_by_number(
    *, session: AsyncSession, workspace_id: int, number: int, for_update: bool = False
) -> Ticket | None:
    """The ticket numbered `number` in this workspace (as stored now), if any; `for_update`
    locks its row on PostgreSQL until the transaction ends."""
    stmt = (
        select(Ticket)
        .where(Ticket.workspace_id == workspace_id, Ticket.number == number)
        .execution_options(populate_existing=True)
    )
    if for_update and dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def ticket_by_card(
    *, session: AsyncSession, workspace_id: int, channel: str, ts: str
) -> Ticket | None:
    """The ticket whose card is the message `ts` in `channel` (a card thread's parent)."""
    stmt = select(Ticket).where(
        Ticket.workspace_id == workspace_id, Ticket.card_ts == ts, Ticket.card_channel == channel
    )
    return (await session.exec(stmt)).first()


async def last_changed_by(*, session: AsyncSession, workspace_id: int, ticket_id: int) -> str:
    """Who made the latest change to a ticket (notes do not count), for conflict messages."""
    stmt = (
        select(TicketEvent)
        .where(
            TicketEvent.workspace_id == workspace_id,
            TicketEvent.ticket_id == ticket_id,
            TicketEvent.kind != EventKind.NOTE,
        )
        .order_by(col(TicketEvent.id).desc())
        .limit(1)
    )
    event = (await session.exec(stmt)).first()
    return (event.actor_label if event is not None else "") or "someone"


async def load_cards(
    *, session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket]
) -> list[TicketCard]:
    """Card data for several tickets, with one query per related table."""
    customer_ids = {t.customer_id for t in tickets if t.customer_id}
    contact_ids = {t.contact_id for t in tickets if t.contact_id}
    contract_ids = {t.contract_id for t in tickets if t.contract_id}
    member_ids = {t.assignee_id for t in tickets if t.assignee_id}
    customers = await _by_id(session, Customer, workspace_id, customer_ids)
    contacts = await _by_id(session, Contact, workspace_id, contact_ids)
    contracts = await _by_id(session, Contract, workspace_id, contract_ids)
    members = await _by_id(session, Member, workspace_id, member_ids)
    sla = await sla_inputs(session=session, workspace_id=workspace_id, tickets=tickets)
    cards = []
    for t in tickets:
        assert t.id is not None
        customer = customers.get(t.customer_id) if t.customer_id else None
        contact = contacts.get(t.contact_id) if t.contact_id else None
        contract = contracts.get(t.contract_id) if t.contract_id else None
        assignee = members.get(t.assignee_id) if t.assignee_id else None
        cards.append(
            TicketCard(
                id=t.id,
                number=t.number,
                title=t.title,
                description=t.description,
                status=t.status,
                priority=t.priority,
                version=t.version,
                created_at=t.created_at,
                customer_id=t.customer_id,
                customer_name=customer.name if customer else None,
                contact_name=(contact.name or contact.email) if contact else None,
                contact_email=contact.email if contact else None,
                contract_id=t.contract_id,
                contract_name=contract.name if contract else None,
                assignee_id=t.assignee_id,
                assignee_slack_id=assignee.slack_user_id if assignee else None,
                assignee_name=actor_label(assignee) if assignee else None,
                requester_email=t.requester_email,
                source_permalink=t.source_permalink,
                card_channel=t.card_channel,
                card_ts=t.card_ts,
                verified=t.verified,
                sla=sla.get(t.id),
            )
        )
    return cards


async def load_card(*, session: AsyncSession, workspace_id: int, ticket: Ticket) -> TicketCard:
    """Card data for one ticket."""
    return (await load_cards(session=session, workspace_id=workspace_id, tickets=[ticket]))[0]


async def _by_id(
    session: AsyncSession, model: Any, workspace_id: int, ids: set[int]
) -> dict[int, Any]:
    if not ids:
        return {}
    stmt = select(model).where(model.workspace_id == workspace_id, col(model.id).in_(ids))
    return {row.id: row for row in (await session.exec(stmt)).all()}


ListKind = Literal[
    "active", "mine", "open", "waiting", "customer", "unassigned", "overdue", "due-today"
]


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets to list: `kind` plus the member or customer it needs."""

    kind: ListKind = "active"
    member_id: int | None = None
    customer_id: int | None = None
    at: datetime | None = None  # overdue / due-today: now
    until: datetime | None = None  # due-today: the end of the workspace's day


@dataclass(frozen=True)
class TicketPage:
    """One page of a ticket list and the total that matched."""

    cards: list[TicketCard]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _query_filter(query: TicketQuery) -> list[Any]:
    status = col(Ticket.status)
    active = status.in_([s.value for s in ACTIVE])
    if query.kind == "mine":
        return [active, col(Ticket.assignee_id) == query.member_id]
    if query.kind == "open":
        return [status.in_([TicketStatus.NEW.value, TicketStatus.OPEN.value])]
    if query.kind == "waiting":
        return [status == TicketStatus.WAITING.value]
    if query.kind == "customer":
        return [active, col(Ticket.customer_id) == query.customer_id]
    if query.kind == "unassigned":
        return [active, col(Ticket.assignee_id).is_(None)]
    if query.kind == "overdue" and query.at is not None:
        return [active, sla_due_between(None, query.at)]
    if query.kind == "due-today" and query.at is not None and query.until is not None:
        return [active, sla_due_between(query.at, query.until)]
    return [active]


async def list_tickets(
    *,
    session: AsyncSession,
    workspace_id: int,
    query: TicketQuery,
    page: int = 1,
    per_page: int = 10,
) -> TicketPage:
    """One page of tickets (newest first) and how many match in all."""
    where = [col(Ticket.workspace_id) == workspace_id, *_query_filter(query)]
    total = (await session.exec(select(sa.func.count()).select_from(Ticket).where(*where))).one()
    pages = max(1, -(-int(total) // per_page))
    page = min(max(1, page), pages)
    stmt = (
        select(Ticket)
        .where(*where)
        .order_by(col(Ticket.number).desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    tickets = list((await session.exec(stmt)).all())
    cards = await load_cards(session=session, workspace_id=workspace_id, tickets=tickets)
    return TicketPage(cards=cards, total=int(total), page=page, per_page=per_page)


# -- customers, contacts, contracts (what the ticket form offers) -----------------------


async def search_customers(
    *, session: AsyncSession, workspace_id: int, text: str, limit: int = 100
) -> list[Customer]:
    """Active customers whose name contains `text` (case-insensitive), names starting with it
    first."""
    needle = text.strip().lower()
    name = sa.func.lower(col(Customer.name))
    stmt = select(Customer).where(
        Customer.workspace_id == workspace_id, col(Customer.active).is_(True)
    )
    # LIKE wildcards typed by a person are matched literally.
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if needle:
        stmt = stmt.where(name.like(f"%{escaped}%", escape="\\"))
    starts = sa.case((name.like(f"{escaped}%", escape="\\"), 0), else_=1)
    stmt = stmt.order_by(starts, name).limit(limit)
    return list((await session.exec(stmt)).all())


async def customer_by_name(
    *, session: AsyncSession, workspace_id: int, name: str
) -> Customer | None:
    """The one customer a person means by `name`, matched as `/profit` matches
    (models.directory.match_customers): the one so named, else the only one whose name
    contains it; None when none or several do."""
    found = await match_customers(session=session, workspace_id=workspace_id, text=name, limit=2)
    return found[0] if len(found) == 1 else None


async def customer_by_channel(
    *, session: AsyncSession, workspace_id: int, channel: str
) -> Customer | None:
    """The customer whose own Slack channel this is."""
    stmt = select(Customer).where(
        Customer.workspace_id == workspace_id, Customer.slack_channel == channel
    )
    return (await session.exec(stmt)).first()


async def contacts_of(
    *, session: AsyncSession, workspace_id: int, customer_id: int, limit: int = 100
) -> list[Contact]:
    """A customer's contacts, by name."""
    stmt = (
        select(Contact)
        .where(Contact.workspace_id == workspace_id, Contact.customer_id == customer_id)
        .order_by(col(Contact.name), col(Contact.email))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def contact_by_slack_user(
    *, session: AsyncSession, workspace_id: int, slack_user_id: str
) -> Contact | None:
    """The contact who is this Slack user (e.g. in a shared channel), if any."""
    stmt = select(Contact).where(
        Contact.workspace_id == workspace_id, Contact.slack_user_id == slack_user_id
    )
    return (await session.exec(stmt)).first()


def _active_on(day: date) -> list[Any]:
    return [
        col(Contract.start_date) <= day,
        sa.or_(col(Contract.end_date).is_(None), col(Contract.end_date) >= day),
    ]


async def active_contracts(
    *, session: AsyncSession, workspace_id: int, customer_id: int, on: date, limit: int = 100
) -> list[Contract]:
    """The customer's contracts that cover `on` (its start date to its end date, if any)."""
    stmt = (
        select(Contract)
        .where(
            Contract.workspace_id == workspace_id,
            Contract.customer_id == customer_id,
            *_active_on(on),
        )
        .order_by(col(Contract.name))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


def sole_option(options: Sequence[int | None]) -> int | None:
    """The default among a customer's active contracts: the only one; with several (or none)
    the person picks."""
    return options[0] if len(options) == 1 else None


async def default_contract_id(
    *, session: AsyncSession, workspace_id: int, customer_id: int, on: date
) -> int | None:
    """The contract a new ticket of this customer gets: their only active one, else none."""
    contracts = await active_contracts(
        session=session, workspace_id=workspace_id, customer_id=customer_id, on=on, limit=2
    )
    return sole_option([c.id for c in contracts])


async def workspace_today(*, session: AsyncSession, workspace_id: int, at: datetime) -> date:
    """The calendar date of `at` in the workspace's timezone."""
    ws = await session.get(Workspace, workspace_id)
    tz = ZoneInfo(ws.timezone if ws else "UTC")
    return at.astimezone(tz).date()


async def _check_relations(
    session: AsyncSession,
    workspace_id: int,
    values: dict[str, Any],
    changed: set[str],
    at: datetime,
) -> None:
    """Contact and contract must belong to the ticket's customer; a newly chosen contract
    must be active."""
    customer_id = values.get("customer_id")
    if customer_id is not None and "customer_id" in changed:
        customer = await session.get(Customer, customer_id)
        if customer is None or customer.workspace_id != workspace_id:
            raise TicketInputError("customer", "That customer does not exist.")
    contact_id = values.get("contact_id")
    if contact_id is not None and changed & {"contact_id", "customer_id"}:
        contact = await session.get(Contact, contact_id)
        if contact is None or contact.workspace_id != workspace_id:
            raise TicketInputError("contact", "That contact does not exist.")
        if contact.customer_id != customer_id:
            raise TicketInputError("contact", "That contact works for another customer.")
    contract_id = values.get("contract_id")
    if contract_id is not None and changed & {"contract_id", "customer_id"}:
        contract = await session.get(Contract, contract_id)
        if contract is None or contract.workspace_id != workspace_id:
            raise TicketInputError("contract", "That contract does not exist.")
        if contract.customer_id != customer_id:
            raise TicketInputError("contract", "That contract belongs to another customer.")
        if "contract_id" in changed:
            today = await workspace_today(session=session, workspace_id=workspace_id, at=at)
            ends = contract.end_date
            if contract.start_date > today or (ends is not None and ends < today):
                raise TicketInputError("contract", "That contract is not active today.")


def check_new_ticket(data: TicketCreate) -> None:
    """The checks of a new ticket's own fields (TicketInputError names the field); the
    customer, contact, contract and assignee are checked against the database on writing."""
    _check_fields({"title": data.title, "description": data.description, "priority": data.priority})


def _check_fields(values: dict[str, Any]) -> None:
    if "title" in values and not clean_title(values["title"]):
        raise TicketInputError("title", "A ticket needs a title.")
    if "priority" in values:
        try:
            Priority(values["priority"])
        except ValueError:
            raise TicketInputError("priority", "Pick a priority from the list.") from None
    if len(values.get("description") or "") > DESCRIPTION_MAX:
        raise TicketInputError(
            "description",
            f"Keep the description under {DESCRIPTION_MAX:,} characters "
            f"(this one has {len(values.get('description') or ''):,}).",
        )


# -- writing ------------------------------------------------------------------------------


async def next_ticket_number(*, session: AsyncSession, workspace_id: int, count: int = 1) -> int:
    """Take the workspace's next `count` ticket numbers (atomic: one UPDATE ... RETURNING);
    returns the first."""
    table = Workspace.__table__  # type: ignore[attr-defined]
    stmt = (
        sa.update(table)
        .where(table.c.id == workspace_id)
        .values(next_ticket_number=table.c.next_ticket_number + count)
        .returning(table.c.next_ticket_number)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    return int(row[0]) - count


async def create_ticket(
    *,
    session: AsyncSession,
    workspace_id: int,
    data: TicketCreate,
    actor: Member | None,
    at: datetime,
) -> Ticket:
    """Write a ticket and its "created" event (the caller adds the announcement to the outbox
    in the same transaction)."""
    (ticket,) = await create_tickets(
        session=session, workspace_id=workspace_id, items=[(data, actor)], at=at
    )
    return ticket


async def create_tickets(
    *,
    session: AsyncSession,
    workspace_id: int,
    items: Sequence[tuple[TicketCreate, Member | None]],
    at: datetime,
) -> list[Ticket]:
    """Write tickets, numbered in order, each with its "created" event, in a few statements.

    Every item is checked as `create_ticket` checks one (TicketInputError names the field);
    nothing is written unless all of them pass.
    """
    checked: list[tuple[TicketCreate, Member | None, str | None]] = []
    for data, actor in items:
        values = {
            "title": data.title,
            "description": data.description,
            "priority": data.priority,
            "customer_id": data.customer_id,
            "contact_id": data.contact_id,
            "contract_id": data.contract_id,
            "assignee_id": data.assignee_id,
        }
        _check_fields(values)
        await _check_relations(session, workspace_id, values, set(values), at)
        requester = data.requester_email
        if requester is None and data.contact_id is not None:
            contact = await session.get(Contact, data.contact_id)
            requester = contact.email if contact is not None else None
        checked.append((data, actor, requester))
    if not checked:
        return []
    first = await next_ticket_number(session=session, workspace_id=workspace_id, count=len(checked))
    tickets = [
        Ticket(
            workspace_id=workspace_id,
            number=first + i,
            title=clean_title(data.title),
            description=data.description,
            status=TicketStatus.OPEN if data.assignee_id is not None else TicketStatus.NEW,
            priority=Priority(data.priority),
            customer_id=data.customer_id,
            contact_id=data.contact_id,
            contract_id=data.contract_id,
            assignee_id=data.assignee_id,
            created_by_id=actor.id if actor else None,
            requester_email=requester,
            source_permalink=data.source_permalink,
            version=1,
            created_at=at,
            updated_at=at,
        )
        for i, (data, actor, requester) in enumerate(checked)
    ]
    session.add_all(tickets)
    await session.flush()
    ids = [ticket.id for ticket in tickets if ticket.id is not None]
    assert len(ids) == len(tickets)
    # The events are not needed as objects: one bulk insert.
    await session.execute(
        sa.insert(TicketEvent),
        [
            {
                "workspace_id": workspace_id,
                "ticket_id": ticket_id,
                "kind": EventKind.CREATED,
                "actor_id": actor.id if actor else None,
                "actor_label": actor_label(actor),
                "body": ticket.title,
                "data": {
                    "number": ticket.number,
                    "status": TicketStatus(ticket.status).value,
                    "priority": ticket.priority,
                },
                "created_at": at,
            }
            for ticket_id, ticket, (_data, actor, _requester) in zip(
                ids, tickets, checked, strict=True
            )
        ],
    )
    await refresh_tickets_sla(session=session, workspace_id=workspace_id, tickets=tickets, at=at)
    return tickets


async def update_ticket(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    expected_version: int,
    changes: TicketUpdate,
    actor: Member | None,
    at: datetime,
) -> TicketChange:
    """Apply `changes` if the ticket is still at `expected_version`.

    Raises TicketConflict when it is not, LifecycleError for an illegal status move and
    TicketInputError for values that cannot be saved. Fields equal to the stored value are
    no change; a change with nothing in it writes nothing. Assigning a new ticket opens it.
    """
    ticket = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
    if ticket.version != expected_version:
        raise TicketConflict(
            ticket_id=ticket_id,
            number=ticket.number,
            changed_by=await last_changed_by(
                session=session, workspace_id=workspace_id, ticket_id=ticket_id
            ),
        )
    before = _snapshot(ticket)
    wanted = changes.fields()
    if "title" in wanted:
        wanted["title"] = clean_title(str(wanted["title"]))
    _check_fields(wanted)
    diff = {k: v for k, v in wanted.items() if before[k] != v}
    if (
        diff.get("assignee_id") is not None
        and ticket.status == TicketStatus.NEW
        and "status" not in diff
    ):
        diff["status"] = TicketStatus.OPEN.value
    if "status" in diff:
        diff["status"] = check_move(ticket.number, ticket.status, str(diff["status"])).value
    if not diff:
        return TicketChange(ticket=ticket, before=before)
    merged = {**before, **diff}
    await _check_relations(session, workspace_id, merged, set(diff), at)

    values: dict[str, Any] = dict(diff)
    if "status" in diff:
        values["closed_at"] = at if diff["status"] == TicketStatus.CLOSED else None
    table = Ticket.__table__  # type: ignore[attr-defined]
    result = await session.execute(
        sa.update(table)
        .where(
            table.c.id == ticket_id,
            table.c.workspace_id == workspace_id,
            table.c.version == expected_version,
        )
        .values(**values, version=expected_version + 1, updated_at=at)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise TicketConflict(
            ticket_id=ticket_id,
            number=ticket.number,
            changed_by=await last_changed_by(
                session=session, workspace_id=workspace_id, ticket_id=ticket_id
            ),
        )
    events = _events_for(workspace_id, ticket_id, before, diff, actor, at)
    for event in events:
        session.add(event)
    await session.flush()
    if "status" in diff or "priority" in diff or "contract_id" in diff:
        await refresh_ticket_sla(
            session=session, workspace_id=workspace_id, ticket_id=ticket_id, at=at
        )
    if "customer_id" in diff or "contract_id" in diff:
        # Time already logged follows the ticket, so its customer's figures stay right.
        await retarget_ticket_time(
            session=session,
            workspace_id=workspace_id,
            ticket_id=ticket_id,
            customer_id=merged["customer_id"],
            contract_id=merged["contract_id"],
            at=at,
        )
    after = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
    return TicketChange(ticket=after, before=before, events=events)


def _events_for(
    workspace_id: int,
    ticket_id: int,
    before: dict[str, Any],
    diff: dict[str, Any],
    actor: Member | None,
    at: datetime,
) -> list[TicketEvent]:
    def event(kind: EventKind, data: dict[str, Any], body: str = "") -> TicketEvent:
        return TicketEvent(
            workspace_id=workspace_id,
            ticket_id=ticket_id,
            kind=kind,
            actor_id=actor.id if actor else None,
            actor_label=actor_label(actor),
            body=body,
            data={**data, "version": before["version"] + 1},
            created_at=at,
        )

    events = []
    edits = {k: [before[k], v] for k, v in diff.items() if k not in ("status", "assignee_id")}
    if edits:
        events.append(event(EventKind.EDITED, {"changes": edits}))
    if "assignee_id" in diff:
        events.append(
            event(EventKind.ASSIGNMENT, {"from": before["assignee_id"], "to": diff["assignee_id"]})
        )
    if "status" in diff:
        events.append(event(EventKind.STATUS, {"from": before["status"], "to": diff["status"]}))
    return events


Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
AfterChange = Callable[[AsyncSession, TicketChange], Awaitable[None]]


async def update_with_retry(
    *,
    transaction: Transaction,
    workspace_id: int,
    ticket_id: int,
    delta: Callable[[Ticket], TicketUpdate | Awaitable[TicketUpdate]],
    actor: Member | None,
    at: datetime,
    after: AfterChange | None = None,
    attempts: int = 6,
) -> TicketChange:
    """Apply a small change computed from the current ticket, retrying on conflict.

    Each attempt is its own transaction: read the ticket, compute `delta(ticket)` (a value or
    an awaitable), update at
    the version just read, and run `after` (e.g. queue the card update) in the same
    transaction. Two people changing one ticket at once both get their change in.
    """
    for attempt in range(attempts):
        try:
            async with transaction() as session:
                ticket = await get_ticket(
                    session=session, workspace_id=workspace_id, ticket_id=ticket_id
                )
                changes = delta(ticket)
                if inspect.isawaitable(changes):
                    changes = await changes
                change = await update_ticket(
                    session=session,
                    workspace_id=workspace_id,
                    ticket_id=ticket_id,
                    expected_version=ticket.version,
                    changes=changes,
                    actor=actor,
                    at=at,
                )
                if change.changed and after is not None:
                    await after(session, change)
            return change
        except TicketConflict:
            if attempt == attempts - 1:
                raise
            # Jittered back-off so two retrying writers do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
    raise AssertionError("unreachable")


# -- notes (replies in a card's thread) --------------------------------------------------


async def add_note(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    actor: Member | None,
    body: str,
    slack_ts: str,
    at: datetime,
) -> int | None:
    """Record an internal note from a Slack message; None when that message is already one."""
    return await insert_ignore(
        session,
        TicketEvent,
        {
            "workspace_id": workspace_id,
            "ticket_id": ticket_id,
            "kind": EventKind.NOTE.value,
            "actor_id": actor.id if actor else None,
            "actor_label": actor_label(actor) if actor else "someone",
            "body": body,
            "data": {},
            "slack_ts": slack_ts,
            "deleted": False,
            "created_at": at,
        },
        conflict=["workspace_id", "slack_ts"],
    )


async def _note(session: AsyncSession, workspace_id: int, slack_ts: str) -> TicketEvent | None:
    stmt = (
        select(TicketEvent)
        .where(
            TicketEvent.workspace_id == workspace_id,
            TicketEvent.slack_ts == slack_ts,
            TicketEvent.kind == EventKind.NOTE,
        )
        .execution_options(populate_existing=True)
    )
    return (await session.exec(stmt)).first()


async def edit_note(
    *, session: AsyncSession, workspace_id: int, slack_ts: str, body: str, at: datetime
) -> bool:
    """Replace a note's text, keeping the earlier versions in its data; False if no note."""
    note = await _note(session, workspace_id, slack_ts)
    if note is None:
        return False
    if note.body == body:
        return True
    history = list((note.data or {}).get("history", []))
    history.append({"body": note.body, "until": at.isoformat()})
    note.data = {
        **(note.data or {}),
        "history": history[-NOTE_HISTORY_MAX:],
        "edited_at": at.isoformat(),
    }
    note.body = body
    session.add(note)
    await session.flush()
    return True


async def delete_note(
    *, session: AsyncSession, workspace_id: int, slack_ts: str, at: datetime
) -> bool:
    """Mark a note deleted (it stays in the history as deleted); False if no note."""
    note = await _note(session, workspace_id, slack_ts)
    if note is None:
        return False
    if not note.deleted:
        note.deleted = True
        note.data = {**(note.data or {}), "deleted_at": at.isoformat()}
        session.add(note)
        await session.flush()
    return True


async def ticket_events(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> list[TicketEvent]:
    """A ticket's history, oldest first."""
    stmt = (
        select(TicketEvent)
        .where(TicketEvent.workspace_id == workspace_id, TicketEvent.ticket_id == ticket_id)
        .order_by(col(TicketEvent.id))
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


# -- App Home -----------------------------------------------------------------------------


def iso_week(day: date) -> tuple[date, date]:
    """Monday and Sunday of the ISO week `day` is in."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


async def minutes_logged(
    *, session: AsyncSession, workspace_id: int, member_id: int, start: date, end: date
) -> int:
    """Minutes a member logged with work dates from `start` to `end` (inclusive), in SQL."""
    stmt = select(sa.func.coalesce(sa.func.sum(TimeEntry.minutes), 0)).where(
        TimeEntry.workspace_id == workspace_id,
        TimeEntry.member_id == member_id,
        col(TimeEntry.work_date) >= start,
        col(TimeEntry.work_date) <= end,
    )
    return int((await session.exec(stmt)).one())


@dataclass(frozen=True)
class HomeData:
    """What one member's App Home shows."""

    member_name: str
    mine: TicketPage
    waiting: TicketPage
    unassigned: TicketPage
    week_start: date
    minutes_this_week: int
    # Not on the support team (a guest, a Slack Connect user): only tickets they opened.
    outsider: bool = False


async def home_data(
    *, session: AsyncSession, workspace_id: int, member: Member, at: datetime, limit: int = 10
) -> HomeData:
    """My open tickets, mine waiting on the customer, unassigned ones, and my hours this
    (ISO, workspace-timezone) week. For a member not on the support team (inactive): only the
    tickets they opened, and nobody else's."""
    assert member.id is not None
    outsider = not member.active
    working = [TicketStatus.NEW.value, TicketStatus.OPEN.value]
    mine = await _assigned(session, workspace_id, member.id, working, limit, opened=outsider)
    waiting = await _assigned(
        session, workspace_id, member.id, [TicketStatus.WAITING.value], limit, opened=outsider
    )
    if outsider:
        unassigned = TicketPage(cards=[], total=0, page=1, per_page=limit)
    else:
        unassigned = await list_tickets(
            session=session,
            workspace_id=workspace_id,
            query=TicketQuery(kind="unassigned"),
            per_page=limit,
        )
    today = await workspace_today(session=session, workspace_id=workspace_id, at=at)
    monday, sunday = iso_week(today)
    minutes = await minutes_logged(
        session=session, workspace_id=workspace_id, member_id=member.id, start=monday, end=sunday
    )
    return HomeData(
        member_name=actor_label(member),
        mine=mine,
        waiting=waiting,
        unassigned=unassigned,
        week_start=monday,
        minutes_this_week=minutes,
        outsider=outsider,
    )


async def _assigned(
    session: AsyncSession,
    workspace_id: int,
    member_id: int,
    statuses: list[str],
    limit: int,
    *,
    opened: bool = False,
) -> TicketPage:
    """Tickets assigned to the member (or, with `opened`, the ones they opened)."""
    owner = col(Ticket.created_by_id) if opened else col(Ticket.assignee_id)
    where = [
        col(Ticket.workspace_id) == workspace_id,
        owner == member_id,
        col(Ticket.status).in_(statuses),
    ]
    total = (await session.exec(select(sa.func.count()).select_from(Ticket).where(*where))).one()
    stmt = select(Ticket).where(*where).order_by(col(Ticket.number).desc()).limit(limit)
    tickets = list((await session.exec(stmt)).all())
    cards = await load_cards(session=session, workspace_id=workspace_id, tickets=tickets)
    return TicketPage(cards=cards, total=int(total), page=1, per_page=limit)


# -- where the ticket's card is ------------------------------------------------------------


@dataclass(frozen=True)
class CardLocation:
    """Where a ticket's card was posted (both None until the post is delivered)."""

    channel: str | None
    ts: str | None

    @property
    def posted(self) -> bool:
        return bool(self.channel and self.ts)


async def card_location(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> CardLocation | None:
    """The ticket's card location; None when the ticket is gone."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None or ticket.workspace_id != workspace_id:
        return None
    return CardLocation(ticket.card_channel, ticket.card_ts)


async def store_card_location(
    *, session: AsyncSession, workspace_id: int, ticket_id: int, channel: str, ts: str
) -> None:
    """Record where the ticket's card was posted (so later updates edit it in place)."""
    await session.execute(
        sa.update(Ticket)
        .where(col(Ticket.id) == ticket_id, col(Ticket.workspace_id) == workspace_id)
        .values(card_channel=channel, card_ts=ts)
    )


async def card_thread_target(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> ThreadTarget | None:
    """Where a post in the ticket card's thread goes now (models.routing.card_thread)."""
    location = await card_location(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
    workspace = await session.get(Workspace, workspace_id)
    return card_thread(
        card_channel=location.channel if location else None,
        card_ts=location.ts if location else None,
        triage_channel=workspace.triage_channel if workspace else None,
    )


async def announce_channel(
    *, session: AsyncSession, workspace_id: int, ticket: Ticket, creator_slack_id: str | None
) -> str | None:
    """Where a new ticket's card is posted (models.routing.card_channel)."""
    (channel,) = await announce_channels(
        session=session, workspace_id=workspace_id, tickets=[(ticket, creator_slack_id)]
    )
    return channel


async def announce_channels(
    *,
    session: AsyncSession,
    workspace_id: int,
    tickets: Sequence[tuple[Ticket, str | None]],
) -> list[str | None]:
    """`announce_channel` for several new tickets (each with its creator's Slack id)."""
    workspace = await session.get(Workspace, workspace_id)
    customers = await _by_id(
        session, Customer, workspace_id, {t.customer_id for t, _ in tickets if t.customer_id}
    )
    out: list[str | None] = []
    for ticket, creator_slack_id in tickets:
        customer = customers.get(ticket.customer_id) if ticket.customer_id else None
        out.append(
            card_channel(
                # A ticket from an unauthenticated mail never opens in a customer's own channel.
                customer_channel=customer.slack_channel if customer and ticket.verified else None,
                triage_channel=workspace.triage_channel if workspace else None,
                creator_slack_id=creator_slack_id,
                internal_channel=customer.internal_channel if customer else None,
            )
        )
    return out


async def customer_by_id(
    *, session: AsyncSession, workspace_id: int, customer_id: int | None
) -> Customer | None:
    """The workspace's customer with this id, or None (also for no id)."""
    if customer_id is None:
        return None
    customer = await session.get(Customer, customer_id)
    return customer if customer is not None and customer.workspace_id == workspace_id else None


async def contract_by_id(
    *, session: AsyncSession, workspace_id: int, contract_id: int
) -> Contract | None:
    """The workspace's contract with this id, or None."""
    contract = await session.get(Contract, contract_id)
    return contract if contract is not None and contract.workspace_id == workspace_id else None


async def ticket_by_id(
    *, session: AsyncSession, workspace_id: int, ticket_id: int
) -> Ticket | None:
    """The workspace's ticket with this id, or None (get_ticket raises instead)."""
    ticket = await session.get(Ticket, ticket_id)
    return ticket if ticket is not None and ticket.workspace_id == workspace_id else None


async def created_event(*, session: AsyncSession, ticket_id: int) -> TicketEvent | None:
    """The "created" entry of a ticket's history (it records where the ticket came from)."""
    stmt = select(TicketEvent).where(
        TicketEvent.ticket_id == ticket_id, TicketEvent.kind == EventKind.CREATED
    )
    return (await session.exec(stmt)).first()


async def event_by_slack_ts(
    *, session: AsyncSession, workspace_id: int, slack_ts: str, kind: str | None = None
) -> TicketEvent | None:
    """The history entry recorded for this Slack message (of `kind`, when given), if any."""
    stmt = select(TicketEvent).where(
        TicketEvent.workspace_id == workspace_id, TicketEvent.slack_ts == slack_ts
    )
    if kind is not None:
        stmt = stmt.where(TicketEvent.kind == kind)
    return (await session.exec(stmt)).first()


async def names_by_id(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_ids: Iterable[int] = (),
    customer_ids: Iterable[int] = (),
    contract_ids: Iterable[int] = (),
) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """Labels of tickets (`#12 Title`), customer names and contract names, by id."""
    tickets = await session.exec(
        select(Ticket).where(
            Ticket.workspace_id == workspace_id, col(Ticket.id).in_(list(ticket_ids))
        )
    )
    customers = await session.exec(
        select(Customer).where(
            Customer.workspace_id == workspace_id, col(Customer.id).in_(list(customer_ids))
        )
    )
    contracts = await session.exec(
        select(Contract).where(
            Contract.workspace_id == workspace_id, col(Contract.id).in_(list(contract_ids))
        )
    )
    return (
        {t.id: f"#{t.number} {t.title}" for t in tickets.all() if t.id is not None},
        {c.id: c.name for c in customers.all() if c.id is not None},
        {k.id: k.name for k in contracts.all() if k.id is not None},
    )
