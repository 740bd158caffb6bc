"""A small, hand-checkable workspace for the report tests, computed through the real engine.

Two members at 50.00/h (the default cost rate); Acme on an hourly contract at 90.00/h;
Globex on a fixed fee of 1,000.00 a month; some weeks of time in May and June 2025.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from bot.db import make_sessionmaker
from models.engine import rebuild
from models.tables import (
    ChargeRate,
    Contract,
    ContractKind,
    CostRate,
    Customer,
    Member,
    OutboxMessage,
    ReportRun,
    Ticket,
    TimeEntry,
    Workspace,
)

W23_MONDAY = date(2025, 6, 2)
SINCE_W23 = datetime(2025, 6, 3, tzinfo=UTC)
"""Reporting since after W22's post time: W23 is the only week a catch-up would post."""


async def seed(
    engine: AsyncEngine, workspace_id: int, *, weeks: int = 6, since: datetime = SINCE_W23
) -> dict[str, int]:
    """Fill the workspace and compute every result; returns the ids made."""
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = await session.get(Workspace, workspace_id)
        assert ws is not None
        ws.created_at = since  # the catch-up never reaches before it
        session.add(ws)
        alice = Member(workspace_id=workspace_id, slack_user_id="UALICE", name="Alice")
        bob = Member(workspace_id=workspace_id, slack_user_id="UBOB", name="Bob")
        acme = Customer(workspace_id=workspace_id, name="Acme")
        globex = Customer(workspace_id=workspace_id, name="Globex")
        session.add_all([alice, bob, acme, globex])
        await session.flush()
        assert acme.id and globex.id and alice.id and bob.id
        hourly = Contract(
            workspace_id=workspace_id,
            customer_id=acme.id,
            name="Support hours",
            kind=ContractKind.HOURLY,
            start_date=date(2025, 1, 1),
        )
        fixed = Contract(
            workspace_id=workspace_id,
            customer_id=globex.id,
            name="Managed care",
            kind=ContractKind.FIXED,
            start_date=date(2025, 1, 1),
            # Ends, so a refresh "today" (years later) has no fees to carry forward.
            end_date=date(2025, 7, 31),
            monthly_fee_minor=100_000,
        )
        session.add_all([hourly, fixed])
        await session.flush()
        assert hourly.id and fixed.id
        session.add_all(
            [
                ChargeRate(
                    workspace_id=workspace_id,
                    contract_id=hourly.id,
                    effective_from=date(2025, 1, 1),
                    minor_per_hour=9_000,
                ),
                CostRate(
                    workspace_id=workspace_id,
                    subject="default",
                    effective_from=date(2025, 1, 1),
                    minor_per_hour=5_000,
                ),
            ]
        )
        ticket = Ticket(
            workspace_id=workspace_id, number=1, title="No contract", customer_id=acme.id
        )
        session.add(ticket)
        await session.flush()
        first = W23_MONDAY - timedelta(weeks=weeks - 1)
        for week in range(weeks):
            monday = first + timedelta(weeks=week)
            for offset, member, customer, contract, minutes in (
                (0, alice, acme, hourly, 240 + 30 * week),
                (1, bob, acme, hourly, 120),
                (2, bob, globex, fixed, 300),
            ):
                session.add(
                    TimeEntry(
                        workspace_id=workspace_id,
                        member_id=member.id or 0,
                        customer_id=customer.id,
                        contract_id=contract.id,
                        work_date=monday + timedelta(days=offset),
                        minutes=minutes,
                    )
                )
        # A ticket's time without a contract: the data-quality line counts it.
        session.add(
            TimeEntry(
                workspace_id=workspace_id,
                member_id=alice.id,
                ticket_id=ticket.id,
                customer_id=acme.id,
                work_date=W23_MONDAY + timedelta(days=3),
                minutes=45,
            )
        )
    await rebuild(
        sessions=sessions,
        workspace_id=workspace_id,
        today=W23_MONDAY + timedelta(days=14),
        at=datetime(2025, 6, 16, tzinfo=UTC),
    )
    return {"acme": acme.id, "globex": globex.id, "alice": alice.id, "hourly": hourly.id}


async def add_time(
    engine: AsyncEngine, workspace_id: int, *, customer: str, day: date, minutes: int
) -> None:
    """Log time on the customer's first contract as Bob, and recompute everything."""
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        cust = (await session.exec(select(Customer).where(Customer.name == customer))).one()
        contract = (
            await session.exec(select(Contract).where(Contract.customer_id == cust.id))
        ).first()
        bob = (await session.exec(select(Member).where(Member.name == "Bob"))).one()
        session.add(
            TimeEntry(
                workspace_id=workspace_id,
                member_id=bob.id or 0,
                customer_id=cust.id,
                contract_id=contract.id if contract else None,
                work_date=day,
                minutes=minutes,
            )
        )
    await rebuild(
        sessions=sessions,
        workspace_id=workspace_id,
        today=W23_MONDAY + timedelta(days=14),
        at=datetime(2025, 6, 16, tzinfo=UTC),
    )


async def counts(engine: AsyncEngine) -> tuple[list[ReportRun], list[OutboxMessage]]:
    """Every report run and outbox row, oldest first."""
    async with make_sessionmaker(engine)() as session:
        runs = list((await session.exec(select(ReportRun).order_by(ReportRun.id))).all())
        rows = list((await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all())
    return runs, rows


async def count_rows(engine: AsyncEngine, model: Any) -> int:
    async with make_sessionmaker(engine)() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())
