"""`/ticket <title>`: quick create, one inline or many stored requests in one transaction.

The listener in `handlers.ticket_command` creates one ticket; the intake worker hands a backlog of
stored quick creates to `run_stored_quick_creates`, which creates them all with the same
steps in one transaction (each ticket's card queued, each stored request marked done at its
commit) and then answers every person through their `response_url` over one HTTP session.
Either way the same `create_quick_tickets` does the work, so both give the same tickets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.services import Services
from handlers.blocks.common import context
from handlers.blocks.tickets import build_ticket_card, card_text
from handlers.people import resolve_members
from handlers.ticket_notifications import announce_tickets
from handlers.ticket_text import parse_ticket_text, split_title
from models.tables import Member
from models.tickets import (
    TicketCard,
    TicketCreate,
    TicketInputError,
    check_new_ticket,
    create_tickets,
    customer_by_channel,
    default_contract_id,
    workspace_today,
)

logger = logging.getLogger(__name__)

# Answers sent at once through response_url after a batch commits, and how long each may take.
ANSWER_CONCURRENCY = 16
ANSWER_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class QuickCreate:
    """One `/ticket <title>`: who asked, where, and the text after the command."""

    user_id: str
    user_name: str
    channel_id: str
    title: str
    response_url: str | None = None

    @classmethod
    def of_command(cls, command: dict[str, Any], title: str) -> QuickCreate:
        return cls(
            user_id=str(command.get("user_id") or ""),
            user_name=str(command.get("user_name") or ""),
            channel_id=str(command.get("channel_id") or ""),
            title=title,
            response_url=str(command.get("response_url") or "") or None,
        )


@dataclass(frozen=True)
class Created:
    """A quick-created ticket's card and where the card was posted."""

    card: TicketCard
    channel: str | None


async def create_quick_tickets(
    services: Services, client: AsyncWebClient, items: Sequence[QuickCreate]
) -> list[Created]:
    """Create one ticket per item in one transaction, each with its card queued.

    Members are resolved first (a new member is saved in its own transaction); any failure
    undoes every ticket of the call.
    """
    actors = await resolve_members(
        services, {item.user_id: item.user_name for item in items}, client=client
    )
    workspace_id = services.workspace_id
    async with services.transaction() as session:
        today = await workspace_today(session=session, workspace_id=workspace_id, at=services.now())
        customers: dict[str, int | None] = {}
        contracts: dict[int, int | None] = {}
        new: list[tuple[TicketCreate, Member | None]] = []
        for item in items:
            if item.channel_id not in customers:
                customer = await customer_by_channel(
                    session=session, workspace_id=workspace_id, channel=item.channel_id
                )
                customers[item.channel_id] = customer.id if customer is not None else None
            customer_id = customers[item.channel_id]
            if customer_id is not None and customer_id not in contracts:
                contracts[customer_id] = await default_contract_id(
                    session=session, workspace_id=workspace_id, customer_id=customer_id, on=today
                )
            title, description = split_title(item.title)
            data = TicketCreate(
                title=title,
                description=description,
                customer_id=customer_id,
                contract_id=contracts[customer_id] if customer_id is not None else None,
            )
            new.append((data, actors[item.user_id]))
        tickets = await create_tickets(
            session=session, workspace_id=workspace_id, items=new, at=services.now()
        )
        announced = await announce_tickets(
            session,
            services,
            [(ticket, item.user_id) for ticket, item in zip(tickets, items, strict=True)],
        )
    return [Created(card, channel) for card, channel in announced]


def quick_create_answer(services: Services, created: Created) -> dict[str, Any]:
    """The ephemeral answer: the new card, where it was posted, and how to add the rest."""
    channel = created.channel
    where = f"Posted in <#{channel}>." if channel and channel[0] in "CG" else "Created."
    return {
        "blocks": [
            *build_ticket_card(created.card, now=services.now()),
            context(f"{where} *Edit* to add the customer, contract, priority or assignee."),
        ],
        "text": card_text(created.card),
        "response_type": "ephemeral",
    }


def stored_quick_create(body: str) -> QuickCreate:
    """A stored `/ticket <title>` request's fields (its body as Slack signed it)."""
    command = dict(parse_qsl(body, keep_blank_values=True))
    return QuickCreate.of_command(command, parse_ticket_text(command.get("text")).title)


def joins_batch(body: str) -> bool:
    """Whether a stored quick create passes the field checks a lone one must pass (one that
    does not runs on its own and its person is told why)."""
    title, description = split_title(stored_quick_create(body).title)
    try:
        check_new_ticket(TicketCreate(title=title, description=description))
    except TicketInputError:
        return False
    return True


async def run_stored_quick_creates(
    services: Services, bodies: Sequence[str]
) -> Callable[[], Awaitable[None]]:
    """Create the tickets of many stored quick creates at once; returns what answers them.

    Raises when the transaction fails (nothing was created; the caller runs each request
    on its own). The answers go once the tickets are committed; one that cannot be
    delivered is logged: the ticket exists.
    """
    items = [stored_quick_create(body) for body in bodies]
    started = time.perf_counter()
    created = await create_quick_tickets(services, services.slack, items)
    logger.info(
        "created %d stored quick creates in %.0f ms",
        len(items),
        1000 * (time.perf_counter() - started),
    )
    return partial(answer_quick_creates, services, list(zip(items, created, strict=True)))


async def answer_quick_creates(
    services: Services, done: Sequence[tuple[QuickCreate, Created]]
) -> None:
    """Answer each person through their response_url, over one HTTP session."""
    gate = asyncio.Semaphore(ANSWER_CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def answer(item: QuickCreate, result: Created) -> None:
            if not item.response_url:
                return
            async with gate:
                try:
                    # The answer replaces the "Creating ticket…" ephemeral of the ack.
                    await AsyncWebhookClient(item.response_url, session=http).send(
                        **quick_create_answer(services, result), replace_original=True
                    )
                except Exception:
                    logger.exception("answering a quick create through response_url failed")

        await asyncio.gather(*(answer(i, r) for i, r in done))
