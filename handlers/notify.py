"""The entry point mail and customer-channel processing call after writing a customer reply.

    async with services.transaction() as session:
        event = ...  # the CUSTOMER_REPLY TicketEvent, flushed (it needs its id)
        await queue_customer_reply_notifications(
            session=session, services=services, ticket=ticket, event=event, text=new_text, at=at
        )

Everything is queued in the caller's transaction, so the reply and its notifications commit
together; calling it again for the same event queues nothing new.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.notify import RENDERERS
from models.notify import ReplyPlan, notify_customer_reply
from models.tables import Ticket, TicketEvent


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

    `text` is the new text only (quoted history already stripped). Returns the plan, which
    says who was told and whether the reply was folded into a digest.
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
