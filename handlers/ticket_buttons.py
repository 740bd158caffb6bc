"""The ticket card's buttons: assign to me, status, close, edit and log time.

Each acks first, re-checks that the person may update tickets, applies the change with
retries and queues the card update (and notifications) in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import escape, id_value
from handlers.blocks.tickets import (
    build_ticket_card,
    build_ticket_modal,
    card_text,
    parse_status_value,
    ref,
)
from handlers.home import refresh_homes
from handlers.ids import Action
from handlers.listeners import Click, Listener, on_click
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

T = TypeVar("T")


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


def _card_button(
    doing: str,
    parse: Callable[[dict[str, Any]], T | None],
    work: Callable[[Click, T, Member], Awaitable[None]],
) -> Listener:
    """A card button's listener: read the clicked action, then run `work` for the person who
    clicked if they may update tickets (an unreadable action is ignored)."""

    async def run(click: Click) -> None:
        target = parse(click.action)
        if target is None:
            return
        await _as_agent(
            click.services,
            click.body,
            click.respond,
            click.client,
            doing=doing,
            work=lambda actor: work(click, target, actor),
        )

    return on_click(run)


@dataclass(frozen=True)
class _Move:
    """A button's small change, and what to say when the ticket is that way already."""

    ticket_id: int
    update: Callable[[Member], TicketUpdate]
    unchanged: Callable[[Ticket], str]


def _same_move(
    update: Callable[[Member], TicketUpdate], unchanged: Callable[[Ticket], str]
) -> Callable[[dict[str, Any]], _Move | None]:
    """A button whose value is the ticket id and whose change is always the same."""

    def move_of(action: dict[str, Any]) -> _Move | None:
        ticket_id = id_value(action)
        return None if ticket_id is None else _Move(ticket_id, update, unchanged)

    return move_of


def _status_move(action: dict[str, Any]) -> _Move | None:
    parsed = parse_status_value(str((action.get("selected_option") or {}).get("value") or ""))
    if parsed is None:
        return None
    ticket_id, status = parsed
    return _Move(
        ticket_id,
        update=lambda _me: TicketUpdate(status=status),
        unchanged=lambda t: f"{ref(t.number)} is already {status_label(t.status).lower()}.",
    )


async def _make_move(click: Click, move: _Move, actor: Member) -> None:
    respond = click.respond
    try:
        changed, notified = await change_ticket(
            click.services,
            ticket_id=move.ticket_id,
            actor=actor,
            delta=lambda _t: move.update(actor),
        )
    except LifecycleError as exc:
        # The target status comes from the payload: escape it like any typed text.
        await tell(respond, f":no_entry: {escape(str(exc))}")
        return
    except TicketConflict as exc:
        await tell(respond, f"Ticket #{exc.number} is changing fast; please try again.")
        return
    if not changed.changed:
        await tell(respond, move.unchanged(changed.ticket))
        return
    await _refresh_clicked(click.body, respond, notified.card, click.services.now())
    await refresh_homes(click.services, notified.homes | {actor.slack_user_id})


async def _open_edit_form(click: Click, ticket_id: int, _me: Member) -> None:
    """The edit form carries the ticket's version to detect later changes."""
    form = await edit_form(click.services, ticket_id)
    await click.client.views_open(
        trigger_id=click.body["trigger_id"], view=build_ticket_modal(form)
    )


async def _open_log_time(click: Click, ticket_id: int, _me: Member) -> None:
    await open_log_time_modal(click.client, click.body["trigger_id"], click.services, ticket_id)


# The card's (or Home's) "Assign to me" button.
handle_assign_to_me = _card_button(
    "assigning a ticket",
    _same_move(
        lambda me: TicketUpdate(assignee_id=me.id),
        lambda t: f"{ref(t.number)} is already yours.",
    ),
    _make_move,
)
# The card's status select; moves outside the lifecycle are refused ephemerally.
handle_status = _card_button("changing a ticket's status", _status_move, _make_move)
# The card's "Close" button (behind a confirmation).
handle_close = _card_button(
    "closing a ticket",
    _same_move(
        lambda _me: TicketUpdate(status=TicketStatus.CLOSED.value),
        lambda t: f"{ref(t.number)} is already closed.",
    ),
    _make_move,
)
# The card's "Edit": the ticket form, filled in.
handle_edit = _card_button("opening the edit form", id_value, _open_edit_form)
# The card's "Log time": the time-logging modal, for this ticket.
handle_log_time = _card_button("opening the log-time modal", id_value, _open_log_time)


def register(app: AsyncApp) -> None:
    """Wire the card's buttons (and "I'll take it" on an unassigned customer reply)."""
    app.action(Action.ASSIGN_TO_ME.value)(handle_assign_to_me)
    # "I'll take it" on an unassigned customer reply is the same move as Assign to me.
    app.action(Action.TAKE_TICKET.value)(handle_assign_to_me)
    app.action(Action.STATUS.value)(handle_status)
    app.action(Action.EDIT.value)(handle_edit)
    app.action(Action.LOG_TIME.value)(handle_log_time)
    app.action(Action.CLOSE.value)(handle_close)
