"""The SLA scan over 10,000 open tickets with SLAs (SQLite, or PostgreSQL with --postgres).

N customer-opened tickets are written with their history and evaluated once (as a ticket
change does). Figures: one scan pass when about 1% of them have crossed their warning share
(the steady state: the scan runs every few seconds), and the catch-up pass after every ticket
crossed it at once (a host suspended for hours), which writes N notices and their outbox rows.
Baseline, side by side in the same run: re-evaluating every open ticket from its history, what
a scan without the stored next-check time would do on every pass.

    python -m bench.sla_scan [--small] [--n 10000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import Row, Timer, machine, print_table, ratio

# Wednesday 3 September 2025, 16:00 UTC: every ticket was opened today in business hours.
NOW = datetime(2025, 9, 3, 16, 0, tzinfo=UTC)
TARGET = timedelta(hours=4)  # first response on normal priority
WARN_AFTER = TARGET * 3 // 4


async def build(url: str, n: int) -> Any:
    import sqlalchemy as sa

    from bot.db import make_engine, make_sessionmaker
    from bot.migrate import upgrade
    from models.sla import PriorityTargets
    from models.sla_store import refresh_open_tickets, save_policy
    from models.tables import Customer, Ticket, TicketEvent, Workspace

    engine = make_engine(url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(
            team_id=f"TB{uuid.uuid4().hex[:10]}",
            name="Bench IT",
            timezone="UTC",
            triage_channel="CTRIAGE",
        )
        session.add(ws)
        await session.flush()
        assert ws.id is not None
        ws_id = ws.id
        customer = Customer(workspace_id=ws_id, name="Acme")
        session.add(customer)
        await session.flush()
        await save_policy(
            session=session,
            workspace_id=ws_id,
            name="default",
            calendar="business",
            targets={"normal": PriorityTargets("4h", "2d")},
        )
        # Ages spread so that the oldest 1% have used more than the warning share.
        span = WARN_AFTER.total_seconds() * 1.01
        tickets = [
            {
                "workspace_id": ws_id,
                "number": i + 1,
                "title": f"Ticket {i + 1}",
                "description": "",
                "status": "new",
                "priority": "normal",
                "customer_id": customer.id,
                "verified": True,
                "version": 1,
                "created_at": NOW - timedelta(seconds=span * i / n),
                "updated_at": NOW,
            }
            for i in range(n)
        ]
        await session.execute(sa.insert(Ticket.__table__), tickets)  # type: ignore[attr-defined]
        table = Ticket.__table__  # type: ignore[attr-defined]
        ids = (
            await session.execute(
                sa.select(table.c.id, table.c.created_at).where(table.c.workspace_id == ws_id)
            )
        ).all()
        events = [
            {
                "workspace_id": ws_id,
                "ticket_id": tid,
                "kind": "created",
                "actor_label": "customer",
                "body": "",
                "data": {"status": "new", "priority": "normal", "source": "email"},
                "deleted": False,
                "created_at": created,
            }
            for tid, created in ids
        ]
        await session.execute(sa.insert(TicketEvent.__table__), events)  # type: ignore[attr-defined]
    async with sessions() as session, session.begin():
        await refresh_open_tickets(session=session, workspace_id=ws_id, at=NOW - timedelta(hours=3))
    return engine, sessions, ws_id


async def scan_all(sessions: Any, ws_id: int, now: datetime) -> tuple[float, int, int]:
    from handlers.blocks.sla import notice_text
    from models.sla_store import scan_due

    checked = queued = 0
    with Timer() as timer:
        while True:
            async with sessions() as session, session.begin():
                result = await scan_due(
                    session=session, workspace_id=ws_id, now=now, render=notice_text
                )
            checked += result.checked
            queued += result.queued
            if not result.more:
                break
    return timer.seconds, checked, queued


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from models.sla_store import ticket_states
    from models.tables import Ticket

    work = Path(tempfile.mkdtemp(prefix="docket-bench-sla-"))
    url = args.postgres or f"sqlite+aiosqlite:///{work / 'docket.db'}"
    engine, sessions, ws_id = await build(url, args.n)
    result: dict[str, Any] = {"n": args.n, "backend": engine.dialect.name}
    try:
        with Timer() as full:
            async with sessions() as session:
                table = Ticket.__table__  # type: ignore[attr-defined]
                stmt = table.select().where(table.c.workspace_id == ws_id)
                tickets = (await session.execute(stmt)).all()
                loaded = [Ticket.model_validate(dict(row._mapping)) for row in tickets]
                states = await ticket_states(
                    session=session, workspace_id=ws_id, tickets=loaded, now=NOW
                )
        result["full_seconds"] = full.seconds
        result["full_evaluated"] = len(states)
        seconds, checked, queued = await scan_all(sessions, ws_id, NOW)
        result.update(steady_seconds=seconds, steady_checked=checked, steady_queued=queued)
        seconds, checked, queued = await scan_all(sessions, ws_id, NOW)
        result.update(idle_seconds=seconds, idle_checked=checked, idle_queued=queued)
        # Thursday 11:00: an hour on Wednesday and two on Thursday later, every ticket has used
        # more than its warning share (the older ones more than the target).
        later = NOW + timedelta(hours=19)
        seconds, checked, queued = await scan_all(sessions, ws_id, later)
        result.update(catchup_seconds=seconds, catchup_checked=checked, catchup_queued=queued)
    finally:
        await engine.dispose()
    return result


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    full = r["full_seconds"]
    rows = [
        Row(
            f"scan pass, {r['steady_checked']} of {r['n']} due",
            f"{r['steady_seconds'] * 1000:.0f} ms",
            f"{full * 1000:.0f} ms (evaluate all {r['full_evaluated']})",
            ratio(r["steady_seconds"], full),
            "< 1 s",
            r["steady_seconds"] < 1.0,
        ),
        Row(
            "notices queued (steady pass)",
            str(r["steady_queued"]),
            str(r["steady_checked"]),
        ),
        Row(
            "scan pass, nothing due",
            f"{r['idle_seconds'] * 1000:.1f} ms",
            f"{full * 1000:.0f} ms",
            ratio(r["idle_seconds"], full),
        ),
        Row(
            f"catch-up: all {r['catchup_checked']} due at once",
            f"{r['catchup_seconds'] * 1000:.0f} ms",
            f"{full * 1000:.0f} ms",
            ratio(r["catchup_seconds"], full),
        ),
        Row(
            "notices queued (catch-up)", str(r["catchup_queued"]), str(r["n"] - r["steady_queued"])
        ),
    ]
    print_table(f"SLA scan: {r['n']} open tickets with SLAs ({r['backend']})", rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket SLA scan benchmark")
    parser.add_argument("--small", action="store_true", help="500 tickets")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument(
        "--postgres", default=None, help="a PostgreSQL URL (a new workspace is added)"
    )
    args = parser.parse_args(argv)
    if args.small:
        args.n = 500
    print(f"machine: {machine()}")
    result = asyncio.run(measure(args))
    report(args, result)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
