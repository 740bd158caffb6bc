"""`@docket` mentions and channel joins."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers.blocks.common import section
from handlers.events import EventRouter
from models.outbox import SLACK, enqueue, slack_call

logger = logging.getLogger(__name__)

MENTION_REPLY = (
    "Hi! I'm Docket. Type `/ticket` to open a ticket, `/time` to log time, "
    "or `/docket help` for everything I can do."
)


async def on_app_mention(services: Services, body: dict[str, Any]) -> None:
    """Answer a mention in its thread, once per event however often Slack delivers it."""
    event = body.get("event") or {}
    if event.get("bot_id") or event.get("user") == services.bot_user_id:
        return
    channel, ts = event.get("channel"), event.get("thread_ts") or event.get("ts")
    if not channel or not ts:
        return
    async with services.transaction() as session:
        await enqueue(
            session=session,
            workspace_id=services.workspace_id,
            kind=SLACK,
            key=f"mention:{body.get('team_id')}:{body.get('event_id')}",
            payload=slack_call(
                "chat.postMessage",
                channel=channel,
                thread_ts=ts,
                text=MENTION_REPLY,
                blocks=[section(MENTION_REPLY)],
            ),
            at=services.now(),
        )


async def on_member_joined(services: Services, body: dict[str, Any]) -> None:
    event = body.get("event") or {}
    if event.get("user") == services.bot_user_id:
        logger.info("Docket was added to channel %s", event.get("channel"))


def register(app: AsyncApp) -> None:
    """Mentions and joins arrive as events only; see register_events."""


def register_events(router: EventRouter) -> None:
    router.on("app_mention", on_app_mention)
    router.on("member_joined_channel", on_member_joined)
