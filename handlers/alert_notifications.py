"""What monitoring alerts tell people, as outbox rows written in the processing transaction.

The alert worker (jobs/alerts.py) calls these hooks (models.alerts.AlertHooks): an alert
ticket's card goes to the triage channel, its refreshes (occurrences, cleared) fold into one
waiting chat.update, a rising severity is told to the assignee or the card's thread, and a
cleared alert on a ticket someone works on is told to its assignee.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.alerts import (
    alert_card_text,
    build_alert_card,
    cleared_text,
    severity_rose_text,
)
from handlers.blocks.common import section
from handlers.ticket_notifications import announce_card, has_card, post_in_card_thread
from models.alerts import AlertInfo, card_refresh_prefix, waiting_card_refresh
from models.notify import ordering_key
from models.outbox import enqueue, replace_pending_payload, slack_call
from models.tables import Member, Ticket
from models.tickets import load_card
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

# Card refreshes wait this long so a burst of occurrences becomes one chat.update.
CARD_REFRESH_DELAY = timedelta(seconds=2)


class SlackAlertHooks:
    """Alert side effects in Slack: the card in triage, its refreshes, and DMs."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def opened(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        ws = await get_workspace(session=session, workspace_id=ticket.workspace_id)
        channel = ws.triage_channel
        if not channel:
            logger.warning("alert ticket %s has no triage channel to be announced in", ticket.id)
            return
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        await announce_card(
            session=session,
            workspace_id=ticket.workspace_id,
            ticket=ticket,
            channel=channel,
            text=alert_card_text(card, info),
            blocks=build_alert_card(card, info, now=at),
            at=at,
        )

    async def changed(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        """Queue the card's refresh, folding it into one still waiting."""
        assert ticket.id is not None
        if not await has_card(session=session, ticket=ticket):
            return
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        payload = replace(
            slack_call(
                "chat.update",
                text=alert_card_text(card, info),
                blocks=build_alert_card(card, info, now=at),
            ),
            updates_card_of=ticket.id,
        )
        waiting = await waiting_card_refresh(
            session=session, workspace_id=ticket.workspace_id, ticket_id=ticket.id
        )
        if waiting is not None and await replace_pending_payload(
            session=session, row_id=waiting, payload=payload, not_before_after=at
        ):
            return
        await enqueue(
            session=session,
            workspace_id=ticket.workspace_id,
            key=f"{card_refresh_prefix(ticket.id)}{at.isoformat()}:{secrets.token_hex(4)}",
            payload=payload,
            at=at,
            ordering_key=ordering_key(ticket.id),
            not_before=at + CARD_REFRESH_DELAY,
        )

    async def severity_rose(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        text = severity_rose_text(card, info)
        if card.assignee_slack_id:
            key = f"rose:v{ticket.version}"
            await self._dm(session, ticket, card.assignee_slack_id, text, key, at)
            return
        await post_in_card_thread(
            session, self.services, ticket, text, key=f"alert-rose:v{ticket.version}"
        )

    async def cleared(
        self,
        *,
        session: AsyncSession,
        ticket: Ticket,
        info: AlertInfo,
        assignee: Member,
        at: datetime,
    ) -> None:
        if not assignee.slack_user_id:
            return
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        text = cleared_text(card, info)
        key = f"cleared:{at.isoformat()}"
        await self._dm(session, ticket, assignee.slack_user_id, text, key, at)

    async def _dm(
        self, session: AsyncSession, ticket: Ticket, user: str, text: str, key: str, at: datetime
    ) -> None:
        # No ticket ordering key: a DM never waits behind the card's delayed refresh.
        await enqueue(
            session=session,
            workspace_id=ticket.workspace_id,
            key=f"ticket:{ticket.id}:alert-dm:{user}:{key}",
            payload=slack_call(
                "chat.postMessage",
                channel=user,
                text=text,
                blocks=[section(text)],
                unfurl_links=False,
            ),
            at=at,
        )
