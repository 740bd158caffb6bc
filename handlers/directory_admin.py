"""`/docket customers|contacts|contracts|rates|charges|calculator`: the directory from Slack.

For admins and managers. Each sub-command opens a form (`/docket customers Acme` opens Acme's
for editing; `... list` lists instead); every submission checks the submitter's role again,
because Slack vouches for the app, not for the person who clicked. Saving goes through
models.directory, which also marks the affected profitability periods for a refresh.
"""

from __future__ import annotations

import functools
import logging
from datetime import date
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import escape, safe, section
from handlers.blocks.directory import (
    MAX_STATIC_OPTIONS,
    build_calculator_modal,
    build_charge_rate_modal,
    build_contact_modal,
    build_contract_modal,
    build_cost_rate_modal,
    build_customer_modal,
    option,
)
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.ids import Action, Command
from handlers.listeners import Slash, on_command
from handlers.people import resolve_member, team_member, user_of
from handlers.respond import answering_failures
from models import directory as d
from models.engine import load_contracts
from models.money import format_amount
from models.people import can_see_money, roster
from models.tables import Contract, ContractKind
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

REFUSAL = "Customers, contracts and rates are managed by Docket admins and managers."
SORRY = "Sorry, Docket could not save that just now. Please try again."
USAGE = (
    "*Directory* (admins and managers)\n"
    "• `/docket customers [name]` — add or edit a customer · `/docket customers list`\n"
    "• `/docket contacts` — add a customer's contact\n"
    "• `/docket contracts [customer / contract]` — add or edit a contract · `... list`\n"
    "• `/docket rates` — a cost rate for a member, group or everyone · `/docket rates list`\n"
    "• `/docket charges` — an hourly contract's charge rate from a date\n"
    "• `/docket calculator` — work out a fully loaded hourly cost (and save it)"
)


async def allowed(services: Services, user_id: str, client: AsyncWebClient) -> bool:
    """Whether this person may manage the directory (admins and managers)."""
    member = await resolve_member(services, user_id, client=client)
    return can_see_money(member)


async def _tell(respond: AsyncRespond, text: str) -> None:
    try:
        await respond(text=text, blocks=[section(text)], response_type="ephemeral")
    except Exception:
        logger.exception("answering /docket failed")


async def today_in_workspace(services: Services) -> date:
    """Today in the workspace's timezone (the default start of a form's dates)."""
    async with services.read() as session:
        return await d.workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )


async def workspace_groups(services: Services) -> list[tuple[int, str]]:
    """(id, name) of the workspace's member groups, for the rate forms."""
    async with services.read() as session:
        return [
            (g.id or 0, g.name)
            for g in await d.list_groups(session=session, workspace_id=services.workspace_id)
        ]


async def _hourly_contracts(services: Services) -> list[tuple[int, str]]:
    async with services.read() as session:
        customers = {
            c.id: c.name
            for c in await d.list_customers(
                session=session, workspace_id=services.workspace_id, active_only=False
            )
        }
        contracts = await d.list_contracts(session=session, workspace_id=services.workspace_id)
    return sorted(
        (
            (c.id or 0, f"{customers.get(c.customer_id, '?')} — {c.name}")
            for c in contracts
            if c.kind == ContractKind.HOURLY
        ),
        key=lambda item: item[1].casefold(),
    )


async def _directory_command(slash: Slash) -> None:
    """`/docket customers|contacts|contracts|rates|charges|calculator ...`."""
    command, respond, client, services = slash
    say = functools.partial(_tell, respond)
    doing = f"/docket {command.get('text')}"
    async with answering_failures(say, log=logger, doing=doing, sorry=SORRY):
        if not await allowed(services, str(command.get("user_id") or ""), client):
            await _tell(respond, REFUSAL)
            return
        sub, rest = split_subcommand(command.get("text"))
        trigger = str(command.get("trigger_id") or "")
        view = await _view_for(sub, rest, services, respond)
        if view is not None:
            await client.views_open(trigger_id=trigger, view=view)


handle_directory_command = on_command(_directory_command)


async def _view_for(
    sub: str, rest: str, services: Services, respond: AsyncRespond
) -> dict[str, Any] | None:
    today = await today_in_workspace(services)
    ws_id = services.workspace_id
    if rest.lower() == "list":
        listing = USAGE if sub not in ("customers", "contracts", "rates") else None
        await _tell(respond, listing or await _listing(sub, services))
        return None
    if sub == "customers":
        customer = None
        if rest:
            async with services.read() as session:
                customer = await d.customer_by_name(session=session, workspace_id=ws_id, name=rest)
        return build_customer_modal(customer, rest)
    if sub == "contacts":
        async with services.read() as session:
            customers = await d.list_customers(session=session, workspace_id=ws_id)
        return build_contact_modal(customers)
    if sub == "contracts":
        async with services.read() as session:
            customers = await d.list_customers(session=session, workspace_id=ws_id)
            contract, hourly = await _contract_named(session, ws_id, rest) if rest else (None, None)
        if rest and contract is None:
            await _tell(
                respond, f"No contract “{escape(rest)}”: write it as `customer / contract`."
            )
            return None
        return build_contract_modal(customers, contract, hourly, today)
    if sub == "rates" and rest.lower().startswith("charge"):
        sub = "charges"
    if sub == "rates":
        return build_cost_rate_modal(await workspace_groups(services), today)
    if sub == "charges":
        contracts = await _hourly_contracts(services)
        if not contracts:
            await _tell(
                respond, "There is no hourly contract yet: add one with `/docket contracts`."
            )
            return None
        return build_charge_rate_modal(
            contracts, today, searchable=len(contracts) > MAX_STATIC_OPTIONS
        )
    if sub == "calculator":
        return build_calculator_modal(await workspace_groups(services), today)
    await _tell(respond, USAGE)
    return None


async def _contract_named(
    session: AsyncSession, ws_id: int, text: str
) -> tuple[Contract | None, int | None]:
    customer_name, _, contract_name = text.partition("/")
    customer = await d.customer_by_name(session=session, workspace_id=ws_id, name=customer_name)
    if customer is None or customer.id is None or not contract_name.strip():
        return None, None
    contract = await d.contract_by_name(
        session=session, workspace_id=ws_id, customer_id=customer.id, name=contract_name
    )
    if contract is None:
        return None, None
    pure = (await load_contracts(session=session, workspace_id=ws_id, customer_id=customer.id)).get(
        contract.id or 0
    )
    rate = pure.charge_rates[0].minor_per_hour if pure and pure.charge_rates else None
    return contract, rate


async def _listing(sub: str, services: Services) -> str:
    ws_id = services.workspace_id
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=ws_id)
        currency = ws.currency
        customers = await d.list_customers(session=session, workspace_id=ws_id, active_only=False)
        names = {c.id: c.name for c in customers}
        if sub == "customers":
            lines = [
                f"• *{safe(c.name, 200)}* — {safe(c.email_domains or 'no domains', 300)}"
                + (f" · <#{c.slack_channel}>" if c.slack_channel else "")
                for c in customers
            ]
            return "\n".join(["*Customers*", *lines]) if lines else "No customers yet."
        if sub == "contracts":
            contracts = await d.list_contracts(session=session, workspace_id=ws_id)
            lines = [
                f"• {safe(names.get(c.customer_id, '?'), 200)} / *{safe(c.name, 200)}* — "
                f"{c.kind}, from {c.start_date.isoformat()}"
                + (f" to {c.end_date.isoformat()}" if c.end_date else "")
                for c in contracts
            ]
            return "\n".join(["*Contracts*", *lines]) if lines else "No contracts yet."
        rates = await d.list_cost_rates(session=session, workspace_id=ws_id)
        groups = {g.id: g.name for g in await d.list_groups(session=session, workspace_id=ws_id)}
        members = {
            m.id: m.name or m.email or "?"
            for m, _group in await roster(session=session, workspace_id=ws_id)
        }
    lines = []
    for r in rates:
        who = (
            safe(members.get(r.member_id, "?"), 200)
            if r.member_id
            else f"group {safe(groups.get(r.group_id, '?'), 100)}"
            if r.group_id
            else "default"
        )
        lines.append(
            f"• {who}: {format_amount(r.minor_per_hour, currency)}/h "
            f"from {r.effective_from.isoformat()}"
        )
    return "\n".join(["*Cost rates*", *lines]) if lines else "No cost rates yet."


async def _asker_on_team(body: dict[str, Any], services: Services) -> bool:
    """Directory look-ups answer members of the support team only."""
    return await team_member(services, user_of(body)[0]) is not None


async def handle_customer_options(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """Customers matching what was typed (for forms with many customers)."""
    if not await _asker_on_team(body, services):
        await ack(options=[])
        return
    query = str(body.get("value") or "").casefold()
    async with services.read() as session:
        customers = await d.list_customers(session=session, workspace_id=services.workspace_id)
    options = [option(c.name, str(c.id)) for c in customers if query in c.name.casefold()]
    await ack(options=options[:MAX_STATIC_OPTIONS])


async def handle_contract_options(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """Hourly contracts matching what was typed."""
    if not await _asker_on_team(body, services):
        await ack(options=[])
        return
    query = str(body.get("value") or "").casefold()
    options = [
        option(label, str(cid))
        for cid, label in await _hourly_contracts(services)
        if query in label.casefold()
    ]
    await ack(options=options[:MAX_STATIC_OPTIONS])


def register(app: AsyncApp) -> None:
    """Wire the directory's `/docket` sub-commands and its searchable selects."""
    names = ("customers", "contacts", "contracts", "rates", "charges", "calculator")
    app.command(Command.DOCKET.value, matchers=[subcommand(*names)])(handle_directory_command)
    app.options(Action.DIRECTORY_CUSTOMER.value)(handle_customer_options)
    app.options(Action.DIRECTORY_CONTRACT.value)(handle_contract_options)
