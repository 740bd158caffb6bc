"""`/profit [customer] [week|month|last-week|last-month|2025-W23|2025-06]` and `/profit export`.

`/profit export journal 2025-06` and `/profit export invoices 2025-06` send the month's journal
or invoice lines (models.accounting) to the requester's DM.

For managers and admins only: anyone else gets the same polite refusal whatever they typed, so
nothing leaks (not even whether a customer exists). The summary is the report table that
`docket report profitability` prints (models.reporting), read from the stored results; the
export uploads the report's CSV to the requester's DM.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.blocks.common import Block, context, escape, section
from handlers.blocks.profit import build_profit_blocks
from handlers.blocks.sla import build_service_levels
from handlers.blocks.weekly import build_weekly_blocks, weekly_fallback_text
from handlers.ids import Command
from handlers.listeners import Slash, on_command
from handlers.people import command_member
from handlers.respond import answering_failures
from models import exports, profit_report
from models.accounting import FORMATS as ACCOUNTING_FORMATS
from models.accounting import MissingAccount, render_invoices, render_journal
from models.directory import match_customers, workspace_today
from models.people import can_see_money
from models.periods import Period, month_of, parse_period
from models.reporting import Report, render_csv
from models.sla_report import build_sla_report, margins_by_customer
from models.weekly import ReportKind
from models.weekly_data import load_summary
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

REFUSAL = "Profitability figures are for managers and admins. Ask one of them if you need them."
SORRY = "Sorry, Docket could not build that report just now. Please try again."


# Relative periods show the managers' summary (the weekly post's content); explicit keys such
# as 2025-W23 show the full table.
SUMMARY_WORDS = {"week", "this-week", "last-week", "month", "this-month", "last-month"}


@dataclass(frozen=True)
class ProfitArgs:
    """What `/profit ...` asks for."""

    period: Period
    customer: str | None = None
    export: bool = False
    summary: bool = False


def parse_profit_args(text: str | None, *, today: date) -> ProfitArgs:
    """Read `/profit` text (pure): `export` anywhere, a period as the last word (default: this
    month), and the rest as a customer name. Raises ValueError for a period in the wrong
    shape (e.g. `2025-13`)."""
    words = (text or "").split()
    summary = len(words) == 1 and words[0].lower() in SUMMARY_WORDS
    export = any(w.lower() == "export" for w in words)
    words = [w for w in words if w.lower() != "export"]
    period = month_of(today)
    if words:
        last = words[-1]
        try:
            period = parse_period(last, today=today)
            words = words[:-1]
        except ValueError:
            if _looks_like_period(last):
                raise
    customer = " ".join(words).strip() or None
    return ProfitArgs(period=period, customer=customer, export=export, summary=summary)


def _looks_like_period(word: str) -> bool:
    head = word[:4]
    return head.isdigit() and len(word) > 4 and word[4] == "-"


async def _say(respond: AsyncRespond, text: str, blocks: list[Block] | None = None) -> None:
    try:
        await respond(
            text=text,
            blocks=blocks or [section(escape(text))],
            response_type="ephemeral",
            replace_original=False,
        )
    except Exception:
        logger.exception("answering /profit failed")


async def _profit_command(slash: Slash) -> None:
    """`/profit`: the period's profitability for managers; a refusal for everyone else."""
    command, respond, client, services = slash
    say = functools.partial(_say, respond)
    async with answering_failures(say, log=logger, doing="/profit", sorry=SORRY):
        # Checked before anything is read: a refusal must not depend on what was asked.
        if not can_see_money(await command_member(services, command, client)):
            await _say(respond, REFUSAL)
            return
        await _answer(command, respond, client, services)


handle_profit_command = on_command(_profit_command)


async def _answer(
    command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, services: Services
) -> None:
    async with services.read() as session:
        today = await workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )
        try:
            accounting = parse_accounting_export(command.get("text"), today=today)
        except ValueError as exc:
            await _say(respond, f"{exc}")
            return
        if accounting is not None:
            await _export_accounting(
                accounting, session, services, str(command.get("user_id") or ""), respond, client
            )
            return
        try:
            args = parse_profit_args(command.get("text"), today=today)
        except ValueError as exc:
            await _say(respond, f"{exc}")
            return
        customer_ids: list[int | None] | None = None
        if args.customer:
            found = await match_customers(
                session=session, workspace_id=services.workspace_id, text=args.customer
            )
            if not found:
                await _say(respond, f"No customer matches “{args.customer}”.")
                return
            if len(found) > 1:
                names = ", ".join(c.name for c in found[:10])
                await _say(respond, f"“{args.customer}” matches several customers: {names}.")
                return
            customer_ids = [found[0].id]
        if args.summary:
            workspace = await get_workspace(session=session, workspace_id=services.workspace_id)
            kind: ReportKind = "weekly" if args.period.kind == "week" else "monthly"
            summary = await load_summary(
                session=session, workspace=workspace, kind=kind, period=args.period
            )
            blocks = build_weekly_blocks(summary)
            hint = context(f"`/profit {args.period.key}` shows the full table by customer.")
            await _say(respond, weekly_fallback_text(summary), [*blocks[:49], hint])
            return
        report = await profit_report.build_report(
            session=session,
            workspace_id=services.workspace_id,
            period=args.period,
            customer_ids=customer_ids,
        )
        service = []
        if customer_ids and customer_ids[0] is not None:
            sla = await build_sla_report(
                session=session,
                workspace_id=services.workspace_id,
                period=args.period,
                now=services.now(),
                customer_ids=[customer_ids[0]],
            )
            service = build_service_levels(sla, margins_by_customer(report))
    if args.export:
        await _export(report, str(command.get("user_id") or ""), respond, client)
        return
    await _say(respond, report.title, [*build_profit_blocks(report), *service])


async def _send_to_dm(
    client: AsyncWebClient, user_id: str, *, content: str, filename: str, title: str
) -> None:
    opened = await client.conversations_open(users=user_id)
    channel = str((opened.get("channel") or {}).get("id"))
    await client.files_upload_v2(
        channel=channel,
        content=content,
        filename=filename,
        title=title,
        initial_comment=f"{title}: the file you asked for.",
    )


async def _export(
    report: Report, user_id: str, respond: AsyncRespond, client: AsyncWebClient
) -> None:
    """Upload the report's CSV to the requester's DM (a direct answer to them)."""
    key = report.period.key
    await _send_to_dm(
        client,
        user_id,
        content=render_csv(report),
        filename=f"docket-profitability-{key}.csv",
        title=report.title,
    )
    await _say(respond, f"Sent the {key} CSV to your direct messages with Docket.")


@dataclass(frozen=True)
class AccountingExport:
    """`/profit export journal|invoices 2025-06 [csv|json|xero|quickbooks]`."""

    what: str
    month: Period
    fmt: str = "csv"


def parse_accounting_export(text: str | None, *, today: date) -> AccountingExport | None:
    """The journal or invoices export `/profit` asks for (pure); None for any other `/profit`.

    Raises ValueError (with the usage) for a missing or malformed month or format.
    """
    words = (text or "").lower().split()
    if len(words) < 2 or words[0] != "export" or words[1] not in ("journal", "invoices"):
        return None
    usage = f"Usage: `/profit export {words[1]} 2025-06 [{'|'.join(ACCOUNTING_FORMATS)}]`."
    if len(words) not in (3, 4):
        raise ValueError(usage)
    fmt = words[3] if len(words) == 4 else "csv"
    if fmt not in ACCOUNTING_FORMATS:
        raise ValueError(usage)
    period = parse_period(words[2], today=today)
    if period.kind != "month":
        raise ValueError(usage)
    return AccountingExport(what=words[1], month=period, fmt=fmt)


async def _export_accounting(
    wanted: AccountingExport,
    session: Any,
    services: Services,
    user_id: str,
    respond: AsyncRespond,
    client: AsyncWebClient,
) -> None:
    """Upload a month's journal (a preview: `docket export journal --final` records it) or its
    invoice lines to the requester's DM."""
    ws_id = services.workspace_id
    key = wanted.month.key
    try:
        if wanted.what == "journal":
            result = await exports.export_journal(
                session=session,
                workspace_id=ws_id,
                month=wanted.month,
                final=False,
                at=services.now(),
            )
            content = render_journal(result.journal, wanted.fmt)
        else:
            invoices = await exports.build_invoices(
                session=session, workspace_id=ws_id, month=wanted.month
            )
            accounts = await exports.load_accounts(session=session, workspace_id=ws_id)
            content = render_invoices(invoices, wanted.fmt, accounts=accounts)
    except MissingAccount as exc:
        await _say(respond, f"{exc}.")
        return
    ext = "json" if wanted.fmt == "json" else "csv"
    suffix = "" if wanted.fmt in ("csv", "json") else f"-{wanted.fmt}"
    await _send_to_dm(
        client,
        user_id,
        content=content,
        filename=f"docket-{wanted.what}-{key}{suffix}.{ext}",
        title=f"Docket {wanted.what} {key}",
    )
    await _say(respond, f"Sent the {key} {wanted.what} to your direct messages with Docket.")


def register(app: AsyncApp) -> None:
    app.command(Command.PROFIT.value)(handle_profit_command)
