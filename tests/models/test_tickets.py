"""Ticket persistence on every backend: numbering, optimistic locking, history, notes, lists,
and the outbox rows that announce and update a card."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import make_sessionmaker
from handlers import ticket_notifications as ticket_notify
from handlers.blocks.tickets import build_ticket_card, card_text
from models.directory import match_customers
from models.lifecycle import LifecycleError
from models.tables import (
    Contact,
    Contract,
    Customer,
    EventKind,
    Member,
    OutboxMessage,
    Priority,
    Role,
    StalePeriod,
    Ticket,
    TicketEvent,
    TicketStatus,
    TimeEntry,
    Workspace,
)
from models.tickets import (
    TicketChange,
    TicketConflict,
    TicketCreate,
    TicketInputError,
    TicketQuery,
    TicketUpdate,
    active_contracts,
    add_note,
    create_ticket,
    customer_by_name,
    delete_note,
    edit_note,
    get_ticket,
    home_data,
    iso_week,
    last_changed_by,
    list_tickets,
    load_card,
    minutes_logged,
    search_customers,
    ticket_by_card,
    ticket_events,
    update_ticket,
    update_with_retry,
)

AT = datetime(2025, 6, 4, 9, 30, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


def transaction_factory(sessions: async_sessionmaker[AsyncSession]) -> Any:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with sessions() as session, session.begin():
            yield session

    return transaction


async def add(sessions: async_sessionmaker[AsyncSession], *rows: Any) -> list[Any]:
    async with sessions() as session, session.begin():
        for row in rows:
            session.add(row)
            await session.flush()
    return list(rows)


async def member(sessions: Any, ws: Workspace, slack_id: str, name: str) -> Member:
    assert ws.id is not None
    (m,) = await add(
        sessions, Member(workspace_id=ws.id, slack_user_id=slack_id, name=name, role=Role.AGENT)
    )
    return m


async def customer_with_contract(sessions: Any, ws: Workspace, name: str = "Acme GmbH") -> Any:
    assert ws.id is not None
    (cust,) = await add(sessions, Customer(workspace_id=ws.id, name=name))
    contact, contract, old = await add(
        sessions,
        Contact(workspace_id=ws.id, customer_id=cust.id, email=f"ann@{cust.id}.test", name="Ann"),
        Contract(
            workspace_id=ws.id,
            customer_id=cust.id,
            name="Support",
            kind="hourly",
            start_date=date(2025, 1, 1),
        ),
        Contract(
            workspace_id=ws.id,
            customer_id=cust.id,
            name="Old",
            kind="hourly",
            start_date=date(2024, 1, 1),
            end_date=date(2024, 12, 31),
        ),
    )
    return cust, contact, contract, old


async def new_ticket(
    sessions: Any, ws: Workspace, actor: Member | None = None, **kw: Any
) -> Ticket:
    assert ws.id is not None
    async with sessions() as session, session.begin():
        ticket = await create_ticket(
            session=session,
            workspace_id=ws.id,
            data=TicketCreate(title=kw.pop("title", "Printer jams"), **kw),
            actor=actor,
            at=AT,
        )
    return ticket


async def events_of(sessions: Any, ws: Workspace, ticket_id: int) -> list[TicketEvent]:
    assert ws.id is not None
    async with sessions() as session:
        return await ticket_events(session=session, workspace_id=ws.id, ticket_id=ticket_id)


# -- creating --------------------------------------------------------------------------------


async def test_create_numbers_tickets_per_workspace_and_records_the_event(
    sessions: Any, workspace: Workspace
) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    first = await new_ticket(sessions, workspace, alice, title="  Printer   jams \n on 3rd ")
    second = await new_ticket(sessions, workspace, alice, title="VPN down")
    other_ws = (await add(sessions, Workspace(team_id="T-OTHER")))[0]
    elsewhere = await new_ticket(sessions, other_ws, None, title="Mail")
    assert (first.number, second.number, elsewhere.number) == (1, 2, 1)
    assert first.title == "Printer jams on 3rd"
    assert first.status == TicketStatus.NEW and first.version == 1
    assert first.created_by_id == alice.id
    (event,) = await events_of(sessions, workspace, first.id)  # type: ignore[arg-type]
    assert event.kind == EventKind.CREATED and event.actor_label == "Alice"
    async with sessions() as session:
        ws = await session.get(Workspace, workspace.id)
        assert ws is not None and ws.next_ticket_number == 3


async def test_numbers_stay_unique_when_tickets_are_created_at_once(
    sessions: Any, workspace: Workspace
) -> None:
    tickets = await asyncio.gather(
        *(new_ticket(sessions, workspace, title=f"T{i}") for i in range(6))
    )
    assert sorted(t.number for t in tickets) == [1, 2, 3, 4, 5, 6]


async def test_an_assigned_ticket_starts_open_and_takes_the_contacts_email(
    sessions: Any, workspace: Workspace
) -> None:
    bob = await member(sessions, workspace, "UBOB", "Bob")
    cust, contact, contract, _old = await customer_with_contract(sessions, workspace)
    ticket = await new_ticket(
        sessions,
        workspace,
        bob,
        customer_id=cust.id,
        contact_id=contact.id,
        contract_id=contract.id,
        assignee_id=bob.id,
        priority=Priority.HIGH,
    )
    assert ticket.status == TicketStatus.OPEN
    assert ticket.requester_email == contact.email
    async with sessions() as session:
        card = await load_card(session=session, workspace_id=workspace.id, ticket=ticket)
    assert (card.customer_name, card.contract_name, card.assignee_slack_id) == (
        "Acme GmbH",
        "Support",
        "UBOB",
    )
    assert card.contact_name == "Ann" and card.priority == "high"


@pytest.mark.parametrize("problem", ["foreign_contact", "ended_contract", "no_title", "priority"])
async def test_inconsistent_input_is_refused_naming_the_field(
    sessions: Any, workspace: Workspace, problem: str
) -> None:
    cust, _contact, _contract, old = await customer_with_contract(sessions, workspace)
    _other, other_contact, _c, _o = await customer_with_contract(sessions, workspace, "Beta")
    kw: dict[str, Any] = {"customer_id": cust.id}
    expected = {
        "foreign_contact": "contact",
        "ended_contract": "contract",
        "no_title": "title",
        "priority": "priority",
    }[problem]
    if problem == "foreign_contact":
        kw["contact_id"] = other_contact.id
    elif problem == "ended_contract":
        kw["contract_id"] = old.id
    elif problem == "no_title":
        kw["title"] = "   "
    else:
        kw["priority"] = "whenever"
    with pytest.raises(TicketInputError) as info:
        await new_ticket(sessions, workspace, **kw)
    assert info.value.field == expected
    async with sessions() as session:
        count = (await session.exec(select(sa.func.count()).select_from(Ticket))).one()
    assert count == 0, "a refused ticket writes nothing"


# -- changing --------------------------------------------------------------------------------


async def test_update_records_one_event_per_kind_and_bumps_the_version(
    sessions: Any, workspace: Workspace
) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    ticket = await new_ticket(sessions, workspace, alice)
    async with sessions() as session, session.begin():
        change = await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=1,
            changes=TicketUpdate(
                title="Printer jams badly", priority="urgent", assignee_id=alice.id
            ),
            actor=alice,
            at=AT + timedelta(minutes=5),
        )
    assert change.changed and change.assignee_changed and change.status_changed
    assert change.ticket.version == 2
    assert change.ticket.status == TicketStatus.OPEN, "assigning a new ticket opens it"
    kinds = [e.kind for e in await events_of(sessions, workspace, ticket.id)]
    assert kinds == ["created", "edited", "assignment", "status"]
    edited = (await events_of(sessions, workspace, ticket.id))[1]
    assert edited.data["changes"] == {
        "title": ["Printer jams", "Printer jams badly"],
        "priority": ["normal", "urgent"],
    }


async def test_an_update_that_changes_nothing_writes_nothing(
    sessions: Any, workspace: Workspace
) -> None:
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        change = await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=1,
            changes=TicketUpdate(title="Printer jams", priority="normal"),
            actor=None,
            at=AT,
        )
    assert not change.changed and change.ticket.version == 1


async def test_closing_sets_closed_at_and_reopening_clears_it(
    sessions: Any, workspace: Workspace
) -> None:
    ticket = await new_ticket(sessions, workspace)
    for version, status in ((1, "closed"), (2, "open")):
        async with sessions() as session, session.begin():
            change = await update_ticket(
                session=session,
                workspace_id=workspace.id,
                ticket_id=ticket.id,
                expected_version=version,
                changes=TicketUpdate(status=status),
                actor=None,
                at=AT,
            )
        if status == "closed":
            assert change.ticket.closed_at == AT
    assert change.ticket.closed_at is None and change.ticket.status == "open"


async def test_an_illegal_status_move_raises_and_changes_nothing(
    sessions: Any, workspace: Workspace
) -> None:
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=1,
            changes=TicketUpdate(status="closed"),
            actor=None,
            at=AT,
        )
    with pytest.raises(LifecycleError, match=f"can't move #{ticket.number} from closed to waiting"):
        async with sessions() as session, session.begin():
            await update_ticket(
                session=session,
                workspace_id=workspace.id,
                ticket_id=ticket.id,
                expected_version=2,
                changes=TicketUpdate(status="waiting"),
                actor=None,
                at=AT,
            )
    async with sessions() as session:
        stored = await get_ticket(session=session, workspace_id=workspace.id, ticket_id=ticket.id)
    assert (stored.status, stored.version) == ("closed", 2)


async def test_a_stale_version_is_refused_naming_who_changed_it(
    sessions: Any, workspace: Workspace
) -> None:
    bob = await member(sessions, workspace, "UBOB", "Bob")
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=1,
            changes=TicketUpdate(priority="high"),
            actor=bob,
            at=AT,
        )
    with pytest.raises(TicketConflict) as info:
        async with sessions() as session, session.begin():
            await update_ticket(
                session=session,
                workspace_id=workspace.id,
                ticket_id=ticket.id,
                expected_version=1,
                changes=TicketUpdate(title="Mine"),
                actor=None,
                at=AT,
            )
    assert info.value.changed_by == "Bob"
    assert "changed by Bob" in str(info.value) and "reopen" in str(info.value)


async def test_the_version_check_is_in_the_update_itself(
    sessions: Any, workspace: Workspace
) -> None:
    """Two sessions read version 1; the second writer's UPDATE matches no row."""
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=1,
            changes=TicketUpdate(priority="low"),
            actor=None,
            at=AT,
        )
    # Simulate the reader who saw version 1 just before: skip the early check by calling the
    # guarded UPDATE path directly with a ticket whose version the session believes is 1.
    async with sessions() as session, session.begin():
        table = Ticket.__table__  # type: ignore[attr-defined]
        result = await session.execute(
            sa.update(table)
            .where(table.c.id == ticket.id, table.c.version == 1)
            .values(title="lost", version=2)
        )
        assert result.rowcount == 0  # type: ignore[attr-defined]


async def test_two_concurrent_button_changes_both_survive_and_the_last_card_is_final(
    sessions: Any, workspace: Workspace, backend: str
) -> None:
    """Real concurrency: two transactions on two connections, started together."""
    alice = await member(sessions, workspace, "UALICE", "Alice")
    bob = await member(sessions, workspace, "UBOB", "Bob")
    ticket = await new_ticket(sessions, workspace, alice)
    async with sessions() as session, session.begin():
        await ticket_notify.announce_card(
            session=session,
            workspace_id=workspace.id,
            ticket=ticket,
            channel="CTRIAGE",
            text="t",
            blocks=[],
            at=AT,
        )
    transaction = transaction_factory(sessions)
    read_v1 = asyncio.Event()
    readers = 0
    opened = 0

    @asynccontextmanager
    async def counted() -> AsyncIterator[AsyncSession]:
        nonlocal opened
        opened += 1
        async with transaction() as session:
            yield session

    async def waiting(update: TicketUpdate, ticket: Ticket) -> TicketUpdate:
        # Both first attempts read the ticket before either writes (where the database lets
        # two writers in at once: SQLite's BEGIN IMMEDIATE admits one, so the wait times out).
        nonlocal readers
        readers += 1
        if readers <= 2:
            if readers == 2:
                read_v1.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_v1.wait(), 0.3)
        return update

    async def after(session: AsyncSession, change: TicketChange) -> None:
        card = await load_card(session=session, workspace_id=workspace.id, ticket=change.ticket)
        await ticket_notify.update_card(
            session=session,
            workspace_id=workspace.id,
            ticket=change.ticket,
            text=card_text(card),
            blocks=build_ticket_card(card, now=AT),
            at=AT,
        )

    def run(actor: Member, update: TicketUpdate) -> Any:
        return update_with_retry(
            transaction=counted,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            delta=lambda t: waiting(update, t),
            actor=actor,
            at=AT,
            after=after,
        )

    await asyncio.gather(
        run(alice, TicketUpdate(priority="urgent")), run(bob, TicketUpdate(assignee_id=bob.id))
    )
    async with sessions() as session:
        final = await get_ticket(session=session, workspace_id=workspace.id, ticket_id=ticket.id)
        rows = (
            await session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.ordering_key == ticket_notify.ordering_key(ticket.id))
                .order_by(col(OutboxMessage.id))
            )
        ).all()
    assert final.priority == "urgent" and final.assignee_id == bob.id
    assert final.version == 3
    # On PostgreSQL both read version 1, so the later writer conflicts and retries once;
    # SQLite's BEGIN IMMEDIATE queues the second transaction until the first commits.
    assert opened == (3 if backend == "postgres" else 2)
    kinds = sorted(e.kind for e in await events_of(sessions, workspace, ticket.id))
    assert kinds == ["assignment", "created", "edited", "status"]
    updates = [r for r in rows if r.payload.get("card_of_ticket") == ticket.id]
    assert len(updates) == 2
    last = str(updates[-1].payload["args"]["blocks"])
    assert "Urgent" in last and "<@UBOB>" in last, "the last card update shows both changes"


async def test_many_concurrent_changes_all_land(sessions: Any, workspace: Workspace) -> None:
    ticket = await new_ticket(sessions, workspace)
    transaction = transaction_factory(sessions)
    titles = [f"Title {i}" for i in range(5)]

    def run(title: str) -> Any:
        return update_with_retry(
            transaction=transaction,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            delta=lambda _t: TicketUpdate(title=title),
            actor=None,
            at=AT,
            attempts=10,
        )

    await asyncio.gather(*(run(t) for t in titles))
    edits = [e for e in await events_of(sessions, workspace, ticket.id) if e.kind == "edited"]
    assert sorted(e.data["changes"]["title"][1] for e in edits) == titles
    async with sessions() as session:
        final = await get_ticket(session=session, workspace_id=workspace.id, ticket_id=ticket.id)
    assert final.version == 6 and final.title == edits[-1].data["changes"]["title"][1]


# -- notes -----------------------------------------------------------------------------------


async def test_notes_are_idempotent_editable_and_deletable(
    sessions: Any, workspace: Workspace
) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    ticket = await new_ticket(sessions, workspace)
    for expected_new in (True, False):
        async with sessions() as session, session.begin():
            new_id = await add_note(
                session=session,
                workspace_id=workspace.id,
                ticket_id=ticket.id,
                actor=alice,
                body="Checked the toner",
                slack_ts="1700000000.000200",
                at=AT,
            )
        assert (new_id is not None) is expected_new
    async with sessions() as session, session.begin():
        assert await edit_note(
            session=session,
            workspace_id=workspace.id,
            slack_ts="1700000000.000200",
            body="Checked the toner and drum",
            at=AT,
        )
        assert await delete_note(
            session=session, workspace_id=workspace.id, slack_ts="1700000000.000200", at=AT
        )
        assert not await edit_note(
            session=session, workspace_id=workspace.id, slack_ts="9.9", body="x", at=AT
        )
    notes = [e for e in await events_of(sessions, workspace, ticket.id) if e.kind == "note"]
    assert len(notes) == 1
    note = notes[0]
    assert note.body == "Checked the toner and drum" and note.deleted
    assert note.actor_label == "Alice"
    assert note.data["history"][0]["body"] == "Checked the toner"
    async with sessions() as session:
        assert (
            await last_changed_by(session=session, workspace_id=workspace.id, ticket_id=ticket.id)
            == "someone"
        ), "notes do not count as changes"


# -- reading ---------------------------------------------------------------------------------


async def test_lists_filter_and_paginate(sessions: Any, workspace: Workspace) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    cust, *_ = await customer_with_contract(sessions, workspace)
    for i in range(12):
        await new_ticket(sessions, workspace, title=f"T{i}", customer_id=cust.id if i % 2 else None)
    mine = await new_ticket(sessions, workspace, assignee_id=alice.id, title="Mine")
    async with sessions() as session, session.begin():
        await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=mine.id,
            expected_version=1,
            changes=TicketUpdate(status="waiting"),
            actor=alice,
            at=AT,
        )
    async with sessions() as session:

        async def page(query: TicketQuery, n: int = 1) -> Any:
            return await list_tickets(
                session=session, workspace_id=workspace.id, query=query, page=n, per_page=5
            )

        first = await page(TicketQuery())
        third = await page(TicketQuery(), 3)
        beyond = await page(TicketQuery(), 99)
        assert (first.total, first.pages, len(first.cards)) == (13, 3, 5)
        assert [c.number for c in first.cards] == [13, 12, 11, 10, 9]
        assert len(third.cards) == 3 and beyond.page == 3
        assert (await page(TicketQuery(kind="mine", member_id=alice.id))).total == 1
        assert (await page(TicketQuery(kind="waiting"))).total == 1
        assert (await page(TicketQuery(kind="open"))).total == 12
        assert (await page(TicketQuery(kind="unassigned"))).total == 12
        assert (await page(TicketQuery(kind="customer", customer_id=cust.id))).total == 6


async def test_customer_search_is_case_insensitive_and_literal(
    sessions: Any, workspace: Workspace
) -> None:
    assert workspace.id is not None
    await add(
        sessions,
        Customer(workspace_id=workspace.id, name="Acme GmbH"),
        Customer(workspace_id=workspace.id, name="Bacme Ltd"),
        Customer(workspace_id=workspace.id, name="100% Pure"),
        Customer(workspace_id=workspace.id, name="Gone Inc", active=False),
    )
    async with sessions() as session:

        async def names(text: str) -> list[str]:
            found = await search_customers(session=session, workspace_id=workspace.id, text=text)
            return [c.name for c in found]

        assert await names("acme") == ["Acme GmbH", "Bacme Ltd"], "prefix matches first"
        assert await names("%") == ["100% Pure"]
        assert await names("gone") == []
        assert len(await names("")) == 3
        exact = await customer_by_name(session=session, workspace_id=workspace.id, name="ACME GMBH")
        vague = await customer_by_name(session=session, workspace_id=workspace.id, name="cme")
        assert exact is not None and exact.name == "Acme GmbH" and vague is None


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("ACME GMBH", "Acme GmbH"),
        ("  acme   gmbh ", "Acme GmbH"),
        ("émile sarl", "Émile SARL"),
        ("pure", "100% Pure"),
        ("cme", None),  # two names contain it
        ("nobody", None),
    ],
)
async def test_ticket_list_and_profit_match_customer_names_alike(
    sessions: Any, workspace: Workspace, text: str, meant: str | None
) -> None:
    assert workspace.id is not None
    await add(
        sessions,
        Customer(workspace_id=workspace.id, name="Acme GmbH"),
        Customer(workspace_id=workspace.id, name="Bacme Ltd"),
        Customer(workspace_id=workspace.id, name="100% Pure"),
        Customer(workspace_id=workspace.id, name="Émile SARL"),
    )
    async with sessions() as session:
        one = await customer_by_name(session=session, workspace_id=workspace.id, name=text)
        found = await match_customers(session=session, workspace_id=workspace.id, text=text)
    assert (one.name if one else None) == meant
    assert ([c.name for c in found] if len(found) == 1 else None) == (meant and [meant])


async def test_active_contracts_cover_the_day(sessions: Any, workspace: Workspace) -> None:
    cust, _contact, _contract, _old = await customer_with_contract(sessions, workspace)
    async with sessions() as session:
        now = await active_contracts(
            session=session, workspace_id=workspace.id, customer_id=cust.id, on=date(2025, 6, 4)
        )
        then = await active_contracts(
            session=session, workspace_id=workspace.id, customer_id=cust.id, on=date(2024, 6, 4)
        )
    assert [c.name for c in now] == ["Support"] and [c.name for c in then] == ["Old"]


async def test_home_data_counts_my_work_and_my_hours_this_iso_week(
    sessions: Any, workspace: Workspace
) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    mine = await new_ticket(sessions, workspace, assignee_id=alice.id)
    await new_ticket(sessions, workspace, title="Nobody's")
    monday, sunday = iso_week(date(2025, 6, 4))
    assert (monday, sunday) == (date(2025, 6, 2), date(2025, 6, 8))
    assert workspace.id is not None and alice.id is not None
    await add(
        sessions,
        *(
            TimeEntry(
                workspace_id=workspace.id,
                member_id=alice.id,
                ticket_id=mine.id,
                work_date=day,
                minutes=minutes,
            )
            for day, minutes in (
                (date(2025, 6, 1), 600),  # the Sunday before: last week
                (date(2025, 6, 2), 90),
                (date(2025, 6, 8), 30),
                (date(2025, 6, 9), 45),  # next week
            )
        ),
    )
    async with sessions() as session:
        data = await home_data(session=session, workspace_id=workspace.id, member=alice, at=AT)
        assert (
            await minutes_logged(
                session=session,
                workspace_id=workspace.id,
                member_id=alice.id,
                start=monday,
                end=sunday,
            )
            == 120
        )
    assert data.minutes_this_week == 120 and data.week_start == monday
    assert [c.id for c in data.mine.cards] == [mine.id]
    assert data.unassigned.total == 1 and data.waiting.total == 0


async def test_home_week_follows_the_workspace_timezone(
    sessions: Any, workspace: Workspace
) -> None:
    """Sunday 23:30 UTC is already Monday in Berlin: the new week has begun there."""
    alice = await member(sessions, workspace, "UALICE", "Alice")
    async with sessions() as session:
        data = await home_data(
            session=session,
            workspace_id=workspace.id,
            member=alice,
            at=datetime(2025, 6, 8, 23, 30, tzinfo=UTC),
        )
    assert data.week_start == date(2025, 6, 9)


# -- the card's outbox rows ------------------------------------------------------------------


async def test_card_updates_need_a_card_and_are_keyed_by_version(
    sessions: Any, workspace: Workspace
) -> None:
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        kw: dict[str, Any] = dict(
            session=session, workspace_id=workspace.id, ticket=ticket, text="t", blocks=[], at=AT
        )
        assert await ticket_notify.update_card(**kw) is None, "no card yet: nothing to update"
        assert await ticket_notify.announce_card(channel="CTRIAGE", **kw) is not None
        assert await ticket_notify.announce_card(channel="CTRIAGE", **kw) is None
        assert await ticket_notify.update_card(**kw) is not None
        assert await ticket_notify.update_card(**kw) is None, "same version: queued once"
        await ticket_notify.reply_in_thread(
            session=session,
            workspace_id=workspace.id,
            ticket=ticket,
            channel="C1",
            thread_ts="1.2",
            text="Ticket #1 created",
            at=AT,
        )
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    assert [r.payload["method"] for r in rows] == [
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
    ]
    assert rows[0].payload["store_card_for_ticket"] == ticket.id
    assert rows[1].payload["card_of_ticket"] == ticket.id
    assert rows[2].payload["args"]["thread_ts"] == "1.2"
    assert {r.ordering_key for r in rows} == {f"ticket:{ticket.id}"}


async def test_a_ticket_is_found_by_its_card(sessions: Any, workspace: Workspace) -> None:
    ticket = await new_ticket(sessions, workspace)
    async with sessions() as session, session.begin():
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None
        stored.card_channel, stored.card_ts = "CTRIAGE", "1700000000.000100"
        session.add(stored)
    async with sessions() as session:
        found = await ticket_by_card(
            session=session, workspace_id=workspace.id, channel="CTRIAGE", ts="1700000000.000100"
        )
        missing = await ticket_by_card(
            session=session, workspace_id=workspace.id, channel="COTHER", ts="1700000000.000100"
        )
    assert found is not None and found.id == ticket.id and missing is None


async def test_moving_a_ticket_to_another_customer_moves_its_time(
    sessions: Any, workspace: Workspace
) -> None:
    alice = await member(sessions, workspace, "UALICE", "Alice")
    first, _, first_contract, _ = await customer_with_contract(sessions, workspace, "Acme")
    second, _, second_contract, _ = await customer_with_contract(sessions, workspace, "Globex")
    ticket = await new_ticket(
        sessions, workspace, alice, customer_id=first.id, contract_id=first_contract.id
    )
    (entry,) = await add(
        sessions,
        TimeEntry(
            workspace_id=workspace.id,
            member_id=alice.id,
            ticket_id=ticket.id,
            customer_id=first.id,
            contract_id=first_contract.id,
            work_date=date(2025, 6, 2),
            minutes=90,
        ),
    )
    async with sessions() as session, session.begin():
        await update_ticket(
            session=session,
            workspace_id=workspace.id,
            ticket_id=ticket.id,
            expected_version=ticket.version,
            changes=TicketUpdate(customer_id=second.id, contract_id=second_contract.id),
            actor=alice,
            at=AT + timedelta(minutes=5),
        )
    async with sessions() as session:
        moved = await session.get(TimeEntry, entry.id)
        assert moved is not None
        assert (moved.customer_id, moved.contract_id) == (second.id, second_contract.id)
        stale = (await session.exec(select(StalePeriod))).all()
    assert {s.customer_id for s in stale} >= {first.id, second.id}
