"""Block Kit for a member's App Home. Pure: built from models.tickets.HomeData."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.blocks.common import Block, button, context, plain, safe, section
from handlers.blocks.tickets import list_line
from handlers.ids import Action
from models.tickets import HomeData, TicketPage
from models.timeparse import format_minutes


def _ticket_list(
    title: str, page: TicketPage, *, now: datetime, empty: str, take: bool
) -> list[Block]:
    blocks: list[Block] = [
        {"type": "header", "text": plain(f"{title} ({page.total})")},
    ]
    if not page.cards:
        blocks.append(context(empty))
    for card in page.cards:
        block = section(list_line(card, now=now))
        if take:
            # Unassigned tickets can be taken straight from Home.
            block["accessory"] = button("Assign to me", Action.ASSIGN_TO_ME, str(card.id))
        blocks.append(block)
    hidden = page.total - len(page.cards)
    if hidden > 0:
        blocks.append(context(f"…and {hidden} more. `/ticket list` shows them all."))
    blocks.append({"type": "divider"})
    return blocks


def build_home(data: HomeData, *, now: datetime) -> dict[str, Any]:
    """The Home tab: my open tickets, mine waiting on the customer, unassigned tickets, my
    hours this week, and buttons to create a ticket or log time. Someone not on the support
    team sees only the tickets they opened and a button to open one."""
    if data.outsider:
        return _outsider_home(data, now=now)
    blocks: list[Block] = [
        section(f"*Hi {safe(data.member_name, 100)}* — here is your Docket."),
        {
            "type": "actions",
            "block_id": "home-actions",
            "elements": [
                button("New ticket", Action.NEW_TICKET, "new", style="primary"),
                button("Log time", Action.HOME_LOG_TIME, "log"),
            ],
        },
        section(
            f":stopwatch: *My hours this week:* {format_minutes(data.minutes_this_week)} "
            f"(since Monday {data.week_start.isoformat()})"
        ),
        {"type": "divider"},
    ]
    blocks += _ticket_list(
        "My open tickets", data.mine, now=now, empty="Nothing assigned to you.", take=False
    )
    blocks += _ticket_list(
        "Waiting on the customer",
        data.waiting,
        now=now,
        empty="None of your tickets is waiting on a customer.",
        take=False,
    )
    blocks += _ticket_list(
        "Unassigned", data.unassigned, now=now, empty="Every ticket has an owner.", take=True
    )
    return {"type": "home", "blocks": blocks[:100]}


def _outsider_home(data: HomeData, *, now: datetime) -> dict[str, Any]:
    blocks: list[Block] = [
        section(f"*Hi {safe(data.member_name, 100)}* — here are the tickets you opened."),
        {
            "type": "actions",
            "block_id": "home-actions",
            "elements": [button("New ticket", Action.NEW_TICKET, "new", style="primary")],
        },
        {"type": "divider"},
    ]
    blocks += _ticket_list(
        "Your open tickets", data.mine, now=now, empty="No open tickets.", take=False
    )
    blocks += _ticket_list(
        "Waiting on you", data.waiting, now=now, empty="Nothing is waiting on you.", take=False
    )
    return {"type": "home", "blocks": blocks[:100]}


NOT_AVAILABLE = "Docket is not available to you here. Ask the support team if you need help."


def build_unavailable_home() -> dict[str, Any]:
    """The Home of someone Docket cannot identify: one plain sentence, nothing of the team's."""
    return {"type": "home", "blocks": [section(NOT_AVAILABLE)]}
