"""`docket integrations add|list|map`: monitoring sources that may post alerts, from the shell.

`add` prints the source's secret as its last line (for scripts); the URL to give the
monitoring system is `<Docket's base URL>/integrations/alerts/<name>`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.db import make_engine, make_sessionmaker
from models.alerts import AlertSourceError, create_source, list_sources, map_customer
from models.tables import Workspace, utcnow
from models.tickets import customer_by_name


async def _workspace(session: AsyncSession, team: str | None) -> Workspace | None:
    stmt = select(Workspace)
    if team:
        stmt = stmt.where(Workspace.team_id == team)
    rows = list((await session.exec(stmt.limit(2))).all())
    return rows[0] if len(rows) == 1 else None


async def _run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            ws = await _workspace(session, args.team)
            if ws is None or ws.id is None:
                print(
                    "Cannot tell which workspace: run `docket serve` once, or give --team.",
                    file=sys.stderr,
                )
                return 2
            if args.integrations_command == "add":
                source = await create_source(
                    session=session,
                    workspace_id=ws.id,
                    name=args.name,
                    secret=args.secret,
                    customer_label=args.customer_label,
                    auto_resolve=args.auto_resolve,
                    storm_per_minute=args.storm_per_minute,
                    severity_map=dict(args.severity or []),
                    at=utcnow(),
                )
                print(f"Source {source.name} created.", file=out)
                print(f"URL path: /integrations/alerts/{source.name}", file=out)
                print(source.secret, file=out)
                return 0
            if args.integrations_command == "map":
                sources = {
                    s.name: s for s in await list_sources(session=session, workspace_id=ws.id)
                }
                found = sources.get(args.source.lower())
                customer = await customer_by_name(
                    session=session, workspace_id=ws.id, name=args.customer
                )
                if found is None or found.id is None or customer is None or customer.id is None:
                    print("No such source or customer.", file=sys.stderr)
                    return 1
                await map_customer(
                    session=session,
                    workspace_id=ws.id,
                    source_id=found.id,
                    value=args.value,
                    customer_id=customer.id,
                )
                print(f"{args.value} -> {customer.name} for {found.name}.", file=out)
                return 0
            rows = await list_sources(session=session, workspace_id=ws.id)
    except AlertSourceError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(f"Cannot reach the database ({type(exc.orig).__name__}).", file=sys.stderr)
        print("Is DATABASE_URL right, and has `docket migrate` run?", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    if not rows:
        print("No alert sources yet: `docket integrations add NAME`.", file=out)
    for source in rows:
        flags = ["auto-resolve" if source.auto_resolve else "manual resolve"]
        flags.append(f"label {source.customer_label}")
        flags.append(f"storm over {source.storm_per_minute}/min")
        print(f"{source.name}  /integrations/alerts/{source.name}  {', '.join(flags)}", file=out)
    return 0


def command_integrations(settings: Settings, args: argparse.Namespace) -> int:
    """Add, list and map monitoring alert sources."""
    return asyncio.run(_run(settings, args, sys.stdout))


def _severity(text: str) -> tuple[str, str]:
    severity, sep, priority = text.partition("=")
    if not sep or not severity.strip() or not priority.strip():
        raise argparse.ArgumentTypeError("use SEVERITY=PRIORITY, e.g. disaster=urgent")
    return severity.strip().lower(), priority.strip().lower()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `add`, `list` and `map` to the `docket integrations` parser."""
    parser.add_argument("--team", help="the Slack team id, when the database has several")
    sub = parser.add_subparsers(dest="integrations_command", required=True)
    add = sub.add_parser("add", help="create an alert source; prints its secret last")
    add.add_argument("name", help="lower-case letters, digits, '-' and '_'")
    add.add_argument("--secret", help="use this secret (16-128 characters) instead of a new one")
    add.add_argument("--customer-label", default="customer", help="the label naming the customer")
    add.add_argument(
        "--auto-resolve",
        action="store_true",
        help="resolve a ticket nobody touched when its alert clears",
    )
    add.add_argument(
        "--storm-per-minute",
        type=int,
        default=20,
        help="new alerts a minute before they fold into a storm ticket (default 20)",
    )
    add.add_argument(
        "--severity",
        action="append",
        type=_severity,
        metavar="SEVERITY=PRIORITY",
        help="map a severity to a priority (low, normal, high, urgent); repeatable",
    )
    sub.add_parser("list", help="show the alert sources")
    mapping = sub.add_parser("map", help="map a source's customer label value to a customer")
    mapping.add_argument("source")
    mapping.add_argument("value", help="the label value the monitoring system sends")
    mapping.add_argument("customer", help="the customer's name in Docket")


command_integrations.configure = configure  # type: ignore[attr-defined]
