"""Outbox rows for one ticket's Slack side effects: announce the card, update it, DM the
assignee, answer in a source message's thread.

Each is written in the caller's transaction (with the change that causes it) and ordered by
the ticket (`ordering_key`), so the worker posts the card before it updates it. The blocks
come from the caller (the Block Kit builders live in handlers/), keeping this layer free of
Slack libraries. Idempotency keys include the ticket version, so a retried change cannot
queue its notification twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.outbox import SLACK, enqueue, slack_call
from models.tables import OutboxMessage, Ticket

Blocks = list[dict[str, Any]]


def ordering_key(ticket_id: int) -> str:
    """Everything about one ticket is delivered in the order it was queued."""
    return f"ticket:{ticket_id}"


def announce_key(ticket_id: int) -> str:
    """The idempotency key of a ticket's first card post."""
    return f"ticket:{ticket_id}:announce"


def _id(ticket: Ticket) -> int:
    assert ticket.id is not None, "flush the ticket first"
    return ticket.id


async def announce_card(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    channel: str,
    text: str,
    blocks: Blocks,
    at: datetime,
) -> int | None:
    """Post the ticket's card in `channel`; the worker stores its channel and ts on the ticket."""
    ticket_id = _id(ticket)
    payload = slack_call(
        "chat.postMessage",
        channel=channel,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    payload["store_card_for_ticket"] = ticket_id
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        kind=SLACK,
        key=announce_key(ticket_id),
        payload=payload,
        at=at,
        ordering_key=ordering_key(ticket_id),
    )


async def has_card(*, session: AsyncSession, ticket: Ticket) -> bool:
    """Whether the ticket has a card to update: posted already, or its post is queued."""
    if ticket.card_ts:
        return True
    stmt = select(OutboxMessage.id).where(
        OutboxMessage.idempotency_key == announce_key(_id(ticket))
    )
    return (await session.exec(stmt)).first() is not None


async def update_card(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    text: str,
    blocks: Blocks,
    at: datetime,
) -> int | None:
    """Replace the card with the ticket's state at its current version (chat.update in place).

    Nothing is queued when the ticket has no card (no channel to announce it in).
    """
    if not await has_card(session=session, ticket=ticket):
        return None
    ticket_id = _id(ticket)
    payload = slack_call("chat.update", text=text, blocks=blocks)
    payload["card_of_ticket"] = ticket_id
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        kind=SLACK,
        key=f"ticket:{ticket_id}:card:v{ticket.version}",
        payload=payload,
        at=at,
        ordering_key=ordering_key(ticket_id),
    )


async def dm_card(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    slack_user_id: str,
    text: str,
    blocks: Blocks,
    at: datetime,
) -> int | None:
    """Send the card to a person's DM with Docket (e.g. the new assignee)."""
    ticket_id = _id(ticket)
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        kind=SLACK,
        key=f"ticket:{ticket_id}:v{ticket.version}:dm:{slack_user_id}",
        payload=slack_call(
            "chat.postMessage",
            channel=slack_user_id,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        ),
        at=at,
        ordering_key=ordering_key(ticket_id),
    )


async def reply_in_thread(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    channel: str,
    thread_ts: str,
    text: str,
    at: datetime,
    purpose: str = "source",
) -> int | None:
    """Answer in a message's thread (e.g. "Ticket #12 created" under the message it came from).

    `text` must already be escaped; one reply per ticket and `purpose`.
    """
    ticket_id = _id(ticket)
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        kind=SLACK,
        key=f"ticket:{ticket_id}:thread:{purpose}",
        payload=slack_call(
            "chat.postMessage", channel=channel, thread_ts=thread_ts, text=text, unfurl_links=False
        ),
        at=at,
        ordering_key=ordering_key(ticket_id),
    )
