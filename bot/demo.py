"""`docket demo`: a realistic demo workspace and last week's managers' report, without Slack.

The demo database (``demo.db`` by default) is recreated on every run: twelve customers on
hourly, fixed-fee and prepaid-block contracts, eight people in two groups with dated cost
rates (one changes during last week), twelve weeks of tickets and time, and a few honest gaps
(a contractor without a cost rate, tickets without a contract, a week restated after it was
reported). Results come from the profitability engine; the report is the same summary the
weekly post shows, as text, with the chart written next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from bot.config import ConfigError, Settings
from bot.db import make_engine, make_sessionmaker, normalise_url
from bot.demo_sla import add_service_levels, service_levels_text
from bot.migrate import upgrade
from jobs.chart import render_chart
from models.periods import local_date, previous, week_of
from models.profit_bulk import rebuild, refresh_step
from models.profit_report import build_report, record_report_run
from models.tables import (
    ChargeRate,
    Contract,
    ContractKind,
    CostRate,
    Customer,
    Member,
    MemberGroup,
    Role,
    Ticket,
    TicketStatus,
    TimeEntry,
    Workspace,
)
from models.timelog import EntryKey, mark_entry_changes
from models.weekly import render_text
from models.weekly_data import load_post

DEMO_TEAM = "TDEMO"
DEFAULT_DATABASE = "sqlite+aiosqlite:///demo.db"
DEFAULT_OUT = "demo-out"
WEEKS = 12
SEED = 20250609  # the same data on every run for a given date


@dataclass(frozen=True)
class DemoCustomer:
    name: str
    kind: ContractKind
    amount: int  # hourly: charge per hour; fixed: monthly fee; block: block price (minor)
    weekly_hours: float  # typical support load
    direct: int = 0  # monthly direct cost (licences, hosting), minor units
    block_hours: int = 0


CUSTOMERS = (
    DemoCustomer("Aldgate Dental", ContractKind.HOURLY, 11_000, 9),
    DemoCustomer("Brightwater Logistics", ContractKind.HOURLY, 9_500, 14),
    DemoCustomer("Cobalt Architects", ContractKind.HOURLY, 12_500, 6),
    DemoCustomer("Dunmore & Sons Solicitors", ContractKind.HOURLY, 13_000, 5),
    DemoCustomer("Evergreen Nurseries", ContractKind.HOURLY, 8_500, 4),
    DemoCustomer("Fulcrum Engineering", ContractKind.FIXED, 450_000, 22, direct=60_000),
    DemoCustomer("Greyfriars Accountants", ContractKind.FIXED, 280_000, 9, direct=35_000),
    DemoCustomer("Harbour View Hotel", ContractKind.FIXED, 190_000, 12, direct=25_000),
    DemoCustomer("Ironbridge School", ContractKind.FIXED, 320_000, 7, direct=80_000),
    DemoCustomer("Juniper Health Clinic", ContractKind.BLOCK, 360_000, 6, block_hours=40),
    DemoCustomer("Kestrel Marketing", ContractKind.BLOCK, 180_000, 5, block_hours=20),
    DemoCustomer("Lumen Studios", ContractKind.BLOCK, 450_000, 8, block_hours=50),
)

# (name, group, own rate in minor units per hour or None for the group's)
PEOPLE = (
    ("Ava Thompson", "Service desk", None),
    ("Ben Okafor", "Service desk", None),
    ("Chloe Martin", "Service desk", 4_600),
    ("Dev Patel", "Service desk", None),
    ("Elena Rossi", "Engineering", None),
    ("Finn Larsen", "Engineering", 7_400),  # a raise in the middle of last week
    ("Grace Kim", "Engineering", None),
    ("Sam Contractor", None, None),  # no group and no rate: uncosted
)
GROUP_RATES = {"Service desk": 4_200, "Engineering": 6_300}
RAISED_RATE = 7_900

TITLES = (
    "Printer offline",
    "VPN drops every hour",
    "New starter laptop",
    "Mailbox full",
    "Backup job failed",
    "Firewall rule change",
    "Password reset",
    "Teams calls choppy",
    "Server patching",
    "Wi-Fi dead spot in meeting room",
    "Shared drive permissions",
    "Phishing email reported",
)


@dataclass
class Counts:
    customers: int = 0
    members: int = 0
    tickets: int = 0
    entries: int = 0


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ConfigError("The demo needs a database file, not an in-memory database.")
    return Path(parsed.database)


REAL_DATA = (
    "That database holds real workspaces; the demo only recreates an empty or demo database. "
    "Pass --database with a separate one."
)


def _sqlite_teams(path: Path) -> set[str]:
    """Team ids in an existing SQLite file (empty when it is not a Docket database)."""
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return {row[0] for row in conn.execute("SELECT team_id FROM workspace")}
    except sqlite3.Error:
        return set()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


async def _recreate(url: str) -> AsyncEngine:
    """A fresh, migrated demo database. An existing one is wiped only if it holds nothing
    but an earlier demo."""
    path = _sqlite_path(url)
    if path is not None:
        if _sqlite_teams(path) - {DEMO_TEAM}:
            raise ConfigError(REAL_DATA)
        await asyncio.to_thread(_remove_sqlite, path)
        engine = make_engine(url)
    else:
        engine = make_engine(url)
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            teams = set((await session.exec(select(Workspace.team_id))).all())
        if teams - {DEMO_TEAM}:
            await engine.dispose()
            raise ConfigError(REAL_DATA)

        def drop(sync_conn: Any) -> None:
            SQLModel.metadata.drop_all(sync_conn)
            sync_conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")

        async with engine.begin() as conn:
            await conn.run_sync(drop)
    await upgrade(engine)
    return engine


def _minutes(rng: random.Random, hours: float) -> int:
    """A realistic entry length: quarter hours, at least 15 minutes."""
    return max(15, round(rng.gauss(hours * 60, hours * 20) / 15) * 15)


async def fill(
    engine: AsyncEngine, *, today: date, timezone: str, currency: str
) -> tuple[int, Counts]:
    """Create the demo workspace with twelve weeks of work up to last Sunday."""
    rng = random.Random(SEED)
    last_week = previous(week_of(today))
    first_day = last_week.start - timedelta(weeks=WEEKS - 1)
    counts = Counts()
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(
            team_id=DEMO_TEAM,
            name="Northwind IT (demo)",
            timezone=timezone,
            currency=currency,
            managers_channel="CDEMOMGRS",
            target_margin_pct=30,
            created_at=datetime.combine(first_day, datetime.min.time(), tzinfo=UTC),
        )
        session.add(ws)
        await session.flush()
        assert ws.id is not None
        wid = ws.id
        groups = {name: MemberGroup(workspace_id=wid, name=name) for name in GROUP_RATES}
        session.add_all(groups.values())
        await session.flush()
        long_ago = first_day - timedelta(days=365)
        for name, rate in GROUP_RATES.items():
            group_id = groups[name].id
            session.add(
                CostRate(
                    workspace_id=wid,
                    subject=f"group:{group_id}",
                    group_id=group_id,
                    effective_from=long_ago,
                    minor_per_hour=rate,
                )
            )
        members: list[Member] = []
        for index, (name, group, _own) in enumerate(PEOPLE):
            member = Member(
                workspace_id=wid,
                slack_user_id=f"UDEMO{index:02d}",
                email=f"{name.split()[0].lower()}@northwind.example",
                name=name,
                role=Role.MANAGER if index == 4 else Role.AGENT,
                group_id=groups[group].id if group else None,
            )
            session.add(member)
            members.append(member)
        await session.flush()
        for member, (_name, _group, own) in zip(members, PEOPLE, strict=True):
            if own is None:
                continue
            session.add(
                CostRate(
                    workspace_id=wid,
                    subject=f"member:{member.id}",
                    member_id=member.id,
                    effective_from=long_ago,
                    minor_per_hour=own,
                )
            )
        finn = members[5]
        session.add(
            CostRate(
                workspace_id=wid,
                subject=f"member:{finn.id}",
                member_id=finn.id,
                effective_from=last_week.start + timedelta(days=2),  # Wednesday of last week
                minor_per_hour=RAISED_RATE,
            )
        )
        counts.members = len(members)

        contracts: list[tuple[Customer, Contract, DemoCustomer]] = []
        for spec in CUSTOMERS:
            customer = Customer(
                workspace_id=wid,
                name=spec.name,
                email_domains=spec.name.split()[0].lower().strip("&") + ".example",
            )
            session.add(customer)
            await session.flush()
            assert customer.id is not None
            contract = Contract(
                workspace_id=wid,
                customer_id=customer.id,
                name={
                    ContractKind.HOURLY: "Support by the hour",
                    ContractKind.FIXED: "Managed service",
                    ContractKind.BLOCK: f"{spec.block_hours}-hour block",
                }[spec.kind],
                kind=spec.kind,
                start_date=first_day - timedelta(days=120),
                monthly_fee_minor=spec.amount if spec.kind is ContractKind.FIXED else 0,
                block_minutes=spec.block_hours * 60,
                block_price_minor=spec.amount if spec.kind is ContractKind.BLOCK else 0,
                overage_minor_per_hour=11_000 if spec.kind is ContractKind.BLOCK else 0,
                monthly_direct_cost_minor=spec.direct,
            )
            session.add(contract)
            await session.flush()
            if spec.kind is ContractKind.HOURLY:
                session.add(
                    ChargeRate(
                        workspace_id=wid,
                        contract_id=contract.id or 0,
                        effective_from=contract.start_date,
                        minor_per_hour=spec.amount,
                    )
                )
            contracts.append((customer, contract, spec))
        counts.customers = len(contracts)

        service_desk = [m for m in members if m.group_id == groups["Service desk"].id]
        engineers = [m for m in members if m.group_id == groups["Engineering"].id]
        contractor = members[-1]
        number = 0
        for week in range(WEEKS):
            monday = first_day + timedelta(weeks=week)
            for customer, contract, spec in contracts:
                # Busier weeks and quieter ones; a slow upward drift over the quarter.
                load = spec.weekly_hours * rng.uniform(0.6, 1.35) * (1 + week * 0.015)
                tickets = max(1, round(load / 3))
                for _ in range(tickets):
                    number += 1
                    # One ticket in fifteen was opened without picking the contract.
                    no_contract = rng.random() < 1 / 15
                    ticket = Ticket(
                        workspace_id=wid,
                        number=number,
                        title=rng.choice(TITLES),
                        customer_id=customer.id,
                        contract_id=None if no_contract else contract.id,
                        status=TicketStatus.CLOSED if week < WEEKS - 1 else TicketStatus.OPEN,
                        created_at=datetime.combine(monday, datetime.min.time(), tzinfo=UTC),
                    )
                    session.add(ticket)
                    await session.flush()
                    counts.tickets += 1
                    for _entry in range(rng.choice((1, 1, 2, 3))):
                        people = engineers if rng.random() < 0.35 else service_desk
                        if week >= WEEKS - 3 and rng.random() < 0.08:
                            people = [contractor]
                        day = monday + timedelta(days=rng.randrange(5))
                        session.add(
                            TimeEntry(
                                workspace_id=wid,
                                member_id=rng.choice(people).id or 0,
                                ticket_id=ticket.id,
                                customer_id=customer.id,
                                contract_id=ticket.contract_id,
                                work_date=day,
                                minutes=_minutes(rng, load / tickets / 1.6),
                                billable=rng.random() > 0.05,
                            )
                        )
                        counts.entries += 1
        # Internal work: a cost without a customer.
        for week in range(WEEKS):
            session.add(
                TimeEntry(
                    workspace_id=wid,
                    member_id=members[4].id or 0,
                    work_date=first_day + timedelta(weeks=week, days=4),
                    minutes=180,
                    note="Internal tooling",
                )
            )
            counts.entries += 1
    await rebuild(sessions=sessions, workspace_id=wid, today=today, at=datetime.now(UTC))
    return wid, counts


async def restate_week_before(engine: AsyncEngine, workspace_id: int, *, today: date) -> None:
    """Report the week before last, then log late time on it: last week's report restates it."""
    sessions = make_sessionmaker(engine)
    week = previous(previous(week_of(today)))
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        report = await build_report(session=session, workspace_id=workspace_id, period=week)
        await record_report_run(
            session=session, workspace_id=workspace_id, kind="weekly", report=report, at=now
        )
        customer = (
            await session.exec(select(Customer).where(Customer.name == "Brightwater Logistics"))
        ).one()
        contract = (
            await session.exec(select(Contract).where(Contract.customer_id == customer.id))
        ).one()
        member = (await session.exec(select(Member).where(Member.name == "Ben Okafor"))).one()
        late = TimeEntry(
            workspace_id=workspace_id,
            member_id=member.id or 0,
            customer_id=customer.id,
            contract_id=contract.id,
            work_date=week.start + timedelta(days=3),
            minutes=150,
            note="Logged late: warehouse scanner rollout",
        )
        session.add(late)
        await session.flush()
        await mark_entry_changes(
            session=session, workspace_id=workspace_id, changes=[EntryKey.of(late)], at=now
        )
    while True:
        async with sessions() as session, session.begin():
            stats = await refresh_step(
                session=session, workspace_id=workspace_id, today=today, at=now
            )
        if not stats.customer_periods:
            return


async def run_demo(*, url: str, out: Path, today: date, timezone: str, currency: str) -> str:
    """Build the demo and return what it prints; the chart goes to ``out``."""
    started = time.monotonic()
    engine = await _recreate(url)
    try:
        workspace_id, counts = await fill(engine, today=today, timezone=timezone, currency=currency)
        await restate_week_before(engine, workspace_id, today=today)
        last_week = previous(week_of(today))
        await add_service_levels(engine, workspace_id, week=last_week)
        service_levels = await service_levels_text(
            engine, workspace_id, week=last_week, now=datetime.now(UTC)
        )
        async with make_sessionmaker(engine)() as session:
            ws = await session.get(Workspace, workspace_id)
            assert ws is not None
            post = await load_post(session=session, workspace=ws, kind="weekly", period=last_week)
    finally:
        await engine.dispose()
    png = await asyncio.to_thread(render_chart, post.summary.chart)
    text = render_text(post.summary)
    written = await asyncio.to_thread(_write_outputs, out, last_week.key, text, png)
    lines = [
        f"Docket demo: {ws.name}: {counts.customers} customers, {counts.members} people, "
        f"{counts.tickets} tickets and {counts.entries} time entries over {WEEKS} weeks.",
        f"Database: {url}",
        "",
        text,
        "",
        service_levels,
        *(f"{label}: {path}" for label, path in written),
        f"Built in {time.monotonic() - started:.1f} s.",
    ]
    return "\n".join(lines)


def _write_outputs(out: Path, key: str, text: str, png: bytes | None) -> list[tuple[str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if png is not None:
        chart = out / f"docket-weekly-{key}.png"
        chart.write_bytes(png)
        written.append(("Chart", chart))
    report = out / f"docket-weekly-{key}.txt"
    report.write_text(text + "\n", encoding="utf-8")
    written.append(("Report", report))
    return written


def command_demo(settings: Settings, args: argparse.Namespace) -> int:
    """fill a demo database and print last week's managers' report (no Slack needed)"""
    url = normalise_url(args.database or DEFAULT_DATABASE)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the migration chatter is noise here
    today = local_date(datetime.now(UTC), ZoneInfo(settings.docket_timezone))
    try:
        text = asyncio.run(
            run_demo(
                url=url,
                out=Path(args.out),
                today=today,
                timezone=settings.docket_timezone,
                currency=settings.docket_currency,
            )
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(text)
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=None,
        help=f"database URL for the demo, recreated on every run (default {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"folder for the chart (default {DEFAULT_OUT}/)"
    )


command_demo.configure = _configure  # type: ignore[attr-defined]
