"""`/ticket`: the command, showing one ticket and the paged lists (quick create itself is
`handlers.quick_create`, parsing the text `handlers.ticket_text`).

The listener acks at once, then reads or writes the database and answers with respond();
a new ticket's card is queued in the outbox in the same transaction as the ticket.
"""

from __future__ import annotations

import functools
import logging
import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.blocks.common import safe
from handlers.blocks.tickets import (
    build_ticket_card,
    build_ticket_help,
    build_ticket_list,
    card_text,
    parse_list_page_value,
)
from handlers.docket_cmd import split_subcommand
from handlers.ids import Action, Command
from handlers.listeners import Click, Slash, on_click, on_command
from handlers.people import acting_agent, user_of
from handlers.quick_create import QuickCreate, create_quick_tickets, quick_create_answer
from handlers.respond import SORRY, answering_failures, tell
from handlers.ticket_form import open_ticket_form
from handlers.ticket_text import parse_ticket_text
from models.tickets import (
    TicketInputError,
    TicketQuery,
    customer_by_name,
    list_tickets,
    load_card,
    ticket_by_number,
)

logger = logging.getLogger(__name__)

PER_PAGE = 10


async def _not_reply(command: dict[str, Any]) -> bool:
    # `/ticket reply ...` belongs to the customer conversation module.
    return split_subcommand(command.get("text"))[0] != "reply"


async def _ticket_command(slash: Slash) -> None:
    """`/ticket [text]`: ack at once, then do the work and answer with respond()."""
    command, respond, client, services = slash
    parsed = parse_ticket_text(command.get("text"))
    user_id = str(command.get("user_id") or "")
    try:
        if parsed.kind == "form":
            await open_ticket_form(
                services,
                client,
                command["trigger_id"],
                channel_id=command.get("channel_id"),
                user_id=user_id,
            )
        elif parsed.kind == "create":
            await _quick_create(services, client, respond, command, parsed.title)
        elif parsed.kind == "show" and parsed.number is not None:
            await _show(services, client, respond, user_id, parsed.number)
        elif parsed.kind == "list":
            await _list(services, client, respond, user_id, parsed.query, 1, replace=False)
        else:
            await respond(
                blocks=build_ticket_help(parsed.problem),
                text="How to use /ticket",
                response_type="ephemeral",
            )
    except TicketInputError as exc:
        # Too long, no title: the person can fix it, so say what the limit is.
        await tell(respond, f"Not created: {exc}")
    except Exception:
        logger.exception("/ticket %s failed", parsed.kind)
        await tell(respond, SORRY)


handle_ticket_command = on_command(_ticket_command, stored=True)


async def _quick_create(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    title: str,
) -> None:
    (created,) = await create_quick_tickets(
        services, client, [QuickCreate.of_command(command, title)]
    )
    await respond(**quick_create_answer(services, created))


async def _show(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    user_id: str,
    number: int,
) -> None:
    if await acting_agent(services, user_id, client, respond) is None:
        return
    async with services.read() as session:
        ticket = await ticket_by_number(
            session=session, workspace_id=services.workspace_id, number=number
        )
        card = (
            await load_card(session=session, workspace_id=services.workspace_id, ticket=ticket)
            if ticket
            else None
        )
    if card is None:
        await tell(respond, f"There is no ticket #{number}.")
        return
    await respond(
        blocks=build_ticket_card(card, now=services.now()),
        text=card_text(card),
        response_type="ephemeral",
    )


_LIST_KINDS: dict[str, tuple[Any, str]] = {
    "": ("active", "Active tickets"),
    "all": ("active", "Active tickets"),
    "active": ("active", "Active tickets"),
    "mine": ("mine", "My tickets"),
    "open": ("open", "Open tickets"),
    "waiting": ("waiting", "Waiting on the customer"),
    "unassigned": ("unassigned", "Unassigned tickets"),
    "overdue": ("overdue", "Overdue (an SLA target has passed)"),
    "due-today": ("due-today", "SLA targets due today"),
}


async def _list(
    services: Services,
    client: AsyncWebClient,
    respond: AsyncRespond,
    user_id: str,
    query_text: str,
    page: int,
    *,
    replace: bool,
) -> None:
    member = await acting_agent(services, user_id, client, respond)
    if member is None:
        return
    key = query_text.strip().lower()
    async with services.read() as session:
        if key in _LIST_KINDS:
            kind, heading = _LIST_KINDS[key]
            now = services.now()
            query = TicketQuery(
                kind=kind, member_id=member.id, at=now, until=end_of_day(now, services.timezone)
            )
        else:
            customer = await customer_by_name(
                session=session, workspace_id=services.workspace_id, name=query_text
            )
            if customer is None:
                await respond(
                    blocks=build_ticket_help(f"No customer matches “{query_text}”."),
                    text="No such customer",
                    response_type="ephemeral",
                    replace_original=False,
                )
                return
            query = TicketQuery(kind="customer", customer_id=customer.id)
            heading = f"Tickets of {safe(customer.name, 200)}"
        result = await list_tickets(
            session=session,
            workspace_id=services.workspace_id,
            query=query,
            page=page,
            per_page=PER_PAGE,
        )
    blocks = build_ticket_list(result, heading=heading, query=query_text, now=services.now())
    await respond(
        blocks=blocks,
        text=heading,
        response_type="ephemeral",
        replace_original=replace,
    )


async def _list_page(click: Click) -> None:
    """Previous/Next under a ticket list: replace the list with the requested page."""
    parsed = parse_list_page_value(click.action.get("value"))
    if parsed is None:
        return
    services, respond = click.services, click.respond
    user_id = user_of(click.body)[0]
    say = functools.partial(tell, respond)
    async with answering_failures(say, log=logger, doing="paging a ticket list", sorry=SORRY):
        await _list(services, click.client, respond, user_id, parsed[0], parsed[1], replace=True)


handle_list_page = on_click(_list_page)


def end_of_day(at: datetime, zone: ZoneInfo) -> datetime:
    """The next local midnight after `at`, in the workspace's zone."""
    day = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone)


def register(app: AsyncApp) -> None:
    """Wire `/ticket` (except `/ticket reply`) and the list's paging buttons."""
    app.command(Command.TICKET.value, matchers=[_not_reply])(handle_ticket_command)
    app.action(re.compile(rf"^{re.escape(Action.LIST_PAGE.value)}-(prev|next)$"))(handle_list_page)
