"""The demo's service levels: two policies, and last week's tickets answered and resolved
at realistic business-time delays (some late), so the demo shows SLA figures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.db import make_sessionmaker
from models.periods import Period
from models.sla import PriorityTargets, add_business_minutes
from models.sla_report import build_sla_report, render_sla_table
from models.sla_store import save_policy, workspace_calendar
from models.tables import Contract, EventKind, Ticket, TicketEvent, TicketStatus

POLICIES = {
    "default": (
        "business",
        {
            "urgent": PriorityTargets("1h", "8h"),
            "high": PriorityTargets("2h", "1d"),
            "normal": PriorityTargets("4h", "2d"),
            "low": PriorityTargets("1d", "5d"),
        },
    ),
    "premium": (
        "24x7",
        {
            "urgent": PriorityTargets("30m", "4h"),
            "high": PriorityTargets("1h", "8h"),
            "normal": PriorityTargets("2h", "1d"),
            "low": PriorityTargets("8h", "3d"),
        },
    ),
}
PRIORITY_WEIGHTS = (("urgent", 1), ("high", 3), ("normal", 8), ("low", 2))


async def add_service_levels(engine: AsyncEngine, workspace_id: int, *, week: Period) -> None:
    """Policies (the first contract on `premium`), and the history of `week`'s tickets."""
    rng = random.Random(34)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        for name, (calendar, targets) in POLICIES.items():
            await save_policy(
                session=session,
                workspace_id=workspace_id,
                name=name,
                calendar=calendar,
                targets=targets,
            )
        first = (
            await session.exec(
                select(Contract)
                .where(Contract.workspace_id == workspace_id)
                .order_by(col(Contract.id))
            )
        ).first()
        if first is not None:
            first.sla_policy = "premium"
            session.add(first)
        cal = await workspace_calendar(session=session, workspace_id=workspace_id)
        start = datetime.combine(week.start, time(0), tzinfo=cal.zone)
        tickets = (
            await session.exec(
                select(Ticket).where(
                    Ticket.workspace_id == workspace_id,
                    col(Ticket.created_at) >= start - timedelta(days=1),
                    col(Ticket.created_at) < start + timedelta(days=7),
                )
            )
        ).all()
        priorities = [p for p, weight in PRIORITY_WEIGHTS for _ in range(weight)]
        for ticket in tickets:
            day = week.start + timedelta(days=rng.randrange(5))
            opened = datetime.combine(
                day, time(rng.randrange(9, 16), rng.randrange(60)), tzinfo=cal.zone
            ).astimezone(UTC)
            ticket.created_at = opened
            ticket.priority = rng.choice(priorities)
            events = [
                TicketEvent(
                    workspace_id=workspace_id,
                    ticket_id=ticket.id or 0,
                    kind=EventKind.CREATED,
                    data={"status": "new", "priority": ticket.priority, "source": "email"},
                    created_at=opened,
                )
            ]
            # Most answers come within the hour; a few take most of a day.
            wait = rng.choice((10, 15, 25, 35, 50, 70, 110, 240, 420))
            replied = add_business_minutes(cal, opened, wait) or opened
            events.append(
                TicketEvent(
                    workspace_id=workspace_id,
                    ticket_id=ticket.id or 0,
                    kind=EventKind.AGENT_REPLY,
                    body="Thanks, we are on it.",
                    created_at=replied,
                )
            )
            if rng.random() < 0.8:
                work = rng.choice((60, 120, 240, 480, 900, 1500))
                resolved = add_business_minutes(cal, replied, work) or replied
                events.append(
                    TicketEvent(
                        workspace_id=workspace_id,
                        ticket_id=ticket.id or 0,
                        kind=EventKind.STATUS,
                        data={"from": "open", "to": "resolved"},
                        created_at=resolved,
                    )
                )
                ticket.status = TicketStatus.RESOLVED
            else:
                ticket.status = TicketStatus.OPEN
            session.add(ticket)
            session.add_all(events)


async def service_levels_text(
    engine: AsyncEngine, workspace_id: int, *, week: Period, now: datetime
) -> str:
    """`docket report sla`'s table for `week`."""
    async with make_sessionmaker(engine)() as session:
        report = await build_sla_report(
            session=session, workspace_id=workspace_id, period=week, now=now
        )
    return render_sla_table(report)
