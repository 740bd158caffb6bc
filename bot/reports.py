"""`docket report profitability ...` and `docket rebuild`: the profitability engine from the shell.

Both bring stored results up to date first (the same refresh the background worker runs), so a
report printed here shows exactly what `/profit` shows once the worker has caught up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from tqdm import tqdm

from bot.config import ConfigError, Settings
from bot.db import make_engine, make_sessionmaker
from bot.migrate import upgrade
from bot.sla_cli import report_sla
from models import profit_bulk, profit_refresh, profit_report, profit_store
from models.directory import match_customers
from models.periods import local_date, parse_period
from models.reporting import render
from models.tables import Workspace
from models.workspaces import ensure_workspace

FORMATS = ("table", "json", "csv")
BIG_QUEUE = 50  # stale customer-periods from which the refresh shows a progress bar


@dataclass
class Shell:
    """A database, its sessions and the workspace a shell command works on."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    workspace_id: int
    timezone: ZoneInfo

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return local_date(self.now(), self.timezone)


def add_team_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--team",
        help="Slack team id of the workspace (needed only when the database holds several)",
    )


@asynccontextmanager
async def open_shell(
    settings: Settings, team: str | None, *, create: bool = False
) -> AsyncIterator[Shell]:
    """Connect (migrating if needed) and find the workspace: the only one, or `team`'s.

    With `create`, a missing `team` workspace is created from the settings (an import before
    the first `docket serve`). Raises ConfigError with what to do otherwise.
    """
    # Migration chatter is noise in a report's output.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            rows = list((await session.exec(select(Workspace))).all())
            if team:
                found = [w for w in rows if w.team_id == team]
                if not found and create:
                    found = [
                        await ensure_workspace(
                            session=session,
                            team_id=team,
                            timezone=settings.docket_timezone,
                            currency=settings.docket_currency,
                        )
                    ]
                if not found:
                    raise ConfigError(f"No workspace with team id {team} in this database.")
            elif len(rows) == 1:
                found = rows
            elif not rows:
                raise ConfigError(
                    "There is no workspace in this database yet: run `docket serve` once "
                    "(it registers your Slack workspace), or pass --team T0123ABC to create it."
                )
            else:
                teams = ", ".join(w.team_id for w in rows)
                raise ConfigError(f"Several workspaces here ({teams}): pick one with --team.")
            ws = found[0]
            assert ws.id is not None
            shell = Shell(engine, sessions, ws.id, ZoneInfo(ws.timezone))
        yield shell
    finally:
        await engine.dispose()


async def refresh_all(shell: Shell, *, show: bool = True) -> int:
    """Bring every stored result up to date; returns the customer-periods recomputed."""
    async with shell.sessions() as session, session.begin():
        await profit_refresh.ensure_horizon(
            session=session, workspace_id=shell.workspace_id, today=shell.today(), at=shell.now()
        )
        waiting = await profit_refresh.stale_count(session=session, workspace_id=shell.workspace_id)
    bar: Any = tqdm(
        total=waiting,
        desc="Refreshing",
        unit="period",
        file=sys.stderr,
        disable=not show or waiting < BIG_QUEUE,
    )
    done = 0
    with bar:
        while True:
            async with shell.sessions() as session, session.begin():
                stats = await profit_bulk.refresh_step(
                    session=session,
                    workspace_id=shell.workspace_id,
                    today=shell.today(),
                    at=shell.now(),
                    limit=50,
                )
            if stats.customer_periods == 0:
                return done
            done += stats.customer_periods
            bar.update(stats.customer_periods)


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["profitability", "sla"], help="the report to print")
    parser.add_argument(
        "--period",
        default="last-week",
        help="2025-W23, 2025-06, week, last-week, month or last-month (default: last-week)",
    )
    parser.add_argument("--customer", help="only this customer (name, or part of it)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument(
        "--final",
        action="store_true",
        help="record the report as final: later changes to the period show as restatements",
    )
    parser.add_argument(
        "--at",
        help="sla only: evaluate the clocks at this ISO moment instead of now (2025-08-20T10:00Z)",
    )
    add_team_argument(parser)


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    async with open_shell(settings, args.team) as shell:
        if args.what == "sla":
            return await report_sla(shell, args)
        try:
            period = parse_period(args.period, today=shell.today())
        except ValueError as exc:
            print(f"--period: {exc}", file=sys.stderr)
            return 2
        if period.kind not in profit_store.PERIOD_KINDS:
            print("--period: pick a week or a month", file=sys.stderr)
            return 2
        await refresh_all(shell)
        async with shell.sessions() as session, session.begin():
            customer_ids = None
            if args.customer:
                found = await match_customers(
                    session=session, workspace_id=shell.workspace_id, text=args.customer
                )
                if not found:
                    print(f"No customer matches {args.customer!r}.", file=sys.stderr)
                    return 1
                if len(found) > 1:
                    names = ", ".join(c.name for c in found)
                    print(f"{args.customer!r} matches several customers: {names}.", file=sys.stderr)
                    return 1
                customer_ids = [found[0].id]
            report = await profit_report.build_report(
                session=session,
                workspace_id=shell.workspace_id,
                period=period,
                customer_ids=customer_ids,
            )
            if args.final:
                if customer_ids is not None:
                    print("--final reports every customer: leave out --customer.", file=sys.stderr)
                    return 2
                await profit_report.record_report_run(
                    session=session,
                    workspace_id=shell.workspace_id,
                    kind="final",
                    report=report,
                    at=shell.now(),
                )
        sys.stdout.write(render(report, args.format))
        if args.final:
            print(f"Recorded {period.key} as final.", file=sys.stderr)
    return 0


def command_report(settings: Settings, args: argparse.Namespace) -> int:
    """Print a profitability or service-level report as a table, JSON or CSV."""
    return asyncio.run(_report(settings, args))


command_report.configure = _configure_report  # type: ignore[attr-defined]


def _configure_rebuild(parser: argparse.ArgumentParser) -> None:
    add_team_argument(parser)


async def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    async with open_shell(settings, args.team) as shell:
        bar: Any = tqdm(desc="Rebuilding", unit="customer", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        with bar:
            stats = await profit_bulk.rebuild(
                sessions=shell.sessions,
                workspace_id=shell.workspace_id,
                today=shell.today(),
                at=shell.now(),
                progress=progress,
            )
        print(
            f"Rebuilt profitability: {stats.rows_written} result rows written, "
            f"{stats.rows_deleted} removed, {stats.restatements} restatement(s)."
        )
    return 0


def command_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Recompute every stored profitability result from scratch."""
    return asyncio.run(_rebuild(settings, args))


command_rebuild.configure = _configure_rebuild  # type: ignore[attr-defined]
