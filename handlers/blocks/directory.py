"""Block Kit for the directory forms (customers, contacts, contracts, cost and charge rates,
the loaded-cost calculator), and reading their submitted values. Pure: no I/O."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from handlers.blocks.common import Block, context, plain, section
from handlers.ids import Action, View
from models import directory as d
from models.costcalc import DEFAULT_HOURS_PER_DAY, DEFAULT_WORKING_DAYS
from models.money import parse_amount, to_decimal_string
from models.tables import Contract, ContractKind, Customer

MAX_STATIC_OPTIONS = 100
KIND_LABELS = {
    ContractKind.HOURLY: "Hourly (charge rate × hours)",
    ContractKind.FIXED: "Fixed monthly fee",
    ContractKind.BLOCK: "Prepaid block of hours",
}


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, 75), "value": value}


def _input(
    block_id: str, label: dict[str, Any], element: dict[str, Any], *, optional: bool
) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": label,
        "optional": optional,
        "element": element,
    }


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
    block = _input(block_id, plain(label, 2000), element, optional=optional)
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def date_input(block_id: str, label: str, *, initial: date | None, optional: bool = False) -> Block:
    element: dict[str, Any] = {"type": "datepicker", "action_id": f"{block_id}_input"}
    if initial is not None:
        element["initial_date"] = initial.isoformat()
    return _input(block_id, plain(label), element, optional=optional)


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
            "options": options or [option("(none yet)", "none")],
        }
    element["placeholder"] = plain("Choose…")
    if initial is not None:
        element["initial_option"] = initial
    return _input(block_id, plain(label), element, optional=optional)


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


def _channel_select(block_id: str, label: str, hint: str, initial: str | None) -> Block:
    """An optional channel picker (public or private channels)."""
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": plain(label),
        "hint": plain(hint),
        "element": {
            "type": "conversations_select",
            "action_id": f"{block_id}_input",
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        },
    }
    if initial:
        block["element"]["initial_conversation"] = initial
    return block


def build_customer_modal(customer: Customer | None, name_hint: str = "") -> dict[str, Any]:
    """Add (or, given a customer, edit) a customer: name, email domains, linked channel."""
    channel = _channel_select(
        "channel",
        "Linked Slack channel",
        "Messages there can become this customer's tickets.",
        customer.slack_channel if customer is not None else None,
    )
    internal = _channel_select(
        "internal",
        "Team channel for their tickets",
        "Where this customer's ticket cards go; empty: the triage channel.",
        customer.internal_channel if customer is not None else None,
    )
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
    options = [option(NOTICE_LABELS[n], n) for n in d.CUSTOMER_NOTICES]
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
    return [option(c.name, str(c.id)) for c in customers]


def _customer_select(customers: list[Customer], chosen: Customer | None) -> Block:
    return select_input(
        "customer",
        "Customer",
        options=customer_options(customers),
        action_id=Action.DIRECTORY_CUSTOMER.value,
        initial=option(chosen.name, str(chosen.id)) if chosen else None,
    )


def build_contact_modal(customers: list[Customer]) -> dict[str, Any]:
    blocks = [
        _customer_select(customers, None),
        text_input("email", "Email"),
        text_input("name", "Name", optional=True),
    ]
    return modal(View.CONTACT, "New contact", blocks, {})


def build_contract_modal(
    customers: list[Customer], contract: Contract | None, hourly_rate: int | None, today: date
) -> dict[str, Any]:
    """Add or edit a contract; only the amounts of its kind are used."""
    kinds = [option(label, kind.value) for kind, label in KIND_LABELS.items()]
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
        _customer_select(customers, chosen),
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
            options=[option(name, str(gid)) for gid, name in groups][:MAX_STATIC_OPTIONS],
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
                "options": [option("The workspace default rate", "default")],
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
            options=None if searchable else [option(label, str(cid)) for cid, label in contracts],
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


# -- reading submissions ------------------------------------------------------------------


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
