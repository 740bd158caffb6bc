"""The ticket card's buttons: assign to me, status, close, edit and log time.

Each acks first, re-checks that the person may update tickets, applies the change with
retries and queues the card update (and notifications) in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import escape
from handlers.blocks.tickets import (
    build_ticket_card,
    build_ticket_modal,
    card_text,
    parse_status_value,
    ref,
)
from handlers.home import refresh_homes
from handlers.ids import Action
from handlers.people import acting_agent, user_of
from handlers.respond import SORRY, tell
from handlers.ticket_form import edit_form
from handlers.ticket_notifications import Notified, notify_change
from handlers.time_cmd import open_log_time_modal
from models.lifecycle import LifecycleError
from models.lifecycle import label as status_label
from models.tables import Member, Ticket, TicketStatus
from models.tickets import (
    TicketCard,
    TicketChange,
    TicketConflict,
    TicketNotFound,
    TicketUpdate,
    update_with_retry,
)

logger = logging.getLogger(__name__)


def _is_card_copy(message: dict[str, Any]) -> bool:
    """Whether a clicked message is a ticket card (only cards carry the Edit button)."""
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == Action.EDIT.value:
                return True
    return False


async def _refresh_clicked(
    body: dict[str, Any], respond: AsyncRespond | None, card: TicketCard | None, now: datetime
) -> None:
    """A copy of the card other than the main one (ephemeral, DM) is replaced in place."""
    container = body.get("container") or {}
    if respond is None or card is None or container.get("type") != "message":
        return
    if not container.get("is_ephemeral") and container.get("message_ts") == card.card_ts:
        return
    if not _is_card_copy(body.get("message") or {}):
        # A DM or thread notice with ticket buttons keeps its own text (the customer's reply).
        return
    try:
        await respond(
            blocks=build_ticket_card(card, now=now),
            text=card_text(card),
            replace_original=True,
        )
    except Exception:
        logger.exception("refreshing a copy of a ticket card failed")


async def change_ticket(
    services: Services,
    *,
    ticket_id: int,
    actor: Member,
    delta: Callable[[Ticket], TicketUpdate],
) -> tuple[TicketChange, Notified]:
    """Apply a button's small change with retries; the card update is queued with it."""
    notified = Notified()

    async def after(session: AsyncSession, change: TicketChange) -> None:
        await notify_change(session, services, change, actor, notified)

    change = await update_with_retry(
        transaction=services.transaction,
        workspace_id=services.workspace_id,
        ticket_id=ticket_id,
        delta=delta,
        actor=actor,
        at=services.now(),
        after=after,
    )
    return change, notified


async def _as_agent(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond | None,
    client: AsyncWebClient,
    *,
    doing: str,
    work: Callable[[Member], Awaitable[None]],
) -> None:
    """Run a button's work for the person who clicked, if they may update tickets; a failure
    is logged and the person told."""
    try:
        actor = await acting_agent(services, user_of(body)[0], client, respond)
        if actor is not None:
            await work(actor)
    except TicketNotFound:
        await tell(respond, "That ticket no longer exists.")
    except Exception:
        logger.exception("%s failed", doing)
        await tell(respond, SORRY)


async def _button_change(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond | None,
    client: AsyncWebClient,
    *,
    ticket_id: int,
    update: Callable[[Member], TicketUpdate],
    unchanged: Callable[[Ticket], str],
    doing: str,
) -> None:
    """A button's small change by the person who clicked (if they may update tickets)."""

    async def change(actor: Member) -> None:
        try:
            changed, notified = await change_ticket(
                services, ticket_id=ticket_id, actor=actor, delta=lambda _t: update(actor)
            )
        except LifecycleError as exc:
            # The target status comes from the payload: escape it like any typed text.
            await tell(respond, f":no_entry: {escape(str(exc))}")
            return
        except TicketConflict as exc:
            await tell(respond, f"Ticket #{exc.number} is changing fast; please try again.")
            return
        if not changed.changed:
            await tell(respond, unchanged(changed.ticket))
            return
        await _refresh_clicked(body, respond, notified.card, services.now())
        await refresh_homes(services, notified.homes | {actor.slack_user_id})

    await _as_agent(services, body, respond, client, doing=doing, work=change)


def _ticket_id(action: dict[str, Any]) -> int | None:
    value = str(action.get("value") or "")
    return int(value) if value.isdigit() else None


async def handle_assign_to_me(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's (or Home's) "Assign to me" button."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    await _button_change(
        services,
        body,
        respond,
        client,
        ticket_id=ticket_id,
        update=lambda me: TicketUpdate(assignee_id=me.id),
        unchanged=lambda t: f"{ref(t.number)} is already yours.",
        doing="assigning a ticket",
    )


async def handle_status(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's status select; moves outside the lifecycle are refused ephemerally."""
    await ack()
    parsed = parse_status_value(str((action.get("selected_option") or {}).get("value") or ""))
    if parsed is None:
        return
    ticket_id, status = parsed
    await _button_change(
        services,
        body,
        respond,
        client,
        ticket_id=ticket_id,
        update=lambda _me: TicketUpdate(status=status),
        unchanged=lambda t: f"{ref(t.number)} is already {status_label(t.status).lower()}.",
        doing="changing a ticket's status",
    )


async def handle_close(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's "Close" button (behind a confirmation)."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return
    await _button_change(
        services,
        body,
        respond,
        client,
        ticket_id=ticket_id,
        update=lambda _me: TicketUpdate(status=TicketStatus.CLOSED.value),
        unchanged=lambda t: f"{ref(t.number)} is already closed.",
        doing="closing a ticket",
    )


async def handle_edit(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Open the edit form; it carries the ticket's version to detect later changes."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return

    async def open_form(_me: Member) -> None:
        form = await edit_form(services, ticket_id)
        await client.views_open(trigger_id=body["trigger_id"], view=build_ticket_modal(form))

    await _as_agent(services, body, respond, client, doing="opening the edit form", work=open_form)


async def handle_log_time(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """The card's "Log time": the time-logging modal, for this ticket."""
    await ack()
    ticket_id = _ticket_id(action)
    if ticket_id is None:
        return

    async def open_modal(_me: Member) -> None:
        await open_log_time_modal(client, body["trigger_id"], services, ticket_id)

    await _as_agent(
        services, body, respond, client, doing="opening the log-time modal", work=open_modal
    )


def register(app: AsyncApp) -> None:
    """Wire the card's buttons (and "I'll take it" on an unassigned customer reply)."""
    app.action(Action.ASSIGN_TO_ME.value)(handle_assign_to_me)
    # "I'll take it" on an unassigned customer reply is the same move as Assign to me.
    app.action(Action.TAKE_TICKET.value)(handle_assign_to_me)
    app.action(Action.STATUS.value)(handle_status)
    app.action(Action.EDIT.value)(handle_edit)
    app.action(Action.LOG_TIME.value)(handle_log_time)
    app.action(Action.CLOSE.value)(handle_close)
