"""`/time` and the log-time form (from `/time`, a ticket card's or App Home's "Log time").

`/time 1h30 #123 fixed the VPN` logs at once; `/time list`, `/time edit 12 2h`,
`/time delete 12` change one's own entries (managers anyone's); `/time` alone (or `/time #123`)
opens the form. Refusals (zero, more than 24 h in a day, a future date) come back as an
ephemeral message or as field errors in the form. Managers and admins see what the entry cost
and the customer's margin this month; agents never see money.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import Block, escape, form_values, id_value, section
from handlers.blocks.time import (
    B_DURATION,
    B_TICKET,
    MAX_STATIC_OPTIONS,
    LoggedEntry,
    MoneyNote,
    build_list,
    build_log_time_modal,
    build_logged,
    field_for,
    read_form,
    target_options,
)
from handlers.ids import Action, Command, View
from handlers.listeners import Slash, on_command
from handlers.people import on_team, resolve_member, team_member, user_of
from handlers.respond import SORRY
from models import engine as profit
from models.directory import list_contracts, list_customers, workspace_today
from models.money import format_amount, round_subunits
from models.outbox import SLACK, enqueue, slack_call
from models.people import can_see_money
from models.periods import month_of
from models.profitability import present, sum_figures
from models.tables import Member, TimeEntry
from models.tickets import customer_by_id, names_by_id, ticket_by_id, ticket_by_number
from models.timelog import TimeRefused, delete_time, edit_time, get_entry, log_time, recent_entries
from models.timeparse import (
    DeleteTime,
    EditTime,
    ListTime,
    LogTime,
    OpenForm,
    TimeHelp,
    TimeTextError,
    format_minutes,
    parse_command,
)
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

HELP = (
    "*Log time*\n"
    "• `/time 1h30 #123 fixed the VPN` — also `90m`, `1.5h`, `1:30`\n"
    "• add a day: `yesterday`, `mon` … `sun` (the last one), or `2025-06-03`\n"
    "• `nb` marks it not billable: `/time 30m #123 nb training`\n"
    "• `/time` or `/time #123` opens the form\n"
    "*Your entries*\n"
    "• `/time list` · `/time edit 12 2h` (or a day, `nb`, a new note) · `/time delete 12`"
)

# ---------------------------------------------------------------------------------------
# Reading what the confirmations need
# ---------------------------------------------------------------------------------------


async def _labels(
    session: AsyncSession, workspace_id: int, entries: list[TimeEntry]
) -> dict[int, LoggedEntry]:
    tickets, customers, contracts = await names_by_id(
        session=session,
        workspace_id=workspace_id,
        ticket_ids={e.ticket_id for e in entries if e.ticket_id},
        customer_ids={e.customer_id for e in entries if e.customer_id},
        contract_ids={e.contract_id for e in entries if e.contract_id},
    )
    return {
        e.id or 0: LoggedEntry(
            entry_id=e.id or 0,
            minutes=e.minutes,
            work_date=e.work_date,
            billable=e.billable,
            note=e.note,
            ticket=tickets.get(e.ticket_id) if e.ticket_id else None,
            customer=customers.get(e.customer_id) if e.customer_id else None,
            contract=contracts.get(e.contract_id) if e.contract_id else None,
        )
        for e in entries
    }


async def money_note(session: AsyncSession, services: Services, entry: TimeEntry) -> MoneyNote:
    """The entry's cost and its customer's margin this month, computed fresh."""
    ws = await get_workspace(session=session, workspace_id=services.workspace_id)
    currency = ws.currency
    rates = await profit.load_cost_rates(session=session, workspace_id=services.workspace_id)
    rate = rates.resolve(entry.member_id, entry.work_date)
    cost = None if rate is None else round_subunits(entry.minutes * rate.minor_per_hour)
    if entry.customer_id is None:
        return MoneyNote(currency, cost)
    customer = await customer_by_id(
        session=session, workspace_id=services.workspace_id, customer_id=entry.customer_id
    )
    rows = await profit.compute_customer_period(
        session=session,
        workspace_id=services.workspace_id,
        customer_id=entry.customer_id,
        period=month_of(entry.work_date),
        rates=rates,
    )
    month = present(sum_figures(rows.values()))
    margin = (
        f"margin {month.margin_pct}% on {format_amount(month.revenue_minor, currency)} revenue"
        if month.margin_pct is not None
        else f"no revenue yet, {format_amount(month.labour_cost_minor, currency)} labour cost"
    )
    return MoneyNote(currency, cost, customer.name if customer else None, margin)


async def confirmation(
    services: Services, member: Member, entry_id: int, verb: str = "Logged"
) -> list[Block]:
    """The confirmation blocks for an entry (with money for managers)."""
    async with services.read() as session:
        try:
            entry = await get_entry(
                session=session, workspace_id=services.workspace_id, entry_id=entry_id
            )
        except TimeRefused:
            return [section("That entry is gone.")]
        label = (await _labels(session, services.workspace_id, [entry]))[entry_id]
        money = await money_note(session, services, entry) if can_see_money(member) else None
    return build_logged(label, money, verb)


# ---------------------------------------------------------------------------------------
# /time
# ---------------------------------------------------------------------------------------


async def _say(respond: AsyncRespond, blocks: list[Block], text: str) -> None:
    try:
        await respond(blocks=blocks, text=text, response_type="ephemeral", replace_original=False)
    except Exception:
        logger.exception("answering /time failed")


async def _refuse(respond: AsyncRespond, reason: str) -> None:
    await _say(respond, [section(f":no_entry: {escape(reason)}")], reason)


ONLY_TEAM = "Time logging is for members of the support team."


async def _time_command(slash: Slash) -> None:
    """`/time ...`: log, list, edit, delete, or open the form."""
    command, respond, client, services = slash
    try:
        await _run_time_command(command, respond, client, services)
    except TimeRefused as exc:
        await _refuse(respond, str(exc))
    except Exception:
        logger.exception("/time failed")
        await _refuse(respond, SORRY)


handle_time_command = on_command(_time_command, stored=True)


async def _run_time_command(
    command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, services: Services
) -> None:
    user_id = str(command.get("user_id") or "")
    async with services.read() as session:
        today = await workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )
    try:
        parsed = parse_command(command.get("text"), today=today)
    except TimeTextError as exc:
        await _refuse(respond, str(exc))
        return
    if isinstance(parsed, TimeHelp):
        await _say(respond, [section(HELP)], "How to log time")
        return
    member = await resolve_member(
        services, user_id, client=client, name_hint=str(command.get("user_name") or "")
    )
    if not on_team(member):
        await _refuse(respond, ONLY_TEAM)
        return
    if isinstance(parsed, OpenForm):
        ticket_id = None
        if parsed.ticket_number is not None:
            async with services.read() as session:
                ticket = await ticket_by_number(
                    session=session, workspace_id=services.workspace_id, number=parsed.ticket_number
                )
            if ticket is None:
                await _refuse(respond, f"There is no ticket #{parsed.ticket_number}.")
                return
            ticket_id = ticket.id
        await open_log_time_modal(client, str(command.get("trigger_id")), services, ticket_id)
        return
    if isinstance(parsed, ListTime):
        async with services.read() as session:
            assert member.id is not None
            entries = await recent_entries(
                session=session, workspace_id=services.workspace_id, member_id=member.id
            )
            labels = await _labels(session, services.workspace_id, entries)
        await _say(respond, build_list([labels[e.id or 0] for e in entries]), "Your time entries")
        return
    if isinstance(parsed, DeleteTime):
        async with services.transaction() as session:
            gone = await delete_time(
                session=session,
                workspace_id=services.workspace_id,
                actor=member,
                entry_id=parsed.entry_id,
                at=services.now(),
            )
        text = (
            f"Deleted entry {parsed.entry_id} ({format_minutes(gone.minutes)} on {gone.work_date})."
        )
        await _say(respond, [section(f":wastebasket: {text}")], text)
        return
    if isinstance(parsed, EditTime):
        async with services.transaction() as session:
            await edit_time(
                session=session,
                workspace_id=services.workspace_id,
                actor=member,
                entry_id=parsed.entry_id,
                today=today,
                at=services.now(),
                minutes=parsed.minutes,
                work_date=parsed.work_date,
                billable=parsed.billable,
                note=parsed.note,
            )
        blocks = await confirmation(services, member, parsed.entry_id, "Changed to")
        await _say(respond, blocks, f"Entry {parsed.entry_id} changed")
        return
    assert isinstance(parsed, LogTime)
    wanted = parsed.entry
    async with services.transaction() as session:
        ticket_id = None
        if wanted.ticket_number is not None:
            ticket = await ticket_by_number(
                session=session, workspace_id=services.workspace_id, number=wanted.ticket_number
            )
            if ticket is None:
                raise TimeRefused(f"There is no ticket #{wanted.ticket_number}.")
            ticket_id = ticket.id
        entry = await log_time(
            session=session,
            workspace_id=services.workspace_id,
            member=member,
            minutes=wanted.minutes,
            work_date=wanted.work_date,
            today=today,
            at=services.now(),
            ticket_id=ticket_id,
            billable=wanted.billable,
            note=wanted.note,
        )
        entry_id = entry.id
    assert entry_id is not None
    blocks = await confirmation(services, member, entry_id)
    await _say(respond, blocks, f"Logged {format_minutes(wanted.minutes)}")


# ---------------------------------------------------------------------------------------
# The form
# ---------------------------------------------------------------------------------------


async def _target_choices(
    session: AsyncSession, workspace_id: int
) -> tuple[list[tuple[int, str]], list[tuple[int, int, str]]]:
    customers = [
        (c.id or 0, c.name)
        for c in await list_customers(session=session, workspace_id=workspace_id)
    ]
    contracts = [
        (c.id or 0, c.customer_id, c.name)
        for c in await list_contracts(session=session, workspace_id=workspace_id)
    ]
    return customers, contracts


async def open_log_time_modal(
    client: AsyncWebClient, trigger_id: str, services: Services, ticket_id: int | None
) -> None:
    """Open the log-time form (for a ticket when `ticket_id` is given)."""
    async with services.read() as session:
        today = await workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )
        label = None
        options = None
        searchable = False
        if ticket_id is not None:
            ticket = await ticket_by_id(
                session=session, workspace_id=services.workspace_id, ticket_id=ticket_id
            )
            if ticket is None:
                ticket_id = None
            else:
                label = f"#{ticket.number} {ticket.title}"
                if ticket.customer_id:
                    customer = await customer_by_id(
                        session=session,
                        workspace_id=services.workspace_id,
                        customer_id=ticket.customer_id,
                    )
                    label += f" ({customer.name})" if customer else ""
        if ticket_id is None:
            customers, contracts = await _target_choices(session, services.workspace_id)
            options = target_options(customers, contracts)
            searchable = len(customers) + len(contracts) > MAX_STATIC_OPTIONS
    view = build_log_time_modal(
        today=today, ticket_id=ticket_id, ticket_label=label, options=options, searchable=searchable
    )
    await client.views_open(trigger_id=trigger_id, view=view)


async def handle_target_options(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """Options for the form's customer / contract select when there are many."""
    if await team_member(services, user_of(body)[0]) is None:
        await ack(options=[])
        return
    async with services.read() as session:
        customers, contracts = await _target_choices(session, services.workspace_id)
    await ack(options=target_options(customers, contracts, str(body.get("value") or "")))


async def handle_log_time_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Record the form's entry for whoever submitted it, or show what to fix."""
    form = read_form(form_values(view))
    if form.errors:
        await ack(response_action="errors", errors=form.errors)
        return
    assert form.minutes is not None and form.work_date is not None
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        metadata = {}
    user_id = user_of(body)[0]
    saved: tuple[Member, int] | None = None

    async def save() -> Answer:
        nonlocal saved
        try:
            member = await resolve_member(services, user_id, client=client)
            async with services.transaction() as session:
                today = await workspace_today(
                    session=session, workspace_id=services.workspace_id, at=services.now()
                )
                ticket_id = metadata.get("ticket_id")
                customer_id = contract_id = None
                if ticket_id is None and form.ticket_number is not None:
                    ticket = await ticket_by_number(
                        session=session,
                        workspace_id=services.workspace_id,
                        number=form.ticket_number,
                    )
                    if ticket is None:
                        return Answer.refused(
                            {B_TICKET: f"There is no ticket #{form.ticket_number}."},
                            what="time entry",
                        )
                    ticket_id = ticket.id
                if ticket_id is None and form.target:
                    kind, _, raw = form.target.partition(":")
                    if kind == "c":
                        customer_id = int(raw)
                    elif kind == "k":
                        contract_id = int(raw)
                assert form.minutes is not None and form.work_date is not None
                entry = await log_time(
                    session=session,
                    workspace_id=services.workspace_id,
                    member=member,
                    minutes=form.minutes,
                    work_date=form.work_date,
                    today=today,
                    at=services.now(),
                    ticket_id=ticket_id,
                    customer_id=customer_id,
                    contract_id=contract_id,
                    billable=form.billable,
                    note=form.note,
                )
                assert entry.id is not None
                saved = (member, entry.id)
        except TimeRefused as exc:
            return Answer.refused({field_for(str(exc)): str(exc)}, what="time entry")
        except Exception:
            logger.exception("logging time from the form failed")
            return Answer.refused({B_DURATION: SORRY}, what="time entry")
        return Answer()

    await answer_within_budget(ack, client, user_id, save())
    if saved is None:
        return
    member, entry_id = saved
    try:
        blocks = await confirmation(services, member, entry_id)
        async with services.transaction() as session:
            await enqueue(
                session=session,
                workspace_id=services.workspace_id,
                kind=SLACK,
                key=f"time-logged:{services.workspace_id}:{entry_id}",
                payload=slack_call(
                    "chat.postMessage",
                    channel=user_id,
                    text=f"Logged {format_minutes(form.minutes)}",
                    blocks=blocks,
                ),
                at=services.now(),
            )
    except Exception:
        logger.exception("confirming logged time failed")


async def handle_log_time_action(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """A "Log time" button: a ticket card's (value: the ticket id) or App Home's."""
    await ack()
    ticket_id = id_value(action)
    try:
        await open_log_time_modal(client, str(body.get("trigger_id")), services, ticket_id)
    except Exception:
        logger.exception("opening the log-time form failed")


def register(app: AsyncApp) -> None:
    app.command(Command.TIME.value)(handle_time_command)
    # The card's Log time (Action.LOG_TIME) is wired in handlers.ticket_buttons, which checks
    # the role.
    app.action(Action.HOME_LOG_TIME.value)(handle_log_time_action)
    app.view(View.LOG_TIME.value)(handle_log_time_submission)
    app.options(Action.TIME_TARGET.value)(handle_target_options)
