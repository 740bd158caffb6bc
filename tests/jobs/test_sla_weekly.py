"""The managers' weekly post carries the week's service levels beside each customer's margin."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.db import make_sessionmaker
from bot.services import Services
from jobs.weekly import outbox_key, run_report
from models.periods import week_of
from models.replies import record_agent_reply
from models.sla import PriorityTargets
from models.sla_store import save_policy
from models.tables import Member, OutboxMessage, Workspace
from tests.jobs.report_data import W23_MONDAY, seed
from tests.models.test_sla_store import _open
from tests.slack_emulator import validate_blocks

W23 = week_of(W23_MONDAY)
DUE = datetime(2025, 6, 9, 6, 0, tzinfo=UTC)


async def test_the_weekly_post_has_a_service_levels_section(
    services: Services, engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    ws = workspace.id
    services.clock = lambda: DUE
    ids = await seed(engine, ws)
    async with make_sessionmaker(engine)() as session, session.begin():
        await save_policy(
            session=session,
            workspace_id=ws,
            name="default",
            calendar="24x7",
            targets={"normal": PriorityTargets("1h", "1d")},
        )
        agent = (await session.exec(select(Member).where(Member.name == "Alice"))).one()
        row = await session.get(Workspace, ws)
        assert row is not None
        row.next_ticket_number = 1000  # the seeded tickets were written directly
        session.add(row)
        # Tuesday of W23: one answered in 20 minutes, one two hours late.
        opened = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
        for minutes in (20, 180):
            ticket = await _open(session, ws, ids["acme"], opened)
            assert ticket.id is not None
            await record_agent_reply(
                session=session,
                workspace_id=ws,
                ticket_id=ticket.id,
                member=agent,
                text="Done",
                at=opened + timedelta(minutes=minutes),
            )
    outcome = await run_report(services, workspace_id=ws, kind="weekly", period=W23, now=DUE)
    assert outcome.status == "queued"
    async with make_sessionmaker(engine)() as session:
        post = (
            await session.exec(
                select(OutboxMessage).where(
                    col(OutboxMessage.idempotency_key) == outbox_key(ws, "weekly", "2025-W23")
                )
            )
        ).one()
    blocks = post.payload["args"]["blocks"]
    assert validate_blocks(blocks) == []
    text = json.dumps(blocks, ensure_ascii=False)
    assert "*Service levels* (2025-W23): 50% of 2 finished targets met" in text
    assert "• Acme: 1 breached · 50% met · median first response 1h 40m · margin" in text
    # Just above the definitions, which stay last.
    assert "Service levels" in json.dumps(blocks[-2]) and "Contribution =" in json.dumps(blocks[-1])
