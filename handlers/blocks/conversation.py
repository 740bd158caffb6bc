"""Block Kit for the customer conversation: the reply modal and what Docket posts about it.

Pure: no I/O. The customer's words and the agent's reply reach Slack through safe(), so a
customer cannot ping a channel or forge a link through a mail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from handlers.blocks.common import Block, context, cut, plain, safe, section
from handlers.blocks.tickets import mention, ref
from handlers.ids import View

REPLY_BLOCK = "reply"
REPLY_INPUT = "reply_input"
QUOTE_LIMIT = 2500
THREAD_COPY_LIMIT = 2800
REPLY_INPUT_MAX = 3000


@dataclass(frozen=True)
class ReplyTarget:
    """Where a reply to the customer goes: an email address, or a Slack thread."""

    email: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class ReplyForm:
    """What the reply modal shows."""

    ticket_id: int
    number: int
    title: str
    customer_name: str | None
    last_message: str
    target: ReplyTarget
    support_address: str
    text: str = ""


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Escaped text as a Slack block quote, cut to `limit` characters."""
    body = safe(text.strip(), limit) or "_(empty)_"
    return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))


def _where(target: ReplyTarget, support_address: str) -> str:
    if target.email:
        return f"Sent by email to {safe(target.email, 320)} from {safe(support_address, 320)}."
    if target.channel:
        return f"Posted in the customer's thread in <#{target.channel}>."
    return "This ticket has no customer address."


def build_reply_modal(form: ReplyForm) -> dict[str, Any]:
    """The "Reply to customer" modal, with the customer's last message quoted."""
    who = f" · {safe(form.customer_name, 200)}" if form.customer_name else ""
    blocks: list[Block] = [
        section(f"*{ref(form.number)} · {safe(form.title, 300)}*{who}"),
        section(f"*The customer wrote:*\n{quote(form.last_message)}"),
        {
            "type": "input",
            "block_id": REPLY_BLOCK,
            "label": plain("Your reply"),
            "element": {
                "type": "plain_text_input",
                "action_id": REPLY_INPUT,
                "multiline": True,
                "max_length": REPLY_INPUT_MAX,
                **({"initial_value": cut(form.text, REPLY_INPUT_MAX)} if form.text else {}),
                "placeholder": plain("What should the customer read?"),
            },
        },
        context(f":email: {_where(form.target, form.support_address)} Internal notes stay out."),
    ]
    return {
        "type": "modal",
        "callback_id": View.REPLY.value,
        "title": plain(f"Reply to {ref(form.number)}", 24),
        "submit": plain("Send"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps({"ticket_id": form.ticket_id}),
        "blocks": blocks,
    }


def parse_reply_metadata(private_metadata: str | None) -> int | None:
    """The ticket id the modal was opened for (None when the metadata is not ours)."""
    try:
        data = json.loads(private_metadata or "")
    except ValueError:
        return None
    ticket_id = data.get("ticket_id") if isinstance(data, dict) else None
    return ticket_id if isinstance(ticket_id, int) and not isinstance(ticket_id, bool) else None


def parse_reply_text(values: dict[str, Any]) -> str:
    """The reply typed in the modal ("" when empty)."""
    value = ((values.get(REPLY_BLOCK) or {}).get(REPLY_INPUT) or {}).get("value")
    return str(value or "").strip()


def reply_copy_text(*, agent_slack_id: str | None, agent_name: str, text: str, to: str) -> str:
    """The copy of an agent's reply in the card's thread."""
    who = mention(agent_slack_id, agent_name)
    return f":outbox_tray: {who} replied to {safe(to, 320)}:\n{quote(text, THREAD_COPY_LIMIT)}"


def customer_thread_text(text: str) -> str:
    """An agent's reply as posted in a customer's Slack thread."""
    return safe(text, THREAD_COPY_LIMIT)


def bounce_text(*, to: str | None, subject: str | None) -> str:
    """What the card's thread says when one of our mails bounced."""
    target = safe(to, 320) if to else "the customer"
    about = f" ({safe(subject, 200)})" if subject else ""
    return (
        f":warning: A reply to {target}{about} could not be delivered. "
        "Check the address, or reach the customer another way."
    )


def reply_sent_text(number: int, to: str) -> str:
    return f":white_check_mark: Your reply on {ref(number)} is on its way to {safe(to, 320)}."


@dataclass(frozen=True)
class MailLine:
    """One stored mail in the admin listing."""

    id: int
    status: str
    received: str
    sender: str | None
    subject: str | None
    outcome: str | None


def build_mail_list(lines: list[MailLine], *, heading: str) -> list[Block]:
    """`/docket mail`: quarantined and held mail with the reason, for admins."""
    blocks: list[Block] = [section(f"*{safe(heading, 200)}*")]
    if not lines:
        blocks.append(section("Nothing waiting: every mail was processed."))
        return blocks
    for line in lines[:40]:
        sender = safe(line.sender, 200) if line.sender else "_unknown sender_"
        subject = safe(line.subject, 200) if line.subject else "_no subject_"
        blocks.append(
            section(
                f"*Mail {line.id}* · {line.status} · {line.received}\n{sender} · {subject}\n"
                f"{safe(line.outcome or '', 500)}"
            )
        )
    blocks.append(context("Release a quarantined mail with `/docket mail retry <id>`."))
    return blocks
