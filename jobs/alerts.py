"""Process stored alert deliveries: each once, in one transaction with its ticket changes.

A worker claims a few pending deliveries of its workspace (a lease, `FOR UPDATE SKIP LOCKED`
on PostgreSQL), then processes each in its own transaction that also marks it done, and only
while it still holds the lease: two replicas never process one delivery twice, and a crash
leaves the delivery pending for the next worker once the lease runs out.
"""

from __future__ import annotations

import logging
import uuid
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
from models import ticket_notify
from models.alerts import (
    AlertInfo,
    claim_deliveries,
    fail_delivery,
    process_claimed,
    queue_card_refresh,
)
from models.outbox import SLACK, enqueue, slack_call
from models.tables import Member, Ticket, Workspace
from models.tickets import load_card

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
        ws = await session.get(Workspace, ticket.workspace_id)
        channel = ws.triage_channel if ws else None
        if not channel:
            logger.warning("alert ticket %s has no triage channel to be announced in", ticket.id)
            return
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        await ticket_notify.announce_card(
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
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        await queue_card_refresh(
            session=session,
            ticket=ticket,
            text=alert_card_text(card, info),
            blocks=build_alert_card(card, info, now=at),
            at=at,
            not_before=at + CARD_REFRESH_DELAY,
        )

    async def severity_rose(
        self, *, session: AsyncSession, ticket: Ticket, info: AlertInfo, at: datetime
    ) -> None:
        card = await load_card(session=session, workspace_id=ticket.workspace_id, ticket=ticket)
        text = severity_rose_text(card, info)
        if card.assignee_slack_id:
            await self._dm(
                session, ticket, card.assignee_slack_id, text, f"rose:v{ticket.version}", at
            )
            return
        payload = slack_call(
            "chat.postMessage", text=text, blocks=[section(text)], unfurl_links=False
        )
        payload["thread_of_ticket"] = ticket.id
        await enqueue(
            session=session,
            workspace_id=ticket.workspace_id,
            kind=SLACK,
            key=f"ticket:{ticket.id}:alert-rose:v{ticket.version}",
            payload=payload,
            at=at,
            ordering_key=ticket_notify.ordering_key(ticket.id or 0),
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
        await self._dm(
            session, ticket, assignee.slack_user_id, text, f"cleared:{at.isoformat()}", at
        )

    async def _dm(
        self, session: AsyncSession, ticket: Ticket, user: str, text: str, key: str, at: datetime
    ) -> None:
        # No ticket ordering key: a DM never waits behind the card's delayed refresh.
        await enqueue(
            session=session,
            workspace_id=ticket.workspace_id,
            kind=SLACK,
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


class AlertWorker:
    """The intake worker for alerts: claim, process, mark done (or retry with back-off)."""

    def __init__(self, services: Services, *, batch: int = 10, owner: str | None = None) -> None:
        self.services = services
        self.batch = batch
        self.owner = owner or uuid.uuid4().hex[:16]
        self.hooks = SlackAlertHooks(services)

    async def _process(self, ids: list[int]) -> None:
        async with self.services.transaction() as session:
            await process_claimed(
                session=session,
                workspace_id=self.services.workspace_id,
                delivery_ids=ids,
                owner=self.owner,
                hooks=self.hooks,
                at=self.services.now(),
            )

    async def step(self) -> float | None:
        """Process one batch; 0 when more may be waiting."""
        services = self.services
        async with services.transaction() as session:
            ids = await claim_deliveries(
                session=session,
                workspace_id=services.workspace_id,
                owner=self.owner,
                now=services.now(),
                limit=self.batch,
            )
        if not ids:
            return None
        try:
            # One transaction for the batch: repeats of one alert refresh its card once.
            await self._process(ids)
        except Exception:
            logger.warning("an alert batch failed; processing its deliveries one by one")
            for delivery_id in ids:
                try:
                    await self._process([delivery_id])
                except Exception as exc:
                    logger.exception("processing alert delivery %s failed", delivery_id)
                    async with services.transaction() as session:
                        await fail_delivery(
                            session=session,
                            workspace_id=services.workspace_id,
                            delivery_id=delivery_id,
                            at=services.now(),
                            error=f"{type(exc).__name__}: {exc}",
                        )
        return 0 if len(ids) == self.batch else None
