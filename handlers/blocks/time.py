"""Block Kit for `/time` answers and the log-time form, and reading the submitted form.

Pure: no I/O. Managers' money notes are passed in as plain values (`MoneyNote`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from handlers.blocks.common import Block, context, plain, safe, section
from handlers.ids import Action, View
from models.money import format_amount
from models.timeparse import TimeTextError, format_minutes, parse_duration

MAX_STATIC_OPTIONS = 100

# Block and action ids inside the form (read back from view.state on submission).
B_DURATION, A_DURATION = "duration", "duration_input"
B_DATE, A_DATE = "work_date", "work_date_input"
B_BILLABLE, A_BILLABLE = "billable", "billable_input"
B_TICKET, A_TICKET = "ticket", "ticket_input"
B_TARGET = "target"
B_NOTE, A_NOTE = "note", "note_input"


@dataclass(frozen=True)
class MoneyNote:
    """What a manager sees about a new entry: its cost and the customer's month so far."""

    currency: str
    cost_minor: int | None  # None: no cost rate in force (uncosted)
    customer: str | None = None
    margin_text: str | None = None


@dataclass(frozen=True)
class LoggedEntry:
    """An entry as the confirmation shows it."""

    entry_id: int
    minutes: int
    work_date: date
    billable: bool
    note: str
    ticket: str | None = None  # "#123 Printer jams"
    customer: str | None = None
    contract: str | None = None


def describe(entry: LoggedEntry) -> str:
    """One line about an entry (user text escaped)."""
    parts = [f"*{format_minutes(entry.minutes)}* on {entry.work_date:%a %d %b %Y}"]
    if entry.ticket:
        parts.append(safe(entry.ticket, 200))
    if entry.customer:
        where = entry.customer + (f" / {entry.contract}" if entry.contract else "")
        parts.append(safe(where, 200))
    if not entry.billable:
        parts.append("not billable")
    text = " · ".join(parts)
    if entry.note:
        text += f" — {safe(entry.note, 500)}"
    return text


def build_logged(entry: LoggedEntry, money: MoneyNote | None, verb: str = "Logged") -> list[Block]:
    """The confirmation of a logged (or changed) entry; `money` only for managers."""
    blocks = [
        section(f":white_check_mark: {verb} {describe(entry)}"),
        context(
            f"Entry {entry.entry_id} · change it with `/time edit {entry.entry_id} …` "
            f"or `/time delete {entry.entry_id}`"
        ),
    ]
    if money is not None:
        cost = (
            "no cost rate in force for that day (uncosted)"
            if money.cost_minor is None
            else format_amount(money.cost_minor, money.currency)
        )
        text = f":moneybag: Cost of this entry: {cost}"
        if money.customer and money.margin_text:
            text += f" · {safe(money.customer, 200)} this month: {money.margin_text}"
        blocks.append(context(text))
    return blocks


def build_list(entries: list[LoggedEntry]) -> list[Block]:
    """`/time list`: the person's latest entries."""
    if not entries:
        return [section("You have not logged any time yet. Try `/time 1h30 #123 fixed the VPN`.")]
    lines = [f"`{e.entry_id}` {describe(e)}" for e in entries]
    blocks = [section("*Your latest time entries*")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > 2800:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    blocks.append(section("\n".join(chunk)))
    blocks.append(context("`/time edit ID 2h` · `/time delete ID`"))
    return blocks


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, 75), "value": value}


def target_options(
    customers: list[tuple[int, str]], contracts: list[tuple[int, int, str]], query: str = ""
) -> list[dict[str, Any]]:
    """Customers ("c:ID") and their contracts ("k:ID") as select options, filtered by name."""
    wanted = query.strip().casefold()
    options = []
    for customer_id, name in customers:
        if wanted in name.casefold():
            options.append(_option(name, f"c:{customer_id}"))
        for contract_id, owner, contract in contracts:
            label = f"{name} — {contract}"
            if owner == customer_id and wanted in label.casefold():
                options.append(_option(label, f"k:{contract_id}"))
    return options[:MAX_STATIC_OPTIONS]


def build_log_time_modal(
    *,
    today: date,
    ticket_id: int | None,
    ticket_label: str | None,
    options: list[dict[str, Any]] | None,
    searchable: bool,
) -> dict[str, Any]:
    """The log-time form: for a ticket, or with a ticket number / customer to pick."""
    blocks: list[Block] = []
    if ticket_label:
        blocks.append(context(f"Time on {safe(ticket_label, 300)}"))
    blocks += [
        {
            "type": "input",
            "block_id": B_DURATION,
            "label": plain("How long"),
            "hint": plain("e.g. 1h30, 90m, 1.5h or 1:30"),
            "element": {
                "type": "plain_text_input",
                "action_id": A_DURATION,
                "placeholder": plain("1h30"),
            },
        },
        {
            "type": "input",
            "block_id": B_DATE,
            "label": plain("Day"),
            "element": {
                "type": "datepicker",
                "action_id": A_DATE,
                "initial_date": today.isoformat(),
            },
        },
    ]
    if ticket_id is None:
        blocks.append(
            {
                "type": "input",
                "block_id": B_TICKET,
                "optional": True,
                "label": plain("Ticket number"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": A_TICKET,
                    "placeholder": plain("123"),
                },
            }
        )
        element: dict[str, Any]
        if searchable:
            element = {
                "type": "external_select",
                "action_id": Action.TIME_TARGET.value,
                "placeholder": plain("Type a customer's name"),
                "min_query_length": 0,
            }
        else:
            element = {
                "type": "static_select",
                "action_id": Action.TIME_TARGET.value,
                "placeholder": plain("Customer or contract"),
                "options": options or [_option("(none)", "none")],
            }
        blocks.append(
            {
                "type": "input",
                "block_id": B_TARGET,
                "optional": True,
                "label": plain("Or a customer / contract"),
                "hint": plain("Leave both empty for internal work."),
                "element": element,
            }
        )
    blocks += [
        {
            "type": "input",
            "block_id": B_BILLABLE,
            "optional": True,
            "label": plain("Billable"),
            "element": {
                "type": "checkboxes",
                "action_id": A_BILLABLE,
                "options": [_option("Bill this time to the customer", "yes")],
                "initial_options": [_option("Bill this time to the customer", "yes")],
            },
        },
        {
            "type": "input",
            "block_id": B_NOTE,
            "optional": True,
            "label": plain("Note"),
            "element": {
                "type": "plain_text_input",
                "action_id": A_NOTE,
                "multiline": True,
                "max_length": 2000,
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": View.LOG_TIME.value,
        "title": plain("Log time", 24),
        "submit": plain("Log", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"ticket_id": ticket_id}),
        "blocks": blocks,
    }


@dataclass(frozen=True)
class FormInput:
    """What the form says, read and checked (pure)."""

    minutes: int | None
    work_date: date | None
    billable: bool
    note: str
    ticket_number: int | None
    target: str | None
    errors: dict[str, str]


def read_form(values: dict[str, Any]) -> FormInput:
    """Read the submitted form; problems come back by block id for Slack's field errors."""
    errors: dict[str, str] = {}

    def value(block: str, action: str) -> Any:
        return (values.get(block) or {}).get(action) or {}

    raw = str(value(B_DURATION, A_DURATION).get("value") or "").strip()
    minutes = None
    try:
        minutes = parse_duration(raw)
        if minutes is None:
            errors[B_DURATION] = "Write a duration such as 1h30, 90m, 1.5h or 1:30."
    except TimeTextError as exc:
        errors[B_DURATION] = str(exc).replace("`", "")
    picked = value(B_DATE, A_DATE).get("selected_date")
    work_date = None
    try:
        work_date = date.fromisoformat(picked) if picked else None
    except ValueError:
        pass
    if work_date is None:
        errors[B_DATE] = "Pick the day you worked."
    billable = bool(value(B_BILLABLE, A_BILLABLE).get("selected_options"))
    note = str(value(B_NOTE, A_NOTE).get("value") or "").strip()
    ticket_text = str(value(B_TICKET, A_TICKET).get("value") or "").strip().lstrip("#")
    ticket_number = None
    if ticket_text:
        if ticket_text.isdigit():
            ticket_number = int(ticket_text)
        else:
            errors[B_TICKET] = "Write the ticket's number, e.g. 123."
    option = value(B_TARGET, Action.TIME_TARGET.value).get("selected_option") or {}
    target = option.get("value") if option.get("value") not in (None, "none") else None
    return FormInput(minutes, work_date, billable, note, ticket_number, target, errors)


def field_for(reason: str) -> str:
    """The form field a refusal of the entry belongs to."""
    return B_DATE if "future" in reason else B_DURATION
