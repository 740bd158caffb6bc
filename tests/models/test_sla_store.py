"""SLA clocks kept with the ticket's changes, policies from contracts, notices claimed once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import make_sessionmaker
from models.inbound_apply import open_customer_ticket
from models.replies import record_agent_reply
from models.sla import PriorityTargets, Target, TargetStatus
from models.sla_store import (
    Notice,
    SlaInputError,
    due_checks,
    queue_notice,
    replace_business_hours,
    save_holiday,
    save_policy,
    ticket_states,
    workspace_calendar,
)
from models.tables import (
    Contract,
    Customer,
    Member,
    OutboxMessage,
    Ticket,
    TicketSla,
    Workspace,
)
from models.tickets import (
    TicketCreate,
    TicketQuery,
    TicketUpdate,
    create_ticket,
    list_tickets,
    update_ticket,
)
from tests.models.test_inbound import Hooks

# Monday 2 June 2025, 11:00 in Berlin (the test workspace's zone).
AT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


def _id(value: int | None) -> int:
    assert value is not None
    return value


@pytest.fixture
async def sessions(engine: AsyncEngine, workspace: Workspace) -> Sessions:
    return make_sessionmaker(engine)


async def _policies(session: AsyncSession, ws: int) -> None:
    await save_policy(
        session=session,
        workspace_id=ws,
        name="default",
        calendar="business",
        targets={"normal": PriorityTargets("1h", "4h"), "urgent": PriorityTargets("15m", "1h")},
    )
    await save_policy(
        session=session,
        workspace_id=ws,
        name="gold",
        calendar="24x7",
        targets={"normal": PriorityTargets("30m", "2h")},
    )


async def _open(session: AsyncSession, ws: int, customer_id: int, at: datetime) -> Ticket:
    return await open_customer_ticket(
        session=session,
        workspace_id=ws,
        title="Printer on fire",
        description="help",
        customer_id=customer_id,
        contact_id=None,
        requester_email="alice@acme.test",
        verified=True,
        label="Alice",
        at=at,
        hooks=Hooks(),
        source={"source": "email"},
    )


async def _row(session: AsyncSession, ticket_id: int) -> TicketSla | None:
    stmt = select(TicketSla).where(TicketSla.ticket_id == ticket_id)
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def test_clock_follows_the_ticket(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        await _policies(session, ws)
        customer = Customer(workspace_id=ws, name="Acme")
        agent = Member(workspace_id=ws, slack_user_id="UAGENT", name="Agnes")
        session.add_all([customer, agent])
        await session.flush()
        ticket = await _open(session, ws, _id(customer.id), AT)
        row = await _row(session, _id(ticket.id))
        assert row is not None
        assert (row.first_response_status, row.first_response_due) == (
            "running",
            AT + timedelta(hours=1),
        )
        assert row.resolution_due == AT + timedelta(hours=4)
        assert row.next_check_at == AT + timedelta(minutes=45)  # 75% of the first response
        assert (
            await due_checks(session=session, workspace_id=ws, now=AT + timedelta(minutes=44)) == []
        )
        assert await due_checks(
            session=session, workspace_id=ws, now=AT + timedelta(minutes=45)
        ) == [ticket.id]

        await record_agent_reply(
            session=session,
            workspace_id=ws,
            ticket_id=_id(ticket.id),
            member=agent,
            text="On it",
            at=AT + timedelta(minutes=35),
        )
        row = await _row(session, _id(ticket.id))
        assert row is not None
        # Met, and waiting on the customer pauses the resolution clock: nothing to check.
        assert (row.first_response_status, row.resolution_status) == ("met", "running")
        assert row.next_check_at is None
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        states = await ticket_states(
            session=session, workspace_id=ws, tickets=[fresh], now=AT + timedelta(hours=3)
        )
        first = states[_id(ticket.id)][Target.FIRST_RESPONSE]
        assert (first.status, first.used_minutes) == (TargetStatus.MET, 35)

        # Back to open and raised to urgent: 35 minutes used of a 1-hour resolution target.
        change = await update_ticket(
            session=session,
            workspace_id=ws,
            ticket_id=_id(ticket.id),
            expected_version=fresh.version,
            changes=TicketUpdate(status="open", priority="urgent"),
            actor=agent,
            at=AT + timedelta(hours=1),
        )
        assert change.changed
        row = await _row(session, _id(ticket.id))
        assert row is not None
        assert row.resolution_due == AT + timedelta(hours=1, minutes=25)


async def test_no_policy_no_clock(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        customer = Customer(workspace_id=ws, name="Acme")
        session.add(customer)
        await session.flush()
        ticket = await _open(session, ws, _id(customer.id), AT)
        assert await _row(session, _id(ticket.id)) is None
        states = await ticket_states(session=session, workspace_id=ws, tickets=[ticket], now=AT)
        assert {s.status for s in states[_id(ticket.id)].values()} == {TargetStatus.NONE}


async def test_contract_policy_and_team_ticket(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        await _policies(session, ws)
        customer = Customer(workspace_id=ws, name="Acme")
        session.add(customer)
        await session.flush()
        contract = Contract(
            workspace_id=ws,
            customer_id=_id(customer.id),
            name="Gold",
            kind="hourly",
            start_date=date(2025, 1, 1),
            sla_policy="gold",
        )
        session.add(contract)
        await session.flush()
        ticket = await create_ticket(
            session=session,
            workspace_id=ws,
            data=TicketCreate(
                title="Set up laptop", customer_id=customer.id, contract_id=contract.id
            ),
            actor=None,
            at=AT,
        )
        row = await _row(session, _id(ticket.id))
        assert row is not None
        # Opened by the team: no first response; gold's 2h resolution counts around the clock.
        assert row.first_response_status == "none"
        assert row.resolution_due == AT + timedelta(hours=2)


async def test_notice_claimed_once(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        await _policies(session, ws)
        customer = Customer(workspace_id=ws, name="Acme")
        session.add(customer)
        await session.flush()
        ticket = await _open(session, ws, _id(customer.id), AT)
        notice = Notice(ticket, Target.FIRST_RESPONSE, "breach", 0, "UAGENT", "breached")
        assert await queue_notice(session=session, workspace_id=ws, notice=notice, at=AT)
        assert not await queue_notice(session=session, workspace_id=ws, notice=notice, at=AT)
        rows = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.idempotency_key.startswith("sla:"))  # type: ignore[attr-defined]
            )
        ).all()
        assert sorted(r.idempotency_key.rsplit(":", 1)[1] for r in rows) == ["dm", "thread"]
        thread = next(r for r in rows if r.idempotency_key.endswith(":thread"))
        assert thread.payload["thread_of_ticket"] == ticket.id


async def test_calendar_settings(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        await replace_business_hours(
            session=session, workspace_id=ws, hours={0: ("8:00", "16:30"), 5: ("10:00", "12:00")}
        )
        await save_holiday(session=session, workspace_id=ws, day=date(2025, 12, 25), name="Xmas")
        await save_holiday(
            session=session, workspace_id=ws, day=date(2025, 12, 25), name="Christmas"
        )
        cal = await workspace_calendar(session=session, workspace_id=ws)
        assert sorted(cal.hours) == [0, 5]
        assert cal.holidays == frozenset({date(2025, 12, 25)})
        with pytest.raises(SlaInputError):
            await replace_business_hours(
                session=session, workspace_id=ws, hours={1: ("17:00", "09:00")}
            )
        with pytest.raises(SlaInputError):
            await save_policy(
                session=session,
                workspace_id=ws,
                name="bad",
                calendar="business",
                targets={"normal": PriorityTargets("4 hours", None)},
            )


async def test_overdue_and_due_today_lists(sessions: Sessions, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    async with sessions() as session, session.begin():
        await _policies(session, ws)
        customer = Customer(workspace_id=ws, name="Acme")
        session.add(customer)
        await session.flush()
        ticket = await _open(session, ws, _id(customer.id), AT)

        async def numbers(kind: Any, at: datetime, until: datetime | None = None) -> list[int]:
            page = await list_tickets(
                session=session,
                workspace_id=ws,
                query=TicketQuery(kind=kind, at=at, until=until),
            )
            return [c.number for c in page.cards]

        assert await numbers("overdue", AT + timedelta(minutes=30)) == []
        assert await numbers("overdue", AT + timedelta(minutes=61)) == [ticket.number]
        end_of_day = AT + timedelta(hours=13)
        assert await numbers("due-today", AT, end_of_day) == [ticket.number]
        assert await numbers("due-today", AT + timedelta(hours=5), end_of_day) == []
