"""Customer-facing messages in a customer's own channel, queued with the change that causes them.

Only the short texts of handlers/blocks/customer.py ever go to a customer's channel, and only
in the thread of the customer's message: the acknowledgement when a ticket opens, and "taken
by", "waiting on you" and "resolved" when a team member changes the ticket. Each can be
switched off per customer (Customer.notify_*). Internal notes, cards and reply copies stay in
the team's channel (models.customer_channel explains the model).
"""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackApiError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.customer import notice_text
from models import ticket_notify
from models.customer_channel import Notice, notice_enabled, source_message, status_notices
from models.tables import Customer, Member, Ticket
from models.tickets import TicketChange

logger = logging.getLogger(__name__)


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
        customer = await session.get(Customer, ticket.customer_id)
    if customer is None or not notice_enabled(customer, notice):
        return None
    source = await source_message(session=session, ticket=ticket)
    if source is None or source.channel != customer.slack_channel:
        return None
    purpose = "source" if notice is Notice.ACK else f"v{ticket.version}:{notice.value}"
    return await ticket_notify.reply_in_thread(
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
    assignee = await session.get(Member, ticket.assignee_id) if ticket.assignee_id else None
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
