"""A small profitability world for persistence tests: people, customers, contracts, rates and
time, written through the real persistence functions, with helpers to refresh and read back."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.db import make_engine, make_sessionmaker
from models import directory, profit_bulk, profit_refresh, profit_report, profit_store, timelog
from models import engine as one_by_one
from models.periods import parse_period
from models.reporting import Report
from models.tables import (
    ContractKind,
    Member,
    ProfitResult,
    Restatement,
    Role,
    Ticket,
    Workspace,
)
from tests.conftest import POSTGRES_URL, truncate_postgres

AT = datetime(2025, 6, 20, 10, 0, tzinfo=UTC)
TODAY = date(2025, 6, 20)  # a Friday, in the workspace's Europe/Berlin too


async def fresh_url(backend: str, template: Path, tmp: Path) -> str:
    """An empty migrated database for one example of a property test: a copy of the SQLite
    template in `tmp`, or the PostgreSQL test database emptied."""
    if backend == "sqlite":
        path = tmp / "docket.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    assert POSTGRES_URL
    engine = make_engine(POSTGRES_URL)
    await truncate_postgres(engine)
    await engine.dispose()
    return POSTGRES_URL


class World:
    """Writes and reads one workspace's profitability data, one transaction per call."""

    def __init__(self, engine: AsyncEngine, workspace_id: int, *, at: datetime = AT) -> None:
        self.sessions = make_sessionmaker(engine)
        self.ws = workspace_id
        self.at = at
        self.today = at.date()

    @classmethod
    async def create(
        cls, engine: AsyncEngine, *, timezone: str, at: datetime = AT, team_id: str = "T0001"
    ) -> World:
        """A new workspace in `timezone`, and its world."""
        async with make_sessionmaker(engine)() as s, s.begin():
            ws = Workspace(team_id=team_id, timezone=timezone)
            s.add(ws)
            await s.flush()
            assert ws.id is not None
            return cls(engine, ws.id, at=at)

    async def member(self, name: str, *, group: str | None = None, role: Role = Role.AGENT) -> int:
        async with self.sessions() as s, s.begin():
            m = await directory.save_member(
                session=s,
                workspace_id=self.ws,
                email=f"{name.lower()}@provider.test",
                name=name,
                slack_user_id=f"U{name.upper()}",
                group_name=group,
                role=role,
                at=self.at,
            )
            assert m.id is not None
            return m.id

    async def group_id(self, name: str) -> int:
        async with self.sessions() as s:
            g = await directory.group_by_name(session=s, workspace_id=self.ws, name=name)
            assert g is not None and g.id is not None
            return g.id

    async def customer(self, name: str) -> int:
        async with self.sessions() as s, s.begin():
            c = await directory.save_customer(
                session=s, workspace_id=self.ws, name=name, at=self.at
            )
            assert c.id is not None
            return c.id

    async def contract(
        self,
        customer_id: int,
        name: str,
        kind: ContractKind,
        start: date,
        end: date | None = None,
        **terms: Any,
    ) -> int:
        async with self.sessions() as s, s.begin():
            c = await directory.save_contract(
                session=s,
                workspace_id=self.ws,
                customer_id=customer_id,
                terms=directory.ContractTerms(
                    name=name, kind=kind, start_date=start, end_date=end, **terms
                ),
                at=self.at,
            )
            assert c.id is not None
            return c.id

    async def mixed_contracts(
        self, acme: int, beta: int, first: date, *, fixed_end: date | None = None
    ) -> tuple[int, int, int]:
        """The property tests' contracts: for `acme` an hourly one from `first` + 5 days and a
        prepaid block from 1 December to `first` + 33 days, for `beta` a fixed fee with a
        direct cost from `first` + 8 days (to `fixed_end`); returns their ids."""
        hourly = await self.contract(
            acme, "Hourly", ContractKind.HOURLY, first + timedelta(days=5), hourly_rate_minor=12_000
        )
        block = await self.contract(
            acme,
            "Block",
            ContractKind.BLOCK,
            date(first.year, 12, 1),
            first + timedelta(days=33),
            block_minutes=500,
            block_price_minor=50_001,
            overage_minor_per_hour=13_000,
        )
        fixed = await self.contract(
            beta,
            "Fixed",
            ContractKind.FIXED,
            first + timedelta(days=8),
            fixed_end,
            monthly_fee_minor=100_001,
            monthly_direct_cost_minor=7_777,
        )
        return hourly, block, fixed

    async def cost_rate(
        self,
        minor: int,
        since: date,
        *,
        member_id: int | None = None,
        group_id: int | None = None,
    ) -> None:
        async with self.sessions() as s, s.begin():
            await directory.save_cost_rate(
                session=s,
                workspace_id=self.ws,
                effective_from=since,
                minor_per_hour=minor,
                member_id=member_id,
                group_id=group_id,
                at=self.at,
            )

    async def charge_rate(self, contract_id: int, since: date, minor: int) -> None:
        async with self.sessions() as s, s.begin():
            await directory.save_charge_rate(
                session=s,
                workspace_id=self.ws,
                contract_id=contract_id,
                effective_from=since,
                minor_per_hour=minor,
                at=self.at,
            )

    async def ticket(self, number: int, customer_id: int | None, contract_id: int | None) -> int:
        async with self.sessions() as s, s.begin():
            t = Ticket(
                workspace_id=self.ws,
                number=number,
                title=f"Ticket {number}",
                customer_id=customer_id,
                contract_id=contract_id,
            )
            s.add(t)
            await s.flush()
            assert t.id is not None
            return t.id

    async def _member(self, s: Any, member_id: int) -> Member:
        m = await s.get(Member, member_id)
        assert m is not None
        return m

    async def log(
        self,
        member_id: int,
        minutes: int,
        day: date,
        *,
        customer_id: int | None = None,
        contract_id: int | None = None,
        ticket_id: int | None = None,
        billable: bool = True,
    ) -> int:
        async with self.sessions() as s, s.begin():
            entry = await timelog.log_time(
                session=s,
                workspace_id=self.ws,
                member=await self._member(s, member_id),
                minutes=minutes,
                work_date=day,
                today=self.today,
                at=self.at,
                ticket_id=ticket_id,
                customer_id=customer_id,
                contract_id=contract_id,
                billable=billable,
            )
            assert entry.id is not None
            return entry.id

    async def edit(self, actor_id: int, entry_id: int, **changes: Any) -> None:
        async with self.sessions() as s, s.begin():
            await timelog.edit_time(
                session=s,
                workspace_id=self.ws,
                actor=await self._member(s, actor_id),
                entry_id=entry_id,
                today=self.today,
                at=self.at,
                **changes,
            )

    async def delete(self, actor_id: int, entry_id: int) -> None:
        async with self.sessions() as s, s.begin():
            await timelog.delete_time(
                session=s,
                workspace_id=self.ws,
                actor=await self._member(s, actor_id),
                entry_id=entry_id,
                at=self.at,
            )

    async def refresh(self, *, limit: int = 7) -> int:
        """Run the incremental refresh until the queue is empty; customer-periods done."""
        done = 0
        for _ in range(10_000):
            async with self.sessions() as s, s.begin():
                # The worker's step, kept to the incremental path (cost changes settle first).
                stats = await profit_bulk.refresh_step(
                    session=s,
                    workspace_id=self.ws,
                    today=self.today,
                    at=self.at,
                    limit=limit,
                    backlog=10**9,
                )
            if stats.customer_periods == 0:
                return done
            done += stats.customer_periods
        raise AssertionError("the refresh never finished")

    async def horizon(self, today: date) -> int:
        async with self.sessions() as s, s.begin():
            return await profit_refresh.ensure_horizon(
                session=s, workspace_id=self.ws, today=today, at=self.at
            )

    async def rebuild(
        self, today: date | None = None, *, per_customer: bool = False, chunk: int = 400
    ) -> profit_store.WriteStats:
        """Rebuild everything: set-based (the default path) or one customer at a time."""
        if per_customer:
            return await one_by_one.rebuild(
                sessions=self.sessions, workspace_id=self.ws, today=today or self.today, at=self.at
            )
        return await profit_bulk.rebuild(
            sessions=self.sessions,
            workspace_id=self.ws,
            today=today or self.today,
            at=self.at,
            chunk=chunk,
        )

    async def refresh_many(self, *, customers: int = 400) -> int:
        """Work off the stale queue with the set-based refresh; customer-periods done."""
        done = 0
        for _ in range(1_000):
            async with self.sessions() as s, s.begin():
                stats = await profit_bulk.refresh_many(
                    session=s,
                    workspace_id=self.ws,
                    today=self.today,
                    at=self.at,
                    customers=customers,
                )
            if stats.customer_periods == 0:
                return done
            done += stats.customer_periods
        raise AssertionError("the refresh never finished")

    async def stored(self) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """Every stored result as comparable plain values."""
        async with self.sessions() as s:
            rows = (
                await s.exec(select(ProfitResult).where(ProfitResult.workspace_id == self.ws))
            ).all()
        return {
            (r.period_kind, r.period_start, r.customer_id, r.contract_key): (
                r.minutes,
                r.billable_minutes,
                r.uncosted_minutes,
                r.unattributed_minutes,
                r.unpriced_minutes,
                r.revenue_60,
                r.labour_cost_60,
                r.direct_cost_60,
                tuple(sorted(r.missing_rates)),
            )
            for r in rows
        }

    async def stale(self) -> int:
        async with self.sessions() as s:
            return await profit_refresh.stale_count(session=s, workspace_id=self.ws)

    async def report(self, key: str, customer_ids: Any = None) -> Report:
        async with self.sessions() as s:
            return await profit_report.build_report(
                session=s,
                workspace_id=self.ws,
                period=parse_period(key, today=self.today),
                customer_ids=customer_ids,
            )

    async def final(self, key: str) -> tuple[Report, int]:
        """`docket report --final`: report the period and record the run."""
        async with self.sessions() as s, s.begin():
            report = await profit_report.build_report(
                session=s, workspace_id=self.ws, period=parse_period(key, today=self.today)
            )
            run = await profit_report.record_report_run(
                session=s, workspace_id=self.ws, kind="final", report=report, at=self.at
            )
            assert run.id is not None
            return report, run.id

    async def restatements(self) -> list[Restatement]:
        async with self.sessions() as s:
            return list(
                (
                    await s.exec(
                        select(Restatement)
                        .where(Restatement.workspace_id == self.ws)
                        .order_by(sa.text("id"))
                    )
                ).all()
            )
