"""The SLA scan: warnings and breaches queued once, none for a ticket answered in time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.db import make_sessionmaker
from handlers.blocks.sla import notice_text, target_line
from models.replies import record_agent_reply
from models.sla import Target, TargetState, TargetStatus
from models.sla_store import scan_due
from models.tables import Customer, Member, OutboxMessage, SlaNotice, Workspace
from tests.models.test_sla_store import AT, Sessions, _id, _open, _policies

BERLIN = ZoneInfo("Europe/Berlin")


async def _scan(sessions: Sessions, ws: int, minutes: int) -> int:
    async with sessions() as session, session.begin():
        result = await scan_due(
            session=session,
            workspace_id=ws,
            now=AT + timedelta(minutes=minutes),
            render=notice_text,
        )
    return result.queued


async def _sla_rows(sessions: Sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        stmt = select(OutboxMessage).where(col(OutboxMessage.idempotency_key).startswith("sla:"))
        return list((await session.exec(stmt.order_by(col(OutboxMessage.id)))).all())


async def _world(sessions: Sessions, ws: int) -> tuple[int, Member]:
    async with sessions() as session, session.begin():
        await _policies(session, ws)
        customer = Customer(workspace_id=ws, name="Acme")
        agent = Member(workspace_id=ws, slack_user_id="UAGENT", name="Agnes")
        session.add_all([customer, agent])
        await session.flush()
        return _id(customer.id), agent


async def test_unanswered_ticket_warns_then_breaches_once(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    ws = _id(workspace.id)
    sessions = make_sessionmaker(engine)
    customer, _agent = await _world(sessions, ws)
    async with sessions() as session, session.begin():
        ticket = await _open(session, ws, customer, AT)

    assert await _scan(sessions, ws, 44) == 0
    assert await _scan(sessions, ws, 45) == 1  # 75% of the 1h first response
    assert await _scan(sessions, ws, 46) == 0
    rows = await _sla_rows(sessions)
    # Unassigned: the warning goes to the card's thread.
    assert [r.payload.get("thread_of_ticket") for r in rows] == [ticket.id]
    assert "SLA warning on #1" in rows[0].payload["args"]["text"]
    assert "First response due Mon 12:00 (in 15m)" in rows[0].payload["args"]["text"]

    assert await _scan(sessions, ws, 61) == 1
    assert await _scan(sessions, ws, 75) == 0
    rows = await _sla_rows(sessions)
    assert len(rows) == 2
    assert "First response breached 1m ago" in rows[1].payload["args"]["text"]


async def test_answered_in_time_sends_nothing(engine: AsyncEngine, workspace: Workspace) -> None:
    ws = _id(workspace.id)
    sessions = make_sessionmaker(engine)
    customer, agent = await _world(sessions, ws)
    async with sessions() as session, session.begin():
        ticket = await _open(session, ws, customer, AT)
        await record_agent_reply(
            session=session,
            workspace_id=ws,
            ticket_id=_id(ticket.id),
            member=agent,
            text="Looking",
            at=AT + timedelta(minutes=20),
        )
    for minutes in (45, 61, 300, 3000):
        assert await _scan(sessions, ws, minutes) == 0
    assert await _sla_rows(sessions) == []


async def test_assigned_ticket_warns_by_dm_and_concurrent_scans_send_once(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    ws = _id(workspace.id)
    sessions = make_sessionmaker(engine)
    customer, agent = await _world(sessions, ws)
    async with sessions() as session, session.begin():
        ticket = await _open(session, ws, customer, AT)
        ticket.assignee_id = agent.id
        session.add(ticket)

    queued = await asyncio.gather(*(_scan(sessions, ws, 50) for _ in range(3)))
    assert sum(queued) == 1
    rows = await _sla_rows(sessions)
    assert [r.payload["args"]["channel"] for r in rows] == ["UAGENT"]
    async with sessions() as session:
        notices = (await session.exec(select(SlaNotice))).all()
    assert [(n.target, n.kind, n.round) for n in notices] == [("first_response", "warning", 0)]


def test_target_lines() -> None:
    now = AT
    due = AT + timedelta(hours=1, minutes=20)
    fr = Target.FIRST_RESPONSE
    running = TargetState(fr, TargetStatus.RUNNING, target_minutes=240, due=due)
    assert target_line(running, zone=BERLIN, now=now) == "First response due Mon 12:20 (in 1h 20m)"
    met = TargetState(fr, TargetStatus.MET, target_minutes=60, used_minutes=35)
    assert target_line(met, zone=BERLIN, now=now) == "First response met in 35m"
    late = TargetState(
        fr, TargetStatus.BREACHED, target_minutes=60, due=now - timedelta(minutes=15)
    )
    assert target_line(late, zone=BERLIN, now=now) == "First response breached 15m ago"
    paused = TargetState(Target.RESOLUTION, TargetStatus.RUNNING, 240, 60, paused=True)
    assert target_line(paused, zone=BERLIN, now=now) == "Resolution paused (1h of 4h used)"
    assert target_line(TargetState(fr, TargetStatus.NONE), zone=BERLIN, now=now) is None
