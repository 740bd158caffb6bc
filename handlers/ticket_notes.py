"""Replies in a ticket card's thread become internal notes; edits and deletions follow.

Processed from stored `message` events, so each step is safe to run twice.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.services import Services
from handlers.events import EventRouter
from handlers.people import resolve_member
from models.tables import Ticket
from models.tickets import add_note, customer_by_channel, delete_note, edit_note, ticket_by_card

logger = logging.getLogger(__name__)

NOTE_MAX = 20_000


async def _card_ticket(services: Services, channel: str, thread_ts: str) -> Ticket | None:
    """The ticket whose card starts this thread, unless the channel is a customer's own
    (thread replies there are customer conversation, handled elsewhere)."""
    async with services.read() as session:
        ticket = await ticket_by_card(
            session=session, workspace_id=services.workspace_id, channel=channel, ts=thread_ts
        )
        if ticket is None:
            return None
        if await customer_by_channel(
            session=session, workspace_id=services.workspace_id, channel=channel
        ):
            return None
    return ticket


def _from_bot(message: dict[str, Any], services: Services) -> bool:
    return bool(message.get("bot_id")) or message.get("user") == services.bot_user_id


async def _record_note(services: Services, message: dict[str, Any], channel: str) -> None:
    ts, thread_ts, user = message.get("ts"), message.get("thread_ts"), message.get("user")
    if not (isinstance(ts, str) and isinstance(thread_ts, str) and isinstance(user, str)):
        return
    if thread_ts == ts or _from_bot(message, services):
        return
    ticket = await _card_ticket(services, channel, thread_ts)
    if ticket is None or ticket.id is None:
        return
    author = await resolve_member(services, user)
    body = str(message.get("text") or "") or "(attachment)"
    async with services.transaction() as session:
        await add_note(
            session=session,
            workspace_id=services.workspace_id,
            ticket_id=ticket.id,
            actor=author,
            body=body[:NOTE_MAX],
            slack_ts=ts,
            at=services.now(),
        )


async def process_message(services: Services, body: dict[str, Any]) -> None:
    """Event processor for `message`: thread replies under a card become internal notes;
    edits change the note and deletions mark it deleted. Safe to run twice."""
    event = body.get("event") or {}
    channel = str(event.get("channel") or "")
    subtype = event.get("subtype")
    if not channel:
        return
    if subtype in (None, "thread_broadcast", "file_share"):
        await _record_note(services, event, channel)
    elif subtype == "message_changed":
        message = event.get("message") or {}
        ts = message.get("ts")
        if not isinstance(ts, str) or _from_bot(message, services):
            return
        async with services.transaction() as session:
            found = await edit_note(
                session=session,
                workspace_id=services.workspace_id,
                slack_ts=ts,
                body=str(message.get("text") or "")[:NOTE_MAX],
                at=services.now(),
            )
        if not found:
            # The edit overtook the original message: record the note as it is now.
            await _record_note(services, message, channel)
    elif subtype == "message_deleted":
        previous = event.get("previous_message") or {}
        ts = event.get("deleted_ts") or previous.get("ts")
        if isinstance(ts, str):
            async with services.transaction() as session:
                await delete_note(
                    session=session,
                    workspace_id=services.workspace_id,
                    slack_ts=ts,
                    at=services.now(),
                )


def register_events(router: EventRouter) -> None:
    """Thread replies under cards become notes (processed from stored events)."""
    router.on("message", process_message)
