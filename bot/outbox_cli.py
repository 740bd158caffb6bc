"""`docket outbox list|retry [ID|--all]`: the outbox's dead messages, from the shell.

A running `docket serve` picks retried rows up within its idle poll (a few seconds): the
wake-up after a commit only reaches workers in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.db import make_engine, make_sessionmaker
from models.outbox import describe, list_dead, retry_dead, status_counts
from models.tables import utcnow


async def _run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            if args.outbox_command == "retry":
                count = await retry_dead(
                    session=session,
                    workspace_id=None,
                    row_id=None if args.all else args.id,
                    at=utcnow(),
                )
                if count == 0 and not args.all:
                    print(f"No dead message {args.id}.", file=out)
                    return 1
                print(f"Queued {count} message{'s' if count != 1 else ''} again.", file=out)
                return 0
            counts = await status_counts(session=session, workspace_id=None)
            rows = await list_dead(session=session, workspace_id=None, limit=args.limit)
    except DBAPIError as exc:
        print(f"Cannot read the outbox ({type(exc.orig).__name__}).", file=sys.stderr)
        print("Is DATABASE_URL right, and has `docket migrate` run?", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    print(
        f"{counts['pending']} pending, {counts['delivered']} delivered, {counts['dead']} dead.",
        file=out,
    )
    for row in rows:
        queued = row.created_at.strftime("%Y-%m-%d %H:%M")
        print(
            f"{row.id:>8}  {queued}  {row.attempts:>3}x  {describe(row)}\n"
            f"{'':>8}  {row.last_error or ''}",
            file=out,
        )
    if rows:
        print("Retry with `docket outbox retry ID` or `docket outbox retry --all`.", file=out)
    return 0


def command_outbox(settings: Settings, args: argparse.Namespace) -> int:
    """List the outbox's dead messages, or queue them again."""
    if args.outbox_command == "retry" and (args.id is None) == (not args.all):
        print("Give one message ID or --all.", file=sys.stderr)
        return 2
    return asyncio.run(_run(settings, args, sys.stdout))


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `list` and `retry` to the `docket outbox` parser."""
    sub = parser.add_subparsers(dest="outbox_command", required=True)
    listing = sub.add_parser("list", help="show counts and the dead messages, newest first")
    listing.add_argument("--limit", type=int, default=50, help="how many to show (default 50)")
    retry = sub.add_parser("retry", help="queue a dead message (or all of them) again")
    retry.add_argument("id", nargs="?", type=int, help="the message ID from `docket outbox list`")
    retry.add_argument("--all", action="store_true", help="every dead message")


command_outbox.configure = configure  # type: ignore[attr-defined]
