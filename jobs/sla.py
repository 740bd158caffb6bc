"""The SLA scan: finds warnings and breaches that are due and queues their notices.

It runs at start-up and then every few seconds against the wall clock (`services.now()`), so
a suspended host or a clock step catches up on the next pass instead of skipping a notice.
Each pass is one short transaction over the tickets whose next check is due (an indexed
read); every notice is claimed by a unique row, so replicas sharing PostgreSQL send it once.
"""

from __future__ import annotations

import asyncio
import logging

from bot.services import Services
from handlers.blocks.sla import notice_text
from handlers.blocks.tickets import build_ticket_card, card_text
from jobs.loop import run_worker
from models.sla_store import ScanResult, queue_card_refresh, scan_due
from models.tickets import load_cards

logger = logging.getLogger(__name__)

SCAN_EVERY_SECONDS = 15.0
"""How long an idle scan sleeps: well under the minute the rules promise."""

BATCH = 500
"""Tickets evaluated per transaction."""

STOP_GRACE = 5.0
"""Seconds a pass in progress may take to finish when Docket stops."""


class SlaScanWorker:
    """One workspace's scan loop, constructed and started by bot.runtime."""

    def __init__(self, services: Services, *, batch: int = BATCH) -> None:
        self.services = services
        self.batch = batch
        self._finished = asyncio.Event()
        self._finished.set()

    async def scan_once(self) -> ScanResult:
        """One pass: claim and queue what is due now."""
        services = self.services
        now = services.now()
        async with services.transaction() as session:
            result = await scan_due(
                session=session,
                workspace_id=services.workspace_id,
                now=now,
                render=notice_text,
                limit=self.batch,
            )
            # The cards of the tickets just warned or breached show it too.
            tickets = list({n.ticket.id: n.ticket for n in result.claimed}.values())
            cards = await load_cards(
                session=session, workspace_id=services.workspace_id, tickets=tickets
            )
            for ticket, card in zip(tickets, cards, strict=True):
                notice = next(n for n in result.claimed if n.ticket.id == ticket.id)
                await queue_card_refresh(
                    session=session,
                    workspace_id=services.workspace_id,
                    ticket=ticket,
                    key=f"sla:{ticket.id}:{notice.target.value}:{notice.kind}:{notice.round}",
                    text=card_text(card),
                    blocks=build_ticket_card(card, now=now),
                    at=now,
                )
        if result.queued:
            logger.info("sla: %s notice(s) queued", result.queued)
        return result

    async def step(self) -> float | None:
        """Scan; 0 when more tickets are due at once, else sleep until the next pass."""
        result = await self.scan_once()
        return 0 if result.more else SCAN_EVERY_SECONDS

    async def run(self, stop: asyncio.Event) -> None:
        """Scan at once, then every SCAN_EVERY_SECONDS (or when woken) until `stop` is set."""
        self._finished.clear()
        try:
            await run_worker(
                "sla", self.step, self.services.wake.sla, stop, idle_poll=SCAN_EVERY_SECONDS
            )
        finally:
            self._finished.set()

    async def close(self) -> None:
        """Let a pass in progress finish (the stop event is already set), up to STOP_GRACE."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            logger.warning("SLA scan still busy at shutdown")
