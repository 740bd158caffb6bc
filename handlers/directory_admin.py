"""`/docket customers|contacts|contracts|rates|charges|calculator`: the directory from Slack.

For admins and managers. Each sub-command opens a form (`/docket customers Acme` opens Acme's
for editing; `... list` lists instead); every submission checks the submitter's role again,
because Slack vouches for the app, not for the person who clicked. Saving goes through
models.directory, which also marks the affected profitability periods for a refresh.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import Block, context, escape, plain, safe, section
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.ids import Action, Command, View
from handlers.people import resolve_member, team_member
from models import directory as d
from models.costcalc import DEFAULT_HOURS_PER_DAY, DEFAULT_WORKING_DAYS, loaded_hourly_cost
from models.engine import load_contracts
from models.money import format_amount, parse_amount, to_decimal_string
from models.people import can_see_money, roster
from models.sla_import import policy_exists
from models.sla_store import set_contract_policy
from models.tables import Contract, ContractKind, Customer
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

REFUSAL = "Customers, contracts and rates are managed by Docket admins and managers."
SORRY = "Sorry, Docket could not save that just now. Please try again."
MAX_STATIC_OPTIONS = 100
KIND_LABELS = {
    ContractKind.HOURLY: "Hourly (charge rate × hours)",
    ContractKind.FIXED: "Fixed monthly fee",
    ContractKind.BLOCK: "Prepaid block of hours",
}
USAGE = (
    "*Directory* (admins and managers)\n"
    "• `/docket customers [name]` — add or edit a customer · `/docket customers list`\n"
    "• `/docket contacts` — add a customer's contact\n"
    "• `/docket contracts [customer / contract]` — add or edit a contract · `... list`\n"
    "• `/docket rates` — a cost rate for a member, group or everyone · `/docket rates list`\n"
    "• `/docket charges` — an hourly contract's charge rate from a date\n"
    "• `/docket calculator` — work out a fully loaded hourly cost (and save it)"
)


# ---------------------------------------------------------------------------------------
# Pure builders
# ---------------------------------------------------------------------------------------


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, 75), "value": value}


def text_input(
    block_id: str,
    label: str,
    *,
    initial: str | None = None,
    optional: bool = False,
    hint: str | None = None,
    placeholder: str | None = None,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": f"{block_id}_input"}
    if initial:
        element["initial_value"] = initial
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "optional": optional,
        "element": element,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def date_input(block_id: str, label: str, *, initial: date | None, optional: bool = False) -> Block:
    element: dict[str, Any] = {"type": "datepicker", "action_id": f"{block_id}_input"}
    if initial is not None:
        element["initial_date"] = initial.isoformat()
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "optional": optional,
        "element": element,
    }


def select_input(
    block_id: str,
    label: str,
    *,
    options: list[dict[str, Any]] | None,
    action_id: str,
    initial: dict[str, Any] | None = None,
    optional: bool = False,
) -> Block:
    """A static select, or (options None: too many) a searchable external select."""
    element: dict[str, Any]
    if options is None:
        element = {"type": "external_select", "action_id": action_id, "min_query_length": 0}
    else:
        element = {
            "type": "static_select",
            "action_id": action_id,
            "options": options or [_option("(none yet)", "none")],
        }
    element["placeholder"] = plain("Choose…")
    if initial is not None:
        element["initial_option"] = initial
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "optional": optional,
        "element": element,
    }


def modal(
    callback: View, title: str, blocks: list[Block], metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback.value,
        "title": plain(title, 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


def _money(minor: int | None) -> str | None:
    return None if minor is None or minor == 0 else to_decimal_string(minor)


def build_customer_modal(customer: Customer | None, name_hint: str = "") -> dict[str, Any]:
    """Add (or, given a customer, edit) a customer: name, email domains, linked channel."""
    channel: Block = {
        "type": "input",
        "block_id": "channel",
        "optional": True,
        "label": plain("Linked Slack channel"),
        "hint": plain("Messages there can become this customer's tickets."),
        "element": {
            "type": "conversations_select",
            "action_id": "channel_input",
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        },
    }
    if customer is not None and customer.slack_channel:
        channel["element"]["initial_conversation"] = customer.slack_channel
    internal: Block = {
        "type": "input",
        "block_id": "internal",
        "optional": True,
        "label": plain("Team channel for their tickets"),
        "hint": plain("Where this customer's ticket cards go; empty: the triage channel."),
        "element": {
            "type": "conversations_select",
            "action_id": "internal_input",
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        },
    }
    if customer is not None and customer.internal_channel:
        internal["element"]["initial_conversation"] = customer.internal_channel
    blocks = [
        text_input("name", "Name", initial=customer.name if customer else name_hint or None),
        text_input(
            "domains",
            "Email domains",
            initial=", ".join(customer.email_domains.split(",")) if customer else None,
            optional=True,
            hint="Mail from these domains is this customer's, e.g. acme.com, acme.de",
        ),
        channel,
        internal,
        _notices_input(customer),
    ]
    title = "Edit customer" if customer else "New customer"
    return modal(View.CUSTOMER, title, blocks, {"customer_id": customer.id if customer else None})


# What each customer-facing message in the customer's channel is called in the form.
NOTICE_LABELS = {
    "ack": "Acknowledge a new ticket",
    "taken": "Say who took it",
    "waiting": "Say when it waits on them",
    "resolved": "Say when it is resolved",
}


def _notices_input(customer: Customer | None) -> Block:
    options = [_option(NOTICE_LABELS[n], n) for n in d.CUSTOMER_NOTICES]
    element: dict[str, Any] = {"type": "checkboxes", "action_id": "notices_input"}
    element["options"] = options
    chosen = [o for o in options if customer is None or getattr(customer, f"notify_{o['value']}")]
    if chosen:
        element["initial_options"] = chosen
    return {
        "type": "input",
        "block_id": "notices",
        "optional": True,
        "label": plain("Messages in their channel"),
        "hint": plain("Short, customer-facing, in the thread of their message."),
        "element": element,
    }


def customer_options(customers: list[Customer]) -> list[dict[str, Any]] | None:
    if len(customers) > MAX_STATIC_OPTIONS:
        return None
    return [_option(c.name, str(c.id)) for c in customers]


def build_contact_modal(customers: list[Customer]) -> dict[str, Any]:
    blocks = [
        select_input(
            "customer",
            "Customer",
            options=customer_options(customers),
            action_id=Action.DIRECTORY_CUSTOMER.value,
        ),
        text_input("email", "Email"),
        text_input("name", "Name", optional=True),
    ]
    return modal(View.CONTACT, "New contact", blocks, {})


def build_contract_modal(
    customers: list[Customer], contract: Contract | None, hourly_rate: int | None, today: date
) -> dict[str, Any]:
    """Add or edit a contract; only the amounts of its kind are used."""
    kinds = [_option(label, kind.value) for kind, label in KIND_LABELS.items()]
    chosen = next(
        (c for c in customers if contract is not None and c.id == contract.customer_id), None
    )
    initial_kind = next(
        (o for o in kinds if contract is not None and o["value"] == contract.kind), None
    )
    block_hours = (
        str(Decimal(contract.block_minutes) / 60).rstrip("0").rstrip(".")
        if contract is not None and contract.block_minutes
        else None
    )
    blocks = [
        select_input(
            "customer",
            "Customer",
            options=customer_options(customers),
            action_id=Action.DIRECTORY_CUSTOMER.value,
            initial=_option(chosen.name, str(chosen.id)) if chosen else None,
        ),
        text_input("name", "Contract name", initial=contract.name if contract else None),
        select_input("kind", "Kind", options=kinds, action_id="kind_input", initial=initial_kind),
        date_input("start", "Starts", initial=contract.start_date if contract else today),
        date_input("end", "Ends", initial=contract.end_date if contract else None, optional=True),
        section("*Amounts* — fill the ones of the contract's kind (e.g. 1200 or 1,200.50)"),
        text_input(
            "hourly_rate",
            "Hourly: charge rate per hour",
            initial=_money(hourly_rate),
            optional=True,
            hint="Kept as a charge rate from the start date; later changes: /docket charges",
        ),
        text_input(
            "monthly_fee",
            "Fixed: monthly fee",
            initial=_money(contract.monthly_fee_minor if contract else None),
            optional=True,
        ),
        text_input("block_hours", "Block: hours", initial=block_hours, optional=True),
        text_input(
            "block_price",
            "Block: price of the block",
            initial=_money(contract.block_price_minor if contract else None),
            optional=True,
        ),
        text_input(
            "overage_rate",
            "Block: overage rate per hour",
            initial=_money(contract.overage_minor_per_hour if contract else None),
            optional=True,
        ),
        text_input(
            "direct_cost",
            "Monthly direct cost (any kind)",
            initial=_money(contract.monthly_direct_cost_minor if contract else None),
            optional=True,
            hint="Licences or hardware this contract costs each month, shared per day.",
        ),
        text_input(
            "sla_policy",
            "SLA policy",
            initial=contract.sla_policy if contract else None,
            optional=True,
            hint="A policy's name from /docket sla; empty: the workspace default policy.",
        ),
    ]
    title = "Edit contract" if contract else "New contract"
    return modal(View.CONTRACT, title, blocks, {"contract_id": contract.id if contract else None})


def _subject_blocks(groups: list[tuple[int, str]]) -> list[Block]:
    return [
        {
            "type": "input",
            "block_id": "member",
            "optional": True,
            "label": plain("For a member"),
            "element": {"type": "users_select", "action_id": "member_input"},
        },
        select_input(
            "group",
            "Or for a group",
            options=[_option(name, str(gid)) for gid, name in groups][:MAX_STATIC_OPTIONS],
            action_id="group_input",
            optional=True,
        ),
        text_input("new_group", "Or a new group", optional=True, placeholder="e.g. Seniors"),
        {
            "type": "input",
            "block_id": "default",
            "optional": True,
            "label": plain("Or everyone else"),
            "element": {
                "type": "checkboxes",
                "action_id": "default_input",
                "options": [_option("The workspace default rate", "default")],
            },
        },
    ]


def build_cost_rate_modal(groups: list[tuple[int, str]], today: date) -> dict[str, Any]:
    blocks = [
        context(
            "A member's own rate wins over their group's, which wins over the default. "
            "Time with no rate in force is reported as uncosted, never as free."
        ),
        *_subject_blocks(groups),
        date_input("since", "In force from", initial=today),
        text_input("hourly_cost", "Loaded cost per hour", placeholder="e.g. 55.00"),
    ]
    return modal(View.COST_RATE, "Cost rate", blocks, {})


def build_charge_rate_modal(
    contracts: list[tuple[int, str]], today: date, *, searchable: bool
) -> dict[str, Any]:
    blocks = [
        select_input(
            "contract",
            "Hourly contract",
            options=None if searchable else [_option(label, str(cid)) for cid, label in contracts],
            action_id=Action.DIRECTORY_CONTRACT.value,
        ),
        date_input("since", "In force from", initial=today),
        text_input("hourly_rate", "Charge per hour", placeholder="e.g. 120.00"),
    ]
    return modal(View.CHARGE_RATE, "Charge rate", blocks, {})


def build_calculator_modal(
    groups: list[tuple[int, str]],
    today: date,
    *,
    values: dict[str, str] | None = None,
    result: str | None = None,
) -> dict[str, Any]:
    """The loaded-cost calculator; after a calculation `result` shows above the inputs."""
    v = values or {}
    blocks: list[Block] = []
    if result:
        blocks.append(section(result))
    blocks += [
        text_input("salary", "Yearly salary", initial=v.get("salary"), placeholder="60,000"),
        text_input(
            "on_costs",
            "Employer on-costs (% of salary)",
            initial=v.get("on_costs") or "0",
            hint="Social security, pension and the like, e.g. 21.5",
        ),
        text_input("benefits", "Benefits per year", initial=v.get("benefits"), optional=True),
        text_input(
            "overhead",
            "Share of overheads per year",
            initial=v.get("overhead"),
            optional=True,
            hint="Office, tools, management time…",
        ),
        text_input(
            "days", "Working days per year", initial=v.get("days") or str(DEFAULT_WORKING_DAYS)
        ),
        text_input(
            "hours", "Billable hours per day", initial=v.get("hours") or str(DEFAULT_HOURS_PER_DAY)
        ),
        section("*Save it* (optional) — leave these empty to only calculate"),
        *_subject_blocks(groups),
        date_input("since", "In force from", initial=today, optional=True),
    ]
    view = modal(View.CALCULATOR, "Cost calculator", blocks, {})
    view["submit"] = plain("Calculate / save", 24)
    return view


def build_done_view(title: str, text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": plain(title, 24),
        "close": plain("Done", 24),
        "blocks": [section(text)],
    }


# ---------------------------------------------------------------------------------------
# Reading submissions (pure)
# ---------------------------------------------------------------------------------------


def field(values: dict[str, Any], block: str) -> dict[str, Any]:
    """The state of the single element in `block` (empty when absent)."""
    actions = values.get(block) or {}
    return next(iter(actions.values()), {}) if actions else {}


def text_of(values: dict[str, Any], block: str) -> str:
    return str(field(values, block).get("value") or "").strip()


def selected(values: dict[str, Any], block: str) -> str | None:
    option = field(values, block).get("selected_option") or {}
    value = option.get("value")
    return None if value in (None, "none") else str(value)


def date_of(values: dict[str, Any], block: str) -> date | None:
    raw = field(values, block).get("selected_date")
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def amount_of(values: dict[str, Any], block: str, errors: dict[str, str]) -> int | None:
    raw = text_of(values, block)
    if not raw:
        return None
    try:
        minor = parse_amount(raw)
    except ValueError:
        errors[block] = "Write an amount such as 1200 or 1,200.50."
        return None
    if minor < 0:
        errors[block] = "Amounts cannot be negative."
        return None
    return minor


def read_subject(
    values: dict[str, Any], errors: dict[str, str], *, required: bool
) -> dict[str, Any] | None:
    """Which subject a rate is for: {"user": id} / {"group_id"} / {"new_group"} / {"default"}."""
    chosen: list[dict[str, Any]] = []
    user = field(values, "member").get("selected_user")
    if user:
        chosen.append({"user": str(user)})
    group = selected(values, "group")
    if group:
        chosen.append({"group_id": int(group)})
    new_group = text_of(values, "new_group")
    if new_group:
        chosen.append({"new_group": new_group})
    if field(values, "default").get("selected_options"):
        chosen.append({"default": True})
    if len(chosen) > 1:
        errors["member"] = "Pick one: a member, a group, a new group or the default."
        return None
    if not chosen:
        if required:
            errors["member"] = "Pick who the rate is for."
        return None
    return chosen[0]


def read_contract(
    values: dict[str, Any],
) -> tuple[int | None, d.ContractTerms | None, dict[str, str]]:
    """The contract form as (customer id, terms, errors by block)."""
    errors: dict[str, str] = {}
    customer = selected(values, "customer")
    if customer is None:
        errors["customer"] = "Choose the customer."
    kind_value = selected(values, "kind")
    kind = ContractKind(kind_value) if kind_value in {k.value for k in ContractKind} else None
    if kind is None:
        errors["kind"] = "Choose the kind of contract."
    start = date_of(values, "start")
    if start is None:
        errors["start"] = "Pick the start date."
    hours_text = text_of(values, "block_hours")
    block_minutes = 0
    if hours_text:
        try:
            block_minutes = d.parse_hours(hours_text, "block hours")
        except d.DirectoryError as exc:
            errors["block_hours"] = str(exc)
    amounts = {
        name: amount_of(values, name, errors)
        for name in ("hourly_rate", "monthly_fee", "block_price", "overage_rate", "direct_cost")
    }
    name = text_of(values, "name")
    if errors or kind is None or start is None:
        return None, None, errors
    terms = d.ContractTerms(
        name=name,
        kind=kind,
        start_date=start,
        end_date=date_of(values, "end"),
        hourly_rate_minor=amounts["hourly_rate"],
        monthly_fee_minor=amounts["monthly_fee"] or 0,
        block_minutes=block_minutes,
        block_price_minor=amounts["block_price"] or 0,
        overage_minor_per_hour=amounts["overage_rate"] or 0,
        monthly_direct_cost_minor=amounts["direct_cost"] or 0,
    )
    to_block = {
        "name": "name",
        "end_date": "end",
        "monthly_fee_minor": "monthly_fee",
        "block_minutes": "block_hours",
        "block_price_minor": "block_price",
        "overage_minor_per_hour": "overage_rate",
        "monthly_direct_cost_minor": "direct_cost",
        "hourly_rate_minor": "hourly_rate",
    }
    for key, message in d.check_terms(terms).items():
        errors[to_block.get(key, "name")] = message
    return int(customer) if customer else None, terms, errors


# ---------------------------------------------------------------------------------------
# Listeners
# ---------------------------------------------------------------------------------------


async def _allowed(services: Services, user_id: str, client: AsyncWebClient) -> bool:
    member = await resolve_member(services, user_id, client=client)
    return can_see_money(member)


async def _tell(respond: AsyncRespond, text: str) -> None:
    try:
        await respond(text=text, blocks=[section(text)], response_type="ephemeral")
    except Exception:
        logger.exception("answering /docket failed")


async def _today(services: Services) -> date:
    async with services.read() as session:
        return await d.workspace_today(
            session=session, workspace_id=services.workspace_id, at=services.now()
        )


async def _groups(services: Services) -> list[tuple[int, str]]:
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


async def handle_directory_command(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """`/docket customers|contacts|contracts|rates|charges|calculator ...`."""
    await ack()
    try:
        if not await _allowed(services, str(command.get("user_id") or ""), client):
            await _tell(respond, REFUSAL)
            return
        sub, rest = split_subcommand(command.get("text"))
        trigger = str(command.get("trigger_id") or "")
        view = await _view_for(sub, rest, services, respond)
        if view is not None:
            await client.views_open(trigger_id=trigger, view=view)
    except Exception:
        logger.exception("/docket %s failed", command.get("text"))
        await _tell(respond, SORRY)


async def _view_for(
    sub: str, rest: str, services: Services, respond: AsyncRespond
) -> dict[str, Any] | None:
    today = await _today(services)
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
        return build_cost_rate_modal(await _groups(services), today)
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
        return build_calculator_modal(await _groups(services), today)
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


async def _refuse_submission(ack: AsyncAck, block: str) -> None:
    await ack(response_action="errors", errors={block: REFUSAL})


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _values(view: dict[str, Any]) -> dict[str, Any]:
    return dict((view.get("state") or {}).get("values") or {})


async def handle_customer_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save the customer form."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "name")
        return
    values = _values(view)
    errors: dict[str, str] = {}
    try:
        name = d.clean_name(text_of(values, "name"), "customer name")
    except d.DirectoryError as exc:
        errors["name"] = str(exc)
    try:
        domains = d.parse_domains(text_of(values, "domains"))
    except d.DirectoryError as exc:
        errors["domains"] = str(exc)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    channel = field(values, "channel").get("selected_conversation") or None
    internal = field(values, "internal").get("selected_conversation") or None
    if internal and internal == channel:
        await ack(
            response_action="errors",
            errors={"internal": "Choose the team's own channel, not the customer's."},
        )
        return
    picked = {o.get("value") for o in field(values, "notices").get("selected_options") or []}
    try:
        async with services.transaction() as session:
            await d.save_customer(
                session=session,
                workspace_id=services.workspace_id,
                name=name,
                email_domains=domains,
                slack_channel=channel,
                internal_channel=internal,
                notices={n: n in picked for n in d.CUSTOMER_NOTICES},
                customer_id=_metadata(view).get("customer_id"),
                at=services.now(),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"name": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view("Customer saved", f"Saved *{safe(name, 200)}*."),
    )


async def handle_contact_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save the contact form."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "customer")
        return
    values = _values(view)
    customer = selected(values, "customer")
    if customer is None:
        await ack(response_action="errors", errors={"customer": "Choose the customer."})
        return
    try:
        async with services.transaction() as session:
            contact = await d.save_contact(
                session=session,
                workspace_id=services.workspace_id,
                customer_id=int(customer),
                email=text_of(values, "email"),
                name=text_of(values, "name"),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"email": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view("Contact saved", f"Saved {safe(contact.email, 320)}."),
    )


async def handle_contract_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save the contract form (the affected periods are recomputed in the background)."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "name")
        return
    customer_id, terms, errors = read_contract(_values(view))
    policy = text_of(_values(view), "sla_policy") or None
    if policy and not errors:
        async with services.read() as session:
            if not await policy_exists(
                session=session, workspace_id=services.workspace_id, name=policy
            ):
                errors["sla_policy"] = f"No SLA policy is named {policy}: see /docket sla."
    if errors or terms is None or customer_id is None:
        await ack(response_action="errors", errors=errors)
        return
    try:
        async with services.transaction() as session:
            contract = await d.save_contract(
                session=session,
                workspace_id=services.workspace_id,
                customer_id=customer_id,
                terms=terms,
                contract_id=_metadata(view).get("contract_id"),
                at=services.now(),
            )
            await set_contract_policy(
                session=session,
                workspace_id=services.workspace_id,
                contract=contract,
                policy=policy,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"name": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view(
            "Contract saved",
            f"Saved *{safe(terms.name, 200)}*. Profitability is being recomputed.",
        ),
    )


async def _subject_ids(
    services: Services, subject: dict[str, Any], client: AsyncWebClient
) -> tuple[int | None, int | None, str]:
    """(member id, group id, label) of a chosen rate subject (creating a new group)."""
    if "user" in subject:
        member = await resolve_member(services, subject["user"], client=client)
        return member.id, None, member.name or member.email or "that member"
    if "group_id" in subject:
        return None, int(subject["group_id"]), "the group"
    if "new_group" in subject:
        async with services.transaction() as session:
            group = await d.ensure_group(
                session=session,
                workspace_id=services.workspace_id,
                name=d.clean_name(subject["new_group"], "group name"),
            )
        return None, group.id, f"group {group.name}"
    return None, None, "everyone without their own or a group rate"


async def handle_cost_rate_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save a cost rate for a member, a group or the default."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "hourly_cost")
        return
    values = _values(view)
    errors: dict[str, str] = {}
    subject = read_subject(values, errors, required=True)
    minor = amount_of(values, "hourly_cost", errors)
    if minor is None and "hourly_cost" not in errors:
        errors["hourly_cost"] = "Write the cost per hour, e.g. 55.00."
    since = date_of(values, "since")
    if since is None:
        errors["since"] = "Pick the date it applies from."
    if errors or subject is None or minor is None or since is None:
        await ack(response_action="errors", errors=errors)
        return
    try:
        member_id, group_id, label = await _subject_ids(services, subject, client)
        async with services.transaction() as session:
            await d.save_cost_rate(
                session=session,
                workspace_id=services.workspace_id,
                effective_from=since,
                minor_per_hour=minor,
                member_id=member_id,
                group_id=group_id,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"member": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view(
            "Cost rate saved",
            f"{to_decimal_string(minor)}/h for {safe(label, 200)} from {since.isoformat()}. "
            "Profitability from that date is being recomputed.",
        ),
    )


async def handle_charge_rate_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save an hourly contract's charge rate from a date."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "hourly_rate")
        return
    values = _values(view)
    errors: dict[str, str] = {}
    contract = selected(values, "contract")
    if contract is None:
        errors["contract"] = "Choose the contract."
    minor = amount_of(values, "hourly_rate", errors)
    if minor is None and "hourly_rate" not in errors:
        errors["hourly_rate"] = "Write the charge per hour, e.g. 120.00."
    since = date_of(values, "since")
    if since is None:
        errors["since"] = "Pick the date it applies from."
    if errors or contract is None or minor is None or since is None:
        await ack(response_action="errors", errors=errors)
        return
    try:
        async with services.transaction() as session:
            await d.save_charge_rate(
                session=session,
                workspace_id=services.workspace_id,
                contract_id=int(contract),
                effective_from=since,
                minor_per_hour=minor,
                at=services.now(),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"contract": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view(
            "Charge rate saved", f"{to_decimal_string(minor)}/h from {since.isoformat()}."
        ),
    )


def _decimal(values: dict[str, Any], block: str, errors: dict[str, str]) -> Decimal | None:
    raw = text_of(values, block).replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors[block] = "Write a number, e.g. 21.5."
        return None
    return value


async def handle_calculator_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Work out the loaded hourly cost; with a member, group or default chosen, save it as a
    dated cost rate keeping the inputs for audit."""
    if not await _allowed(services, _user(body), client):
        await _refuse_submission(ack, "salary")
        return
    values = _values(view)
    errors: dict[str, str] = {}
    salary = amount_of(values, "salary", errors)
    if salary is None and "salary" not in errors:
        errors["salary"] = "Write the yearly salary."
    on_costs = _decimal(values, "on_costs", errors)
    benefits = amount_of(values, "benefits", errors) or 0
    overhead = amount_of(values, "overhead", errors) or 0
    days_text = text_of(values, "days")
    if not days_text.isdigit():
        errors["days"] = "Write a whole number of days, e.g. 220."
    hours = _decimal(values, "hours", errors)
    subject = read_subject(values, errors, required=False)
    if errors or salary is None or on_costs is None or hours is None:
        await ack(response_action="errors", errors=errors)
        return
    try:
        breakdown = loaded_hourly_cost(
            yearly_salary_minor=salary,
            on_costs_pct=on_costs,
            benefits_minor_per_year=benefits,
            overhead_minor_per_year=overhead,
            working_days=int(days_text),
            hours_per_day=hours,
        )
    except (ValueError, TypeError) as exc:
        await ack(response_action="errors", errors={"salary": str(exc)})
        return
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=services.workspace_id)
    currency = ws.currency
    result = (
        f":abacus: *{format_amount(breakdown.hourly_cost_minor, currency)} per hour* — "
        f"{format_amount(breakdown.total_yearly_minor, currency)} a year "
        f"(salary {format_amount(breakdown.yearly_salary_minor, currency)}, on-costs "
        f"{format_amount(breakdown.on_costs_minor, currency)}, benefits "
        f"{format_amount(breakdown.benefits_minor, currency)}, overheads "
        f"{format_amount(breakdown.overhead_minor, currency)}) over "
        f"{breakdown.yearly_hours} hours."
    )
    if subject is None:
        typed = {
            k: text_of(values, k) for k in ("salary", "on_costs", "benefits", "overhead", "days")
        }
        typed["hours"] = text_of(values, "hours")
        await ack(
            response_action="update",
            view=build_calculator_modal(
                await _groups(services), await _today(services), values=typed, result=result
            ),
        )
        return
    since = date_of(values, "since") or await _today(services)
    try:
        member_id, group_id, label = await _subject_ids(services, subject, client)
        async with services.transaction() as session:
            await d.save_cost_rate(
                session=session,
                workspace_id=services.workspace_id,
                effective_from=since,
                minor_per_hour=breakdown.hourly_cost_minor,
                member_id=member_id,
                group_id=group_id,
                inputs=breakdown.as_json(),
                at=services.now(),
            )
    except d.DirectoryError as exc:
        await ack(response_action="errors", errors={"member": str(exc)})
        return
    await ack(
        response_action="update",
        view=build_done_view(
            "Cost rate saved",
            f"{result}\nSaved for {safe(label, 200)} from {since.isoformat()}.",
        ),
    )


async def _asker_on_team(body: dict[str, Any], services: Services) -> bool:
    """Directory look-ups answer members of the support team only."""
    user_id = str((body.get("user") or {}).get("id") or "")
    return await team_member(services, user_id) is not None


async def handle_customer_options(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """Customers matching what was typed (for forms with many customers)."""
    if not await _asker_on_team(body, services):
        await ack(options=[])
        return
    query = str(body.get("value") or "").casefold()
    async with services.read() as session:
        customers = await d.list_customers(session=session, workspace_id=services.workspace_id)
    options = [_option(c.name, str(c.id)) for c in customers if query in c.name.casefold()]
    await ack(options=options[:MAX_STATIC_OPTIONS])


async def handle_contract_options(ack: AsyncAck, body: dict[str, Any], services: Services) -> None:
    """Hourly contracts matching what was typed."""
    if not await _asker_on_team(body, services):
        await ack(options=[])
        return
    query = str(body.get("value") or "").casefold()
    options = [
        _option(label, str(cid))
        for cid, label in await _hourly_contracts(services)
        if query in label.casefold()
    ]
    await ack(options=options[:MAX_STATIC_OPTIONS])


def register(app: AsyncApp) -> None:
    names = ("customers", "contacts", "contracts", "rates", "charges", "calculator")
    app.command(Command.DOCKET.value, matchers=[subcommand(*names)])(handle_directory_command)
    app.view(View.CUSTOMER.value)(handle_customer_submission)
    app.view(View.CONTACT.value)(handle_contact_submission)
    app.view(View.CONTRACT.value)(handle_contract_submission)
    app.view(View.COST_RATE.value)(handle_cost_rate_submission)
    app.view(View.CHARGE_RATE.value)(handle_charge_rate_submission)
    app.view(View.CALCULATOR.value)(handle_calculator_submission)
    app.options(Action.DIRECTORY_CUSTOMER.value)(handle_customer_options)
    app.options(Action.DIRECTORY_CONTRACT.value)(handle_contract_options)
