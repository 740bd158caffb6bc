"""Events API: every subscribed event is stored first, then processed from the database.

Over HTTP the server stores the event before answering Slack (bot/server.py); in Socket Mode
the listeners below store it. Either way the event worker (jobs/events.py) later runs the
processors through `EventRouter.dispatch`, so a crash after the answer cannot lose an event.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers.ids import EVENT_TYPES
from models.slack_events import store_event

logger = logging.getLogger(__name__)

EventProcessor = Callable[[Services, dict[str, Any]], Awaitable[None]]


class EventRouter:
    """Processors per event type. A body is processed by every processor of its type."""

    def __init__(self) -> None:
        self._processors: dict[str, list[EventProcessor]] = defaultdict(list)

    def on(self, event_type: str, processor: EventProcessor) -> None:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"{event_type} is not subscribed in manifest.yml")
        self._processors[event_type].append(processor)

    async def dispatch(self, services: Services, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        event_type = event.get("type", "")
        processors = self._processors.get(event_type, [])
        if not processors:
            logger.debug("no processor for event type %s", event_type)
        for processor in processors:
            await processor(services, body)


async def store_listener(body: dict[str, Any], services: Services) -> None:
    """Socket Mode path: keep the event; the event worker processes it."""
    async with services.transaction() as session:
        await store_event(session=session, body=body, at=services.now())


def register(app: AsyncApp) -> None:
    for event_type in EVENT_TYPES:
        app.event(event_type)(store_listener)
