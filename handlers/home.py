"""App Home: published when a member opens it and after their tickets change.

`app_home_opened` is processed from the stored event (handlers/events.py). The Home tab is
state, not a notification, so it is published with `views.publish` directly; a failure is
logged and the next opening repairs it.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.blocks.home import build_home, build_unavailable_home
from handlers.events import EventRouter
from handlers.people import resolve_member
from models.tickets import home_data

logger = logging.getLogger(__name__)

# Where the time-logging engineer's modal lives; looked up at click time so either side can
# land first.


async def publish_home(
    services: Services, slack_user_id: str, *, client: AsyncWebClient | None = None
) -> None:
    """Build and publish one member's Home tab."""
    member = await resolve_member(services, slack_user_id, client=client)
    if member.id is None:
        # Slack could not say who this is (nothing was stored): a plain Home, once.
        await (client or services.slack).views_publish(
            user_id=slack_user_id, view=build_unavailable_home()
        )
        return
    async with services.read() as session:
        data = await home_data(
            session=session, workspace_id=services.workspace_id, member=member, at=services.now()
        )
    view = build_home(data, now=services.now())
    await (client or services.slack).views_publish(user_id=slack_user_id, view=view)


async def refresh_homes(services: Services, slack_user_ids: set[str | None]) -> None:
    """Best effort: re-publish the Home of each person whose tickets just changed."""
    for user_id in sorted(u for u in slack_user_ids if u):
        try:
            await publish_home(services, user_id)
        except Exception:
            logger.exception("refreshing App Home failed")


async def process_home_opened(services: Services, body: dict[str, Any]) -> None:
    """Event processor for `app_home_opened` (safe to run twice: publishing is idempotent)."""
    event = body.get("event") or {}
    user_id = event.get("user")
    if event.get("tab", "home") != "home" or not isinstance(user_id, str) or not user_id:
        return
    await publish_home(services, user_id)


def register(app: AsyncApp) -> None:
    """Home's buttons are wired where their work lives: New ticket in handlers.ticket_form,
    Log time in handlers.time_cmd."""


def register_events(router: EventRouter) -> None:
    """Publish Home when it is opened (processed from stored events)."""
    router.on("app_home_opened", process_home_opened)
