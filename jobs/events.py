"""Process stored Slack events (each exactly once; failures retried with back-off)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.services import Services
from jobs.loop import run_worker
from models.slack_events import claim_pending, finish_event

logger = logging.getLogger(__name__)

Dispatch = Callable[[Services, dict[str, Any]], Awaitable[None]]


async def run(services: Services, dispatch: Dispatch, *, batch: int = 20) -> float | None:
    """Process one batch of pending events; returns 0 when more may be waiting."""
    async with services.transaction() as session:
        rows = await claim_pending(session=session, now=services.now(), limit=batch)
        claimed = [(row.id, row.body, row.event_type) for row in rows]
    for row_id, body, event_type in claimed:
        assert row_id is not None
        error: str | None = None
        try:
            await dispatch(services, body)
        except Exception as exc:
            logger.exception("processing a %s event failed", event_type)
            error = f"{type(exc).__name__}: {exc}"
        async with services.transaction() as session:
            await finish_event(session=session, event_row_id=row_id, at=services.now(), error=error)
    return 0 if len(claimed) == batch else None


class EventWorker:
    """Processes stored Slack events until stopped, woken by `services.wake.events`."""

    def __init__(self, services: Services, dispatch: Dispatch) -> None:
        self.services = services
        self.dispatch = dispatch

    async def step(self) -> float | None:
        return await run(self.services, self.dispatch)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set."""
        await run_worker("events", self.step, self.services.wake.events, stop)
