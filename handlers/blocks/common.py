"""Shared Block Kit pieces: safe text, cutting at Slack's limits, the help text."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
MODAL_TITLE_LIMIT = 24
CUT_MARKER = "… (cut)"


def escape(text: str | None) -> str:
    """Escape what someone typed so Slack shows it literally.

    `<!channel>`, `<@U123>` and `<http://evil|bank>` become plain text: no pings, no forged links.
    """
    if not text:
        return ""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int, marker: str = CUT_MARKER) -> str:
    """Shorten text to `limit` characters with a clear marker at the end."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))].rstrip() + marker


def safe(text: str | None, limit: int = SECTION_LIMIT) -> str:
    """Escape, then cut (escaping first so the cut never splits an entity's meaning)."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    cut_text = escaped[: max(0, limit - len(CUT_MARKER))]
    # Never leave half an entity such as "&am" at the cut.
    amp = cut_text.rfind("&")
    if amp != -1 and ";" not in cut_text[amp:]:
        cut_text = cut_text[:amp]
    return cut_text.rstrip() + CUT_MARKER


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, HEADER_LIMIT)}}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> dict[str, Any]:
    btn: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": cut(text, BUTTON_LIMIT)},
        "action_id": action_id,
    }
    if value:
        btn["value"] = value
    if style:
        btn["style"] = style
    return btn


def form_values(view: dict[str, Any]) -> dict[str, Any]:
    """A submitted modal's values, by block and action id."""
    return ((view.get("state") or {}).get("values")) or {}


def id_value(action: dict[str, Any]) -> int | None:
    """The id a button carries as its value (digits only), or None."""
    value = str(action.get("value") or "")
    return int(value) if value.isdigit() else None


def plain(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit)}


HELP_TEXT = (
    "*Docket* keeps your helpdesk and its profitability in Slack.\n"
    "*Tickets*\n"
    "• `/ticket` opens the new-ticket form; `/ticket Printer jams` creates one at once\n"
    "• `/ticket 123` shows ticket 123; "
    "`/ticket list [mine|open|waiting|overdue|due-today|<customer>]`\n"
    "• `/ticket reply 123 <text>` answers the customer by email\n"
    "• Right-click a message → *Create ticket* turns it into a ticket\n"
    "• Replies in a ticket card's thread become internal notes\n"
    "*Time*\n"
    "• `/time 1h30 #123 fixed the VPN` (also `90m`, `1.5h`, `1:30`, `yesterday`, `mon`)\n"
    "*Profitability* (managers)\n"
    "• `/profit [customer] [week|month|2025-W23|2025-06]`, `/profit export`\n"
    "*Admin*\n"
    "• `/docket settings`, `/docket members`, `/docket outbox`, `/docket mail`\n"
    "• `/docket customers`, `contacts`, `contracts`, `rates`, `charges`, `calculator`"
)


def build_help() -> list[Block]:
    return [section(HELP_TEXT)]
