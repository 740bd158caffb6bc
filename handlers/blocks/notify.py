"""Block Kit for customer-reply notifications: the assignee's DM, the thread copy, the triage
post and the digest of a burst. Pure builders: plain notices in, message dicts out.

Buttons carry the ticket id as their value (Reply, Log time, I'll take it); the Status menu
is the ticket card's, with values `"<ticket id>:<status>"` (handlers.blocks.tickets).
"""

from __future__ import annotations

from typing import Any

from handlers.blocks.common import (
    CUT_MARKER,
    SECTION_LIMIT,
    Block,
    button,
    context,
    cut,
    escape,
    plain,
    safe,
    section,
)
from handlers.blocks.tickets import UNVERIFIED_SENDER, status_select
from handlers.ids import Action, View
from models.inbound_store import FullMessage
from models.notify import ReplyNotice, ReplyRenderers

# Fallback text (notifications, screen readers) is short: the blocks carry the whole reply.
FALLBACK_LIMIT = 300
DIGEST_EXCERPT_LIMIT = 500


def _ticket_label(notice: ReplyNotice) -> str:
    return f"#{notice.ticket_number} {escape(cut(notice.title, 150))}"


def _quote(text: str, limit: int = SECTION_LIMIT - 100) -> str:
    """The customer's words as a block quote, escaped (no pings, no forged links)."""
    body = safe(text.strip(), limit) or "_(no text)_"
    lines: list[str] = []
    size = 0
    for line in body.splitlines():
        quoted = f"&gt; {line}" if line else "&gt;"
        # Quoting lengthens every line: stop at a whole line rather than mid-entity.
        if size + len(quoted) + 1 > limit:
            lines.append(CUT_MARKER)
            break
        lines.append(quoted)
        size += len(quoted) + 1
    return "\n".join(lines)


def _work_buttons(notice: ReplyNotice) -> Block:
    value = str(notice.ticket_id)
    return {
        "type": "actions",
        "elements": [
            button("Reply", Action.REPLY.value, value, style="primary"),
            button("Log time", Action.LOG_TIME.value, value),
            status_select(notice.ticket_id, notice.status),
        ],
    }


def _take_button(notice: ReplyNotice) -> Block:
    return {
        "type": "actions",
        "elements": [
            button("I'll take it", Action.TAKE_TICKET.value, str(notice.ticket_id), "primary")
        ],
    }


def _fallback(notice: ReplyNotice, lead: str) -> str:
    return cut(f"{lead}: {escape(notice.text.strip())}", FALLBACK_LIMIT)


def _unverified(notice: ReplyNotice) -> list[Block]:
    return [] if notice.verified else [context(UNVERIFIED_SENDER)]


def build_reply_dm(notice: ReplyNotice) -> dict[str, Any]:
    """The assignee's DM: who replied on which ticket, the new text only, and what to do.

    "Show full message" opens the whole message (quoted history included), so nothing the
    extraction left out is ever out of reach.
    """
    customer = escape(notice.customer)
    lead = f"{customer} replied on {_ticket_label(notice)}"
    if not notice.verified:
        lead = f"Unverified sender: {lead}"
    buttons = _work_buttons(notice)
    buttons["elements"].append(
        button("Show full message", Action.SHOW_FULL_MESSAGE.value, str(notice.event_id))
    )
    return {
        "text": _fallback(notice, lead),
        "blocks": [
            section(f"*{customer}* replied on *{_ticket_label(notice)}*"),
            *_unverified(notice),
            section(_quote(notice.text)),
            buttons,
        ],
    }


def build_reply_thread(notice: ReplyNotice, ask_to_take: bool) -> dict[str, Any]:
    """The copy in the ticket card's thread; an unassigned ticket asks who takes it."""
    customer = escape(notice.customer)
    blocks: list[Block] = [
        section(f"*{customer}* replied:"),
        *_unverified(notice),
        section(_quote(notice.text)),
    ]
    if ask_to_take:
        blocks.append(context("Nobody has this ticket yet. Who takes it?"))
        blocks.append(_take_button(notice))
    return {"text": _fallback(notice, f"{customer} replied"), "blocks": blocks}


def build_reply_triage(notice: ReplyNotice, reason: str) -> dict[str, Any]:
    """A post in the triage channel when the assignee cannot get the DM."""
    customer = escape(notice.customer)
    lead = f"{customer} replied on {_ticket_label(notice)}"
    return {
        "text": _fallback(notice, lead),
        "blocks": [
            section(f"*{customer}* replied on *{_ticket_label(notice)}*, but {escape(reason)}."),
            *_unverified(notice),
            section(_quote(notice.text)),
            context("Who takes it?"),
            _take_button(notice),
        ],
    }


def build_reply_digest(notice: ReplyNotice, count: int, minutes: int) -> dict[str, Any]:
    """One DM for a burst: "3 more replies from Acme on #12 in the last 10 minutes"."""
    replies = "reply" if count == 1 else "replies"
    summary = (
        f"{count} more {replies} from {escape(notice.customer)} on {_ticket_label(notice)} "
        f"in the last {minutes} minutes"
    )
    return {
        "text": cut(summary, FALLBACK_LIMIT),
        "blocks": [
            section(f"*{summary}*"),
            context("The latest:"),
            section(_quote(notice.text, DIGEST_EXCERPT_LIMIT)),
            context("Every reply is in the ticket's thread and history."),
            _work_buttons(notice),
        ],
    }


RENDERERS = ReplyRenderers(
    dm=build_reply_dm,
    thread=build_reply_thread,
    triage=build_reply_triage,
    digest=build_reply_digest,
)


# --------------------------------------------------------------------------- the whole message

MODAL_BLOCK_LIMIT = 100
FULL_TEXT_CHUNK = SECTION_LIMIT - 100  # room for a continuation mark


def _chunks(text: str, size: int) -> list[str]:
    """The text in pieces of at most `size` characters, cut at line ends where possible."""
    pieces: list[str] = []
    rest = text
    while rest:
        if len(rest) <= size:
            pieces.append(rest)
            break
        cut_at = rest.rfind("\n", size // 2, size)
        if cut_at <= 0:
            cut_at = size
        pieces.append(rest[:cut_at])
        rest = rest[cut_at:].lstrip("\n")
    return pieces


def build_full_message_modal(message: FullMessage) -> dict[str, Any]:
    """The whole customer message, as text, in a modal within Slack's limits.

    Sections carry plain text (no mrkdwn, so nothing the customer wrote can format, ping or
    link), 2,900 characters each; past the modal's 100 blocks the rest is left out with a
    note saying how much.
    """
    head = f"From *{escape(message.sender)}* on *#{message.ticket_number} {escape(message.title)}*"
    if message.subject:
        head += f"\nSubject: {escape(message.subject)}"
    blocks: list[Block] = [context(head)]
    text = message.text.replace("\r\n", "\n").strip() or "(no text)"
    pieces = _chunks(text, FULL_TEXT_CHUNK)
    room = MODAL_BLOCK_LIMIT - len(blocks) - 1  # one block kept for the note
    shown = pieces[:room]
    for piece in shown:
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": piece, "emoji": False}}
        )
    if len(shown) < len(pieces):
        left = len(text) - sum(len(p) for p in shown)
        blocks.append(
            context(
                f"The message is too long for Slack: its last {left:,} characters are not "
                "shown here."
            )
        )
    elif message.truncated:
        blocks.append(context("The mail was longer than Docket keeps: its end is not shown."))
    return {
        "type": "modal",
        "callback_id": View.FULL_MESSAGE.value,
        "title": plain("Full message", 24),
        "close": plain("Close", 24),
        "blocks": blocks,
    }
