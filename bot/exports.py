"""`docket export journal|invoices --month 2025-06`: the month's figures for the accounting system.

Both bring stored results up to date first (as `docket report` does), so the amounts equal
`docket report profitability --period MONTH --format json` to the cent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.reports import add_team_argument, open_shell, refresh_all
from models import exports
from models.accounting import FORMATS, NO_TAX, MissingAccount, render_invoices, render_journal
from models.periods import parse_period


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a month's revenue and cost journal, or its invoice lines, as CSV, JSON or the "
        "Xero / QuickBooks Online import formats (see docs/integrations.md)."
    )
    parser.add_argument("what", choices=["journal", "invoices"])
    parser.add_argument("--month", required=True, help="the month, e.g. 2025-06")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument(
        "--final",
        action="store_true",
        help="journal only: record the month as exported; later changes to it appear once, "
        "as adjustments in the next month's final journal",
    )
    parser.add_argument(
        "--labour-allocation",
        choices=["on", "off"],
        help="journal only: change the workspace setting that posts the loaded labour cost "
        "as a management allocation (kept for later exports)",
    )
    parser.add_argument(
        "--tax-rate",
        default=NO_TAX,
        help=f"Xero tax rate name for the lines (default {NO_TAX!r})",
    )
    parser.add_argument("--output", type=Path, help="write to this file instead of stdout")
    add_team_argument(parser)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    async with open_shell(settings, args.team) as shell:
        try:
            month = parse_period(args.month, today=shell.today())
        except ValueError as exc:
            print(f"--month: {exc}", file=sys.stderr)
            return 2
        if month.kind != "month":
            print("--month: give a month such as 2025-06", file=sys.stderr)
            return 2
        if args.what == "invoices" and (args.final or args.labour_allocation):
            print("--final and --labour-allocation are for journals.", file=sys.stderr)
            return 2
        await refresh_all(shell)
        try:
            async with shell.sessions() as session, session.begin():
                if args.labour_allocation:
                    await exports.set_labour_allocation(
                        session=session,
                        workspace_id=shell.workspace_id,
                        on=args.labour_allocation == "on",
                    )
                if args.what == "journal":
                    result = await exports.export_journal(
                        session=session,
                        workspace_id=shell.workspace_id,
                        month=month,
                        final=args.final,
                        at=shell.now(),
                    )
                    text = render_journal(result.journal, args.format, tax_rate=args.tax_rate)
                else:
                    invoices = await exports.build_invoices(
                        session=session, workspace_id=shell.workspace_id, month=month
                    )
                    accounts = await exports.load_accounts(
                        session=session, workspace_id=shell.workspace_id
                    )
                    text = render_invoices(
                        invoices, args.format, accounts=accounts, tax_type=args.tax_rate
                    )
                # Written inside the transaction: a file that cannot be written records nothing.
                if args.output is not None:
                    args.output.write_text(text, encoding="utf-8")
        except (MissingAccount, exports.AlreadyFinal) as exc:
            print(f"{exc}; nothing was written.", file=sys.stderr)
            return 1
        except IntegrityError:
            # Two final exports of one month at once: the unique key let one of them in.
            print(
                f"{month.key} was recorded as final by another export just now; nothing was "
                "written.",
                file=sys.stderr,
            )
            return 1
        except OSError as exc:
            print(f"{args.output}: {exc.strerror}; nothing was recorded.", file=sys.stderr)
            return 1
    if args.output is None:
        sys.stdout.write(text)
    if args.what == "journal":
        if result.already_final:
            print(
                f"Note: {month.key} was exported as final before; changes since then appear "
                "as adjustments in the next month's final journal.",
                file=sys.stderr,
            )
        if result.adjusted:
            print(f"Adjusts {', '.join(result.adjusted)}.", file=sys.stderr)
        if args.final:
            print(f"Recorded the {month.key} journal as final.", file=sys.stderr)
    return 0


def command_export(settings: Settings, args: argparse.Namespace) -> int:
    """Export a month's journal or invoice lines for the accounting system."""
    return asyncio.run(_export(settings, args))


command_export.configure = _configure  # type: ignore[attr-defined]
