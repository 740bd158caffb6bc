"""Block Kit for tickets: the card, the create/edit form, lists, help. Pure: no I/O.

Everything a person or customer wrote reaches Slack through escape()/safe() in mrkdwn, so
`<!channel>`, `<@U...>` and `<http://evil|bank>` show as typed. Plain-text fields (option
labels, input values) are never parsed for mentions or links by Slack and are only cut.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from handlers.blocks.common import Block, button, context, cut, escape, plain, safe, section
from handlers.blocks.sla import sla_context_text
from handlers.ids import Action, View
from models.lifecycle import label as status_label
from models.lifecycle import next_statuses
from models.tables import Priority, TicketStatus
from models.tickets import TITLE_MAX, TicketCard, TicketPage

MAX_OPTION_TEXT = 75
MAX_INPUT = 3000
CARD_DESCRIPTION_LIMIT = 1500
LIST_TITLE_LIMIT = 90
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")


class Field(StrEnum):
    """Block ids of the ticket form (contact and contract get the customer id appended)."""

    CUSTOMER = "customer"
    CONTACT = "contact"
    CONTRACT = "contract"
    TITLE = "title"
    DESCRIPTION = "description"
    PRIORITY = "priority"
    ASSIGNEE = "assignee"


# Action ids of the form's inputs: only the customer select sends actions (dispatch_action).
_INPUT = {
    Field.CONTACT: "contact_input",
    Field.CONTRACT: "contract_input",
    Field.TITLE: "title_input",
    Field.DESCRIPTION: "description_input",
    Field.PRIORITY: "priority_input",
    Field.ASSIGNEE: "assignee_input",
}

PRIORITY_LABELS: dict[str, str] = {
    Priority.LOW: "Low",
    Priority.NORMAL: "Normal",
    Priority.HIGH: "High",
    Priority.URGENT: "Urgent",
}
_PRIORITY_EMOJI: dict[str, str] = {
    Priority.LOW: ":white_circle:",
    Priority.NORMAL: ":large_blue_circle:",
    Priority.HIGH: ":large_orange_circle:",
    Priority.URGENT: ":red_circle:",
}


# -- small pieces -------------------------------------------------------------------------


def ref(number: int) -> str:
    """How a ticket number is written: `#12`."""
    return f"#{number}"


def mention(slack_user_id: str | None, fallback: str | None = None) -> str:
    """`<@U123>` for a real Slack user id; anything else is shown as escaped text."""
    if slack_user_id and _USER_ID.match(slack_user_id):
        return f"<@{slack_user_id}>"
    return escape(fallback) if fallback else "someone"


def format_age(created_at: datetime, now: datetime) -> str:
    """A short age such as "5m", "3h", "2d 4h"."""
    seconds = max(0, int((now - created_at).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        rest = hours - days * 24
        return f"{days}d {rest}h" if rest and days < 7 else f"{days}d"
    if hours:
        return f"{hours}h"
    return f"{minutes}m" if minutes else "just now"


def _slack_date(at: datetime) -> str:
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _permalink(url: str | None) -> str | None:
    """A Slack permalink fit to put in a link (https, no characters that end a link)."""
    if not url or not url.startswith("https://") or any(c in url for c in "<>| \n"):
        return None
    return url


def card_text(card: TicketCard) -> str:
    """The notification text of a card message (escaped: it is shown and parsed too)."""
    return cut(f"Ticket {ref(card.number)}: {safe(card.title, TITLE_MAX)}", 400)


def source_reply_text(card: TicketCard) -> str:
    """What Docket answers under the message a ticket was made from."""
    return f":ticket: Ticket *{ref(card.number)}* created: {safe(card.title, 200)}"


def assigned_text(card: TicketCard) -> str:
    """The DM text sent with the card to a new assignee."""
    return f"You were assigned ticket {ref(card.number)}: {safe(card.title, 200)}"


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(cut(text or value, MAX_OPTION_TEXT)), "value": value}


# -- the card -----------------------------------------------------------------------------


def status_value(ticket_id: int, status: str) -> str:
    """The status select's option value: `"<ticket id>:<status>"`."""
    return f"{ticket_id}:{status}"


def parse_status_value(value: str) -> tuple[int, str] | None:
    """`"12:waiting"` -> `(12, "waiting")`; None for anything else."""
    ticket_id, _, status = (value or "").partition(":")
    if not ticket_id.isdigit() or not status:
        return None
    return int(ticket_id), status


def status_select(ticket_id: int, status: str) -> dict[str, Any]:
    """A ticket's status menu (on its card and in reply DMs): the current status first, then
    the allowed moves."""
    statuses = [status, *[s.value for s in next_statuses(status)]]
    options = [_option(status_label(s), status_value(ticket_id, s)) for s in statuses]
    return {
        "type": "static_select",
        "action_id": Action.STATUS.value,
        "placeholder": plain("Status"),
        "options": options,
        "initial_option": options[0],
    }


def card_actions(card: TicketCard) -> Block:
    """The card's buttons and status select."""
    value = str(card.id)
    elements: list[dict[str, Any]] = [
        button("Assign to me", Action.ASSIGN_TO_ME, value, style="primary"),
        status_select(card.id, card.status),
        button("Edit", Action.EDIT, value),
        button("Log time", Action.LOG_TIME, value),
        button("Reply to customer", Action.REPLY, value),
    ]
    if card.status != TicketStatus.CLOSED:
        close = button("Close", Action.CLOSE, value, style="danger")
        close["confirm"] = {
            "title": plain(f"Close {ref(card.number)}?"),
            "text": plain("The ticket is closed; it can be reopened from its status."),
            "confirm": plain("Close"),
            "deny": plain("Cancel"),
        }
        elements.append(close)
    return {"type": "actions", "block_id": f"ticket-{card.id}-actions", "elements": elements}


UNVERIFIED_SENDER = (
    ":warning: *Unverified sender*: the mail server did not confirm the From address. "
    "Check with the customer before acting on payment or account changes."
)


def build_ticket_card(card: TicketCard, *, now: datetime, with_actions: bool = True) -> list[Block]:
    """The ticket card: number, title, customer, contract, priority, status, assignee, age,
    and its buttons."""
    priority = PRIORITY_LABELS.get(card.priority, escape(card.priority))
    emoji = _PRIORITY_EMOJI.get(card.priority, "")
    assignee = (
        mention(card.assignee_slack_id, card.assignee_name) if card.assignee_id else "_Unassigned_"
    )
    contract = safe(card.contract_name, 200) if card.contract_name else "_None: billable_"
    fields = [
        f"*Customer*\n{safe(card.customer_name, 200) if card.customer_name else '_None_'}",
        f"*Contract*\n{contract}",
        f"*Priority*\n{' '.join(filter(None, [emoji, priority]))}",
        f"*Status*\n{status_label(card.status)}",
        f"*Assignee*\n{assignee}",
        f"*Age*\n{format_age(card.created_at, now)} (opened {_slack_date(card.created_at)})",
    ]
    if card.contact_name or card.requester_email:
        who = safe(card.contact_name, 200) if card.contact_name else ""
        email = card.contact_email or card.requester_email
        if email and email != card.contact_name:
            who = f"{who} ({safe(email, 320)})" if who else safe(email, 320)
        fields.append(f"*Requester*\n{who}")
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": f"ticket-{card.id}-title",
            "text": {
                "type": "mrkdwn",
                "text": f":ticket: *{ref(card.number)} · {safe(card.title, TITLE_MAX)}*",
            },
        },
        {
            "type": "section",
            "block_id": f"ticket-{card.id}-fields",
            "fields": [{"type": "mrkdwn", "text": cut(f, 2000)} for f in fields],
        },
    ]
    if not card.verified:
        blocks.append(context(UNVERIFIED_SENDER))
    if card.description.strip():
        blocks.append(section(safe(card.description, CARD_DESCRIPTION_LIMIT)))
    link = _permalink(card.source_permalink)
    if link:
        blocks.append(context(f":link: <{link}|Source message>"))
    if card.sla is not None:
        blocks.append(context(f":stopwatch: {card_sla_text(card, now=now)}"))
    if with_actions:
        blocks.append(card_actions(card))
    return blocks


# -- the create / edit form ---------------------------------------------------------------


@dataclass(frozen=True)
class FormMeta:
    """What the form carries between opening and submission (private_metadata)."""

    ticket_id: int | None = None
    version: int | None = None
    number: int | None = None
    source_channel: str | None = None
    source_ts: str | None = None
    source_thread_ts: str | None = None
    permalink: str | None = None
    requester_email: str | None = None
    # The description is longer than a form input allows: it is shown read-only and kept.
    keep_description: bool = False

    def encode(self) -> str:
        data = {
            "t": self.ticket_id,
            "v": self.version,
            "n": self.number,
            "sc": self.source_channel,
            "st": self.source_ts,
            "sth": self.source_thread_ts,
            "p": self.permalink if self.permalink and len(self.permalink) <= 500 else None,
            "re": self.requester_email,
            "kd": 1 if self.keep_description else None,
        }
        return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> FormMeta:
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}

        def num(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            ticket_id=num("t"),
            version=num("v"),
            number=num("n"),
            source_channel=text("sc"),
            source_ts=text("st"),
            source_thread_ts=text("sth"),
            permalink=text("p"),
            requester_email=text("re"),
            keep_description=data.get("kd") == 1,
        )


@dataclass(frozen=True)
class Choice:
    """One option of a select: an id and what the person sees."""

    id: int
    label: str


@dataclass(frozen=True)
class TicketForm:
    """Everything the ticket modal shows; built by the handler from the database."""

    meta: FormMeta = field(default_factory=FormMeta)
    title: str = ""
    description: str = ""
    priority: str = Priority.NORMAL
    customer: Choice | None = None
    contacts: tuple[Choice, ...] = ()
    contact_id: int | None = None
    contracts: tuple[Choice, ...] = ()
    contract_id: int | None = None
    assignee_slack_id: str | None = None
    notice: str | None = None  # mrkdwn, already escaped

    @property
    def editing(self) -> bool:
        return self.meta.ticket_id is not None


def contact_label(name: str, email: str) -> str:
    """A contact as shown in the form: `Name (email)`."""
    return f"{name} ({email})" if name and name != email else email


def _select(
    action_id: str, options: list[dict[str, Any]], initial: str | None, placeholder: str
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder),
        "options": options,
    }
    chosen = next((o for o in options if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return element


def _input(block_id: str, label: str, element: dict[str, Any], **extra: Any) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "element": element,
    }
    block.update(extra)
    return block


def build_ticket_modal(form: TicketForm) -> dict[str, Any]:
    """The create/edit modal. Changing the customer dispatches an action so the handler can
    swap in that customer's contacts and contracts (their block ids carry the customer id,
    so an earlier customer's choices never leak into the new one)."""
    blocks: list[Block] = []
    if form.notice:
        blocks.append(context(form.notice))
    customer_select: dict[str, Any] = {
        "type": "external_select",
        "action_id": Action.TICKET_CUSTOMER.value,
        "placeholder": plain("Type to search customers"),
        "min_query_length": 1,
    }
    if form.customer is not None:
        customer_select["initial_option"] = _option(form.customer.label, str(form.customer.id))
    blocks.append(
        _input(Field.CUSTOMER, "Customer", customer_select, optional=True, dispatch_action=True)
    )
    if form.customer is None:
        blocks.append(
            context(
                "Pick a customer to choose its contact and contract. "
                "Work without a contract is billable."
            )
        )
    else:
        cid = form.customer.id
        name = safe(form.customer.label, 200)
        if form.contacts:
            options = [_option(c.label, str(c.id)) for c in form.contacts[:100]]
            initial = str(form.contact_id) if form.contact_id else None
            element = _select(_INPUT[Field.CONTACT], options, initial, "Who asked?")
            blocks.append(_input(f"{Field.CONTACT}-{cid}", "Contact", element, optional=True))
        else:
            blocks.append(context(f"No contacts on file for {name}."))
        if form.contracts:
            options = [_option(c.label, str(c.id)) for c in form.contracts[:100]]
            initial = str(form.contract_id) if form.contract_id else None
            element = _select(_INPUT[Field.CONTRACT], options, initial, "Which contract?")
            blocks.append(
                _input(
                    f"{Field.CONTRACT}-{cid}",
                    "Contract",
                    element,
                    optional=True,
                    hint=plain(
                        "Leave empty when no contract covers this work: it will be billable."
                    ),
                )
            )
        else:
            blocks.append(
                context(f":warning: No active contract covers {name}: the work will be billable.")
            )
    title_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": _INPUT[Field.TITLE],
        "max_length": TITLE_MAX,
        "placeholder": plain("What is the problem?"),
    }
    if form.title:
        title_input["initial_value"] = form.title[:TITLE_MAX]
    blocks.append(_input(Field.TITLE, "Title", title_input))
    meta = form.meta
    if meta.keep_description or len(form.description) > MAX_INPUT:
        # Cutting it to fit the input would lose text on save: show it, keep it unchanged.
        meta = replace(meta, keep_description=True)
        shown = f"\n{safe(form.description, 1000)}" if form.description else ""
        blocks.append(context(f"*Description* is too long to edit here; it is kept.{shown}"))
    else:
        description: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": _INPUT[Field.DESCRIPTION],
            "multiline": True,
            "max_length": MAX_INPUT,
        }
        if form.description:
            description["initial_value"] = form.description
        blocks.append(_input(Field.DESCRIPTION, "Description", description, optional=True))
    priorities = [_option(PRIORITY_LABELS[p], p.value) for p in Priority]
    blocks.append(
        _input(
            Field.PRIORITY,
            "Priority",
            _select(_INPUT[Field.PRIORITY], priorities, form.priority, "Priority"),
        )
    )
    assignee: dict[str, Any] = {
        "type": "users_select",
        "action_id": _INPUT[Field.ASSIGNEE],
        "placeholder": plain("Nobody yet"),
    }
    if form.assignee_slack_id and _USER_ID.match(form.assignee_slack_id):
        assignee["initial_user"] = form.assignee_slack_id
    blocks.append(_input(Field.ASSIGNEE, "Assignee", assignee, optional=True))
    title = f"Edit {ref(form.meta.number)}" if form.editing and form.meta.number else "New ticket"
    return {
        "type": "modal",
        "callback_id": View.TICKET.value,
        "title": plain(cut(title, 24)),
        "submit": plain("Save" if form.editing else "Create"),
        "close": plain("Cancel"),
        "private_metadata": meta.encode(),
        "blocks": blocks,
    }


@dataclass(frozen=True)
class ParsedForm:
    """A submitted (or in-progress) ticket form, read from the view state."""

    customer_id: int | None
    customer_label: str | None
    contact_id: int | None
    contract_id: int | None
    title: str
    description: str | None  # None: the form had no description input (keep it)
    priority: str
    assignee_slack_id: str | None

    def contact_block(self) -> str:
        return f"{Field.CONTACT}-{self.customer_id}" if self.customer_id else Field.CUSTOMER

    def contract_block(self) -> str:
        return f"{Field.CONTRACT}-{self.customer_id}" if self.customer_id else Field.CUSTOMER


def _selected(values: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    for action in (values.get(block_id) or {}).values():
        if isinstance(action, dict):
            option = action.get("selected_option")
            return option if isinstance(option, dict) else None
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _typed(values: dict[str, Any], block_id: str) -> str:
    for action in (values.get(block_id) or {}).values():
        if isinstance(action, dict):
            return str(action.get("value") or "")
    return ""


def parse_ticket_form(values: dict[str, Any]) -> ParsedForm:
    """Read the form's state values. A contact or contract is only taken from the blocks of
    the customer that is selected now."""
    customer = _selected(values, Field.CUSTOMER)
    customer_id = _int((customer or {}).get("value"))
    customer_label = ((customer or {}).get("text") or {}).get("text")
    contact = contract = None
    if customer_id is not None:
        contact = _selected(values, f"{Field.CONTACT}-{customer_id}")
        contract = _selected(values, f"{Field.CONTRACT}-{customer_id}")
    priority = (_selected(values, Field.PRIORITY) or {}).get("value") or Priority.NORMAL.value
    assignee = None
    for action in (values.get(Field.ASSIGNEE) or {}).values():
        if isinstance(action, dict):
            assignee = action.get("selected_user")
    return ParsedForm(
        customer_id=customer_id,
        customer_label=customer_label if isinstance(customer_label, str) else None,
        contact_id=_int((contact or {}).get("value")),
        contract_id=_int((contract or {}).get("value")),
        title=_typed(values, Field.TITLE).strip(),
        description=(
            _typed(values, Field.DESCRIPTION).strip() if Field.DESCRIPTION in values else None
        ),
        priority=str(priority),
        assignee_slack_id=assignee if isinstance(assignee, str) and assignee else None,
    )


def form_errors(form: ParsedForm) -> dict[str, str]:
    """Checks that need no database: what goes back into the modal at once."""
    errors: dict[str, str] = {}
    if not " ".join(form.title.split()):
        errors[Field.TITLE] = "A ticket needs a title."
    elif len(form.title) > TITLE_MAX:
        errors[Field.TITLE] = f"Keep the title under {TITLE_MAX} characters."
    if form.priority not in {p.value for p in Priority}:
        errors[Field.PRIORITY] = "Pick a priority from the list."
    if form.assignee_slack_id and not _USER_ID.match(form.assignee_slack_id):
        errors[Field.ASSIGNEE] = "Pick a person from the list."
    return errors


def customer_options(choices: list[Choice]) -> list[dict[str, Any]]:
    """Options for the customer type-ahead (at most 100, as Slack allows)."""
    return [_option(c.label, str(c.id)) for c in choices[:100]]


def build_saved_view(card: TicketCard, *, created: bool, channel: str | None) -> dict[str, Any]:
    """What the modal turns into after a successful submission."""
    where = (
        f" and posted in <#{channel}>" if channel and re.match(r"^[CG][A-Z0-9]+$", channel) else ""
    )
    verb = "created" if created else "saved"
    return {
        "type": "modal",
        "callback_id": f"{View.TICKET.value}_done",
        "title": plain("Ticket created" if created else "Ticket saved"),
        "close": plain("Done"),
        "blocks": [
            section(f":white_check_mark: Ticket *{ref(card.number)}* {verb}{where}."),
            section(f"*{safe(card.title, TITLE_MAX)}*"),
        ],
    }


# -- lists and help -----------------------------------------------------------------------


def list_line(card: TicketCard, *, now: datetime) -> str:
    """One ticket in a list: number, title, then status, priority, customer, owner, age."""
    parts = [status_label(card.status), PRIORITY_LABELS.get(card.priority, card.priority)]
    if card.customer_name:
        parts.append(safe(card.customer_name, 80))
    parts.append(
        mention(card.assignee_slack_id, card.assignee_name) if card.assignee_id else "unassigned"
    )
    parts.append(format_age(card.created_at, now))
    if card.sla is not None and card.status not in ("resolved", "closed"):
        parts.append(card_sla_text(card, now=now))
    title = safe(card.title, LIST_TITLE_LIMIT)
    return f"*{ref(card.number)}* {title}\n{' · '.join(parts)}"


def list_page_value(query: str, page: int) -> str:
    """The value of a Previous/Next button: the list's query and the page."""
    return json.dumps({"q": query[:200], "p": page}, separators=(",", ":"))


def parse_list_page_value(value: str | None) -> tuple[str, int] | None:
    """`(query, page)` from a Previous/Next button, or None."""
    try:
        data = json.loads(value or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("p"), int):
        return None
    return str(data.get("q") or ""), int(data["p"])


def build_ticket_list(page: TicketPage, *, heading: str, query: str, now: datetime) -> list[Block]:
    """One page of tickets with Previous/Next buttons. `heading` is already escaped."""
    count = f"{page.total} ticket{'s' if page.total != 1 else ''}"
    pages = f", page {page.page} of {page.pages}" if page.pages > 1 else ""
    blocks: list[Block] = [section(f"*{heading}*: {count}{pages}")]
    if not page.cards:
        blocks.append(context("Nothing here. `/ticket <title>` creates a ticket."))
    for card in page.cards:
        blocks.append(section(list_line(card, now=now)))
    nav = []
    # Two buttons in one block need two action ids; both start with Action.LIST_PAGE.
    if page.page > 1:
        nav.append(
            button("Previous", f"{Action.LIST_PAGE}-prev", list_page_value(query, page.page - 1))
        )
    if page.page < page.pages:
        nav.append(
            button("Next", f"{Action.LIST_PAGE}-next", list_page_value(query, page.page + 1))
        )
    if nav:
        blocks.append({"type": "actions", "block_id": "ticket-list-nav", "elements": nav})
    return blocks


TICKET_HELP = (
    "*Tickets in Docket*\n"
    "• `/ticket` opens the new-ticket form\n"
    "• `/ticket Printer on 3rd floor jams` creates a ticket at once\n"
    "• `/ticket 123` (or `/ticket show 123`) shows ticket 123\n"
    "• `/ticket list` lists open tickets; `/ticket list mine`, `open`, `waiting`, "
    "or a customer's name\n"
    "• `/ticket reply 123 <text>` answers the customer by email\n"
    "• Message menu → *Create ticket* turns a message into a ticket\n"
    "• Replies in a ticket card's thread become internal notes"
)


def build_ticket_help(problem: str | None = None) -> list[Block]:
    """The /ticket help; `problem` (escaped here) says what was not understood."""
    blocks: list[Block] = []
    if problem:
        blocks.append(section(f":thinking_face: {safe(problem, 500)}"))
    blocks.append(section(TICKET_HELP))
    return blocks


# -- turning a Slack message into form text -----------------------------------------------

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def message_to_plain(text: str | None) -> str:
    """A Slack message's mrkdwn as a person would read it, for prefilling a form.

    `<@U1>` -> `@U1`, `<#C1|general>` -> `#general`, `<!here>` -> `@here`,
    `<https://x|label>` -> `label (https://x)`, and `&lt;` etc. unescaped: the text is
    escaped again wherever it is posted.
    """

    def replace(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return f"@{(label or target[1:]).split('^')[0]}"
        return f"{label} ({target})" if label and label != target else target

    plain_text = _LINK.sub(replace, text or "")
    return plain_text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def title_from_text(text: str, limit: int = 120) -> str:
    """The first non-empty line, shortened at a word boundary to `limit` characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= limit:
        return line
    short = line[: limit - 1].rsplit(" ", 1)[0] or line[: limit - 1]
    return short.rstrip() + "…"


def card_sla_text(card: TicketCard, *, now: datetime) -> str:
    """The ticket's SLA clocks at `now` ("No SLA" when no policy applies)."""
    assert card.sla is not None
    return sla_context_text(card.sla.states(now), zone=card.sla.calendar.zone, now=now)
