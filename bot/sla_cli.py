"""`docket report sla`: how each customer was served in a period, from the shell."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from models.directory import match_customers
from models.periods import parse_period
from models.sla_report import build_sla_report, render_sla

if TYPE_CHECKING:
    from bot.reports import Shell


async def report_sla(shell: Shell, args: argparse.Namespace) -> int:
    """Print the SLA report of the tickets created in `--period` (default: last week)."""
    try:
        period = parse_period(args.period, today=shell.today())
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return 2
    now = _moment(args.at) if getattr(args, "at", None) else shell.now()
    if now is None:
        print("--at: give an ISO moment with its offset, like 2025-08-20T10:00Z", file=sys.stderr)
        return 2
    async with shell.sessions() as session:
        customer_ids = None
        if args.customer:
            found = await match_customers(
                session=session, workspace_id=shell.workspace_id, text=args.customer
            )
            if len(found) != 1:
                names = ", ".join(c.name for c in found) or "none"
                print(f"--customer {args.customer!r} matches {names}: name one.", file=sys.stderr)
                return 1
            customer_ids = [c.id for c in found if c.id is not None]
        report = await build_sla_report(
            session=session,
            workspace_id=shell.workspace_id,
            period=period,
            now=now,
            customer_ids=customer_ids,
        )
    sys.stdout.write(render_sla(report, args.format))
    return 0


def _moment(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
