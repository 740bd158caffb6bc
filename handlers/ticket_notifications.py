"""Everything a ticket change tells people, as outbox rows written in the change's transaction.

One home for a ticket's notifications, whatever caused the change (a `/ticket` form or button,
a customer's mail or Slack message, an agent's reply):

- the card: posted when the ticket opens (`announce_ticket`; where it goes is the routing rule
  in models/routing.py), updated in place after each change (`refresh_card`), and sent to a new
  assignee's DM;
- the card's thread: copies of replies and notices (`post_in_card_thread`);
- the customer-facing side, in the thread of the customer's channel message a ticket came from
  and nowhere else in their channel: the acknowledgement and the status notices ("taken by",
  "waiting on you", "resolved"), each switchable per customer (`queue_notice`,
  `queue_status_notices`; models/customer_channel.py has the model), and an agent's reply
  (`post_in_customer_thread`);
- a customer's reply: the assignee's DM (or digest), the thread copy and the triage post
  (`queue_customer_reply_notifications`; who hears what is models/notify.py's rule).

Rows carry typed payloads (models.outbox.SlackCall); the outbox worker (jobs/outbox.py)
delivers them, filling in a card's channel and ts at delivery and storing where a card landed.
Every row of a ticket shares its ordering key, so the card is posted before it is updated.
Idempotency keys include the ticket version or the event id, so a retried change or a
reprocessed message queues nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import section
from handlers.blocks.conversation import bounce_text, customer_thread_text
from handlers.blocks.customer import notice_text
from handlers.blocks.notify import RENDERERS
from handlers.blocks.tickets import assigned_text, build_ticket_card, card_text
from models.customer_channel import Notice, notice_enabled, source_message, status_notices
from models.inbound import InboundHooks
from models.notify import ReplyPlan, notify_customer_reply, ordering_key
from models.outbox import Queued, SlackCall, enqueue, enqueue_many, is_queued, slack_call
from models.people import member_by_id
from models.replies import sent_mail
from models.tables import Customer, Member, Ticket, TicketEvent
from models.tickets import (
    TicketCard,
    TicketChange,
    announce_channels,
    customer_by_id,
    load_card,
    load_cards,
)

Blocks = list[dict[str, Any]]
logger = logging.getLogger(__name__)


def announce_key(ticket_id: int) -> str:
    """The idempotency key of a ticket's first card post."""
    return f"ticket:{ticket_id}:announce"


def _id(ticket: Ticket) -> int:
    assert ticket.id is not None, "flush the ticket first"
    return ticket.id


async def _enqueue(
    session: AsyncSession, workspace_id: int, item: Queued, at: datetime
) -> int | None:
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        key=item.key,
        payload=item.payload,
        at=at,
        ordering_key=item.ordering_key,
    )


async def _queue(
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    key: str,
    payload: SlackCall,
    at: datetime,
) -> int | None:
    """One outbox row in the ticket's line (delivered in the order it was queued)."""
    return await enqueue(
        session=session,
        workspace_id=workspace_id,
        key=key,
        payload=payload,
        at=at,
        ordering_key=ordering_key(ticket_id),
    )


# -- the outbox rows -------------------------------------------------------------------------


def card_post(ticket: Ticket, channel: str, text: str, blocks: Blocks) -> Queued:
    """The outbox row posting a new ticket's card; the worker stores its channel and ts."""
    ticket_id = _id(ticket)
    payload = slack_call(
        "chat.postMessage",
        channel=channel,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    return Queued(
        announce_key(ticket_id), replace(payload, posts_card_of=ticket_id), ordering_key(ticket_id)
    )


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
    return await _enqueue(session, workspace_id, card_post(ticket, channel, text, blocks), at)


async def has_card(*, session: AsyncSession, ticket: Ticket) -> bool:
    """Whether the ticket has a card to update: posted already, or its post is queued."""
    if ticket.card_ts:
        return True
    return await is_queued(session=session, key=announce_key(_id(ticket)))


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
    return await _queue(
        session,
        workspace_id,
        ticket_id,
        f"ticket:{ticket_id}:card:v{ticket.version}",
        replace(slack_call("chat.update", text=text, blocks=blocks), updates_card_of=ticket_id),
        at,
    )


def card_dm(ticket: Ticket, slack_user_id: str, text: str, blocks: Blocks) -> Queued:
    """The outbox row sending the card to a person's DM with Docket (e.g. the new assignee)."""
    ticket_id = _id(ticket)
    return Queued(
        f"ticket:{ticket_id}:v{ticket.version}:dm:{slack_user_id}",
        slack_call(
            "chat.postMessage",
            channel=slack_user_id,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        ),
        ordering_key(ticket_id),
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
    return await _enqueue(session, workspace_id, card_dm(ticket, slack_user_id, text, blocks), at)


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
    return await _queue(
        session,
        workspace_id,
        ticket_id,
        f"ticket:{ticket_id}:thread:{purpose}",
        slack_call(
            "chat.postMessage", channel=channel, thread_ts=thread_ts, text=text, unfurl_links=False
        ),
        at,
    )


async def post_in_card_thread(
    session: AsyncSession, services: Services, ticket: Ticket, text: str, *, key: str
) -> int | None:
    """Queue a message in the ticket card's thread (filled in by the outbox at delivery)."""
    if not await has_card(session=session, ticket=ticket):
        return None
    ticket_id = _id(ticket)
    payload = slack_call("chat.postMessage", text=text, blocks=[section(text)], unfurl_links=False)
    return await _queue(
        session,
        services.workspace_id,
        ticket_id,
        f"ticket:{ticket_id}:{key}",
        replace(payload, in_thread_of=ticket_id),
        services.now(),
    )


async def post_in_customer_thread(
    session: AsyncSession,
    services: Services,
    *,
    ticket_id: int,
    event: TicketEvent,
    channel: str,
    thread_ts: str,
    at: datetime,
) -> int | None:
    """An agent's reply, posted in the customer's own Slack thread the ticket came from."""
    return await _queue(
        session,
        services.workspace_id,
        ticket_id,
        f"reply:{event.id}:customer-thread",
        slack_call(
            "chat.postMessage",
            channel=channel,
            thread_ts=thread_ts,
            text=customer_thread_text(event.body),
            unfurl_links=False,
        ),
        at,
    )


# -- a ticket change, told --------------------------------------------------------------------


async def announce_ticket(
    session: AsyncSession, services: Services, ticket: Ticket, *, creator_slack_id: str | None
) -> tuple[TicketCard, str | None]:
    """Queue a new ticket's card, in the caller's transaction, where the routing rule says
    (models.routing.card_channel); and the card to an assignee by DM."""
    (announced,) = await announce_tickets(session, services, [(ticket, creator_slack_id)])
    return announced


async def announce_tickets(
    session: AsyncSession, services: Services, tickets: Sequence[tuple[Ticket, str | None]]
) -> list[tuple[TicketCard, str | None]]:
    """`announce_ticket` for many new tickets (each with its creator), queued in one statement."""
    at = services.now()
    workspace_id = services.workspace_id
    cards = await load_cards(
        session=session, workspace_id=workspace_id, tickets=[ticket for ticket, _ in tickets]
    )
    channels = await announce_channels(session=session, workspace_id=workspace_id, tickets=tickets)
    queued: list[Queued] = []
    out: list[tuple[TicketCard, str | None]] = []
    for (ticket, creator_slack_id), card, channel in zip(tickets, cards, channels, strict=True):
        blocks = build_ticket_card(card, now=at)
        if channel:
            queued.append(card_post(ticket, channel, card_text(card), blocks))
        if card.assignee_slack_id and card.assignee_slack_id != creator_slack_id:
            queued.append(card_dm(ticket, card.assignee_slack_id, assigned_text(card), blocks))
        out.append((card, channel))
    await enqueue_many(session=session, workspace_id=workspace_id, items=queued, at=at)
    return out


@dataclass
class Notified:
    """What a change's notifications produced, for the answer and Home refreshes."""

    card: TicketCard | None = None
    homes: set[str | None] = field(default_factory=set)


async def notify_change(
    session: AsyncSession,
    services: Services,
    change: TicketChange,
    actor: Member,
    notified: Notified,
) -> None:
    """Queue the card update (and a DM to a new assignee) in the change's transaction."""
    at = services.now()
    card = await load_card(
        session=session, workspace_id=services.workspace_id, ticket=change.ticket
    )
    blocks = build_ticket_card(card, now=at)
    await update_card(
        session=session,
        workspace_id=services.workspace_id,
        ticket=change.ticket,
        text=card_text(card),
        blocks=blocks,
        at=at,
    )
    if change.assignee_changed and card.assignee_slack_id and card.assignee_id != actor.id:
        await dm_card(
            session=session,
            workspace_id=services.workspace_id,
            ticket=change.ticket,
            slack_user_id=card.assignee_slack_id,
            text=assigned_text(card),
            blocks=blocks,
            at=at,
        )
    await queue_status_notices(session, services, change, at=at)
    notified.card = card
    notified.homes = {card.assignee_slack_id}
    if change.assignee_changed and change.previous_assignee_id:
        previous = await member_by_id(
            session=session,
            workspace_id=services.workspace_id,
            member_id=change.previous_assignee_id,
        )
        notified.homes.add(previous.slack_user_id if previous else None)


async def refresh_card(
    session: AsyncSession, services: Services, ticket: Ticket, at: datetime
) -> None:
    """Queue the card's refresh after a change (nothing when the ticket has no card)."""
    card = await load_card(session=session, workspace_id=services.workspace_id, ticket=ticket)
    await update_card(
        session=session,
        workspace_id=services.workspace_id,
        ticket=ticket,
        text=card_text(card),
        blocks=build_ticket_card(card, now=at),
        at=at,
    )


async def queue_customer_reply_notifications(
    *,
    session: AsyncSession,
    services: Services,
    ticket: Ticket,
    event: TicketEvent,
    text: str,
    at: datetime,
) -> ReplyPlan:
    """Queue the DM (or digest), thread copy and triage post for a customer reply.

    `text` is the new text only (quoted history already stripped). Everything is queued in
    the caller's transaction, so the reply and its notifications commit together; calling it
    again for the same event queues nothing new. Returns the plan, which says who was told
    and whether the reply was folded into a digest.
    """
    settings = services.settings
    return await notify_customer_reply(
        session=session,
        workspace_id=ticket.workspace_id,
        ticket=ticket,
        event=event,
        text=text,
        at=at,
        fold_updates=settings.docket_fold_updates,
        fold_minutes=settings.docket_fold_minutes,
        render=RENDERERS,
    )


# -- the customer-facing side -----------------------------------------------------------------


async def queue_notice(
    session: AsyncSession,
    services: Services,
    ticket: Ticket,
    notice: Notice,
    *,
    at: datetime,
    name: str = "",
    customer: Customer | None = None,
) -> int | None:
    """Queue `notice` in the thread of the customer's channel message the ticket came from.

    Nothing when the ticket did not come from a customer's channel or the customer switched
    this notice off. One notice per ticket version and kind (safe to call twice).
    """
    if customer is None and ticket.customer_id is not None:
        customer = await customer_by_id(
            session=session, workspace_id=ticket.workspace_id, customer_id=ticket.customer_id
        )
    if customer is None or not notice_enabled(customer, notice):
        return None
    source = await source_message(session=session, ticket=ticket)
    if source is None or source.channel != customer.slack_channel:
        return None
    purpose = "source" if notice is Notice.ACK else f"v{ticket.version}:{notice.value}"
    return await reply_in_thread(
        session=session,
        workspace_id=services.workspace_id,
        ticket=ticket,
        channel=source.channel,
        thread_ts=source.ts,
        text=notice_text(notice, ticket.number, name=name),
        at=at,
        purpose=purpose,
    )


async def queue_status_notices(
    session: AsyncSession, services: Services, change: TicketChange, *, at: datetime
) -> None:
    """The customer-facing notices for a team member's change of a ticket (in its transaction)."""
    ticket = change.ticket
    if ticket.customer_id is None or not change.changed:
        return
    notices = status_notices(
        before_status=change.before.get("status"),
        after_status=ticket.status,
        assignee_changed=change.assignee_changed,
        has_assignee=ticket.assignee_id is not None,
    )
    if not notices:
        return
    assignee = (
        await member_by_id(
            session=session, workspace_id=ticket.workspace_id, member_id=ticket.assignee_id
        )
        if ticket.assignee_id
        else None
    )
    for notice in notices:
        await queue_notice(
            session, services, ticket, notice, at=at, name=assignee.name if assignee else ""
        )


async def customer_permalink(services: Services, channel: str, ts: str) -> str | None:
    """A link to the customer's message for the internal card; None when Slack cannot say."""
    try:
        response = await services.slack.chat_getPermalink(channel=channel, message_ts=ts)
    except SlackApiError as exc:
        logger.warning("chat.getPermalink failed: %s", exc.response.get("error"))
        return None
    except Exception:
        logger.exception("chat.getPermalink failed")
        return None
    link = response.get("permalink")
    return link if isinstance(link, str) else None


@dataclass
class SlackHooks(InboundHooks):
    """What a customer's message (mail or their Slack channel) causes in Slack, queued in the
    caller's transaction. bot/ hands these to the mail worker; the channel handlers use them
    too."""

    services: Services

    async def ticket_opened(self, *, session: AsyncSession, ticket: Ticket, at: datetime) -> None:
        await announce_ticket(session, self.services, ticket, creator_slack_id=None)

    async def ticket_changed(
        self, *, session: AsyncSession, change: TicketChange, at: datetime
    ) -> None:
        await refresh_card(session, self.services, change.ticket, at)

    async def customer_reply(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, text: str, at: datetime
    ) -> None:
        await queue_customer_reply_notifications(
            session=session, services=self.services, ticket=ticket, event=event, text=text, at=at
        )

    async def mail_notice(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, at: datetime
    ) -> None:
        sent = None
        bounced = (event.data or {}).get("bounced_message_id")
        if bounced:
            sent = await sent_mail(
                session=session, workspace_id=self.services.workspace_id, message_id=bounced
            )
        text = bounce_text(
            to=sent.envelope_to if sent else None, subject=sent.subject if sent else None
        )
        await post_in_card_thread(session, self.services, ticket, text, key=f"notice:{event.id}")
