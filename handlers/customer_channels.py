"""The ticket reaction: a team member's `:ticket:` on a message in a customer's channel.

The message becomes a ticket exactly as if the customer had just written it (the card goes to
the team's channel, the customer gets the acknowledgement in the message's thread). The emoji
is a workspace setting (Workspace.ticket_reaction, `ticket` by default). Only an active team
member's reaction counts: Slack Connect guests and customers cannot open tickets this way.
Processed from the stored event, so Slack's retries and a second reaction open nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.services import Services
from handlers.blocks.tickets import message_to_plain
from handlers.conversation import _open_from_channel
from handlers.events import EventRouter
from handlers.people import resolve_member
from models.customer_channel import is_ticket_reaction, message_recorded
from models.tickets import customer_by_channel
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelMessage:
    """A message read back from Slack."""

    ts: str
    user: str | None
    text: str
    thread_ts: str | None


def message_from(data: Any, ts: str) -> ChannelMessage | None:
    """The message with `ts` in a conversations.history/replies answer (pure)."""
    messages = data.get("messages") if isinstance(data, dict) else None
    for message in messages or []:
        if isinstance(message, dict) and message.get("ts") == ts:
            thread_ts = message.get("thread_ts")
            user = message.get("user")
            return ChannelMessage(
                ts=ts,
                user=user if isinstance(user, str) else None,
                text=str(message.get("text") or ""),
                thread_ts=thread_ts if isinstance(thread_ts, str) else None,
            )
    return None


async def fetch_message(services: Services, channel: str, ts: str) -> ChannelMessage | None:
    """Read one message: from the channel's history, or (a thread reply) from its thread."""
    try:
        history = await services.slack.conversations_history(
            channel=channel, latest=ts, inclusive=True, limit=1
        )
        found = message_from(history.data, ts)
        if found is None:
            replies = await services.slack.conversations_replies(
                channel=channel, ts=ts, latest=ts, inclusive=True, limit=1
            )
            found = message_from(replies.data, ts)
    except SlackApiError as exc:
        logger.warning("reading a reacted message failed: %s", exc.response.get("error"))
        return None
    return found


async def process_reaction_added(services: Services, body: dict[str, Any]) -> None:
    """`reaction_added`: the ticket emoji on a customer-channel message opens a ticket."""
    event = body.get("event") or {}
    item = event.get("item") or {}
    channel, ts, user = item.get("channel"), item.get("ts"), event.get("user")
    if item.get("type") != "message":
        return
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)):
        return
    async with services.read() as session:
        workspace = await get_workspace(session=session, workspace_id=services.workspace_id)
        configured = workspace.ticket_reaction or "ticket"
        if not is_ticket_reaction(str(event.get("reaction") or ""), configured):
            return
        customer = await customer_by_channel(
            session=session, workspace_id=services.workspace_id, channel=channel
        )
        if customer is None or customer.id is None:
            return
        done = await message_recorded(
            session=session, workspace_id=services.workspace_id, slack_ts=ts
        )
    if done:
        return
    member = await resolve_member(services, user)
    if not member.active:
        logger.info("a ticket reaction by someone outside the team was ignored")
        return
    message = await fetch_message(services, channel, ts)
    if message is None:
        return
    if message.user == services.bot_user_id:
        return
    await _open_from_channel(
        services,
        customer,
        channel=channel,
        ts=ts,
        user=message.user or user,
        text=message_to_plain(message.text) or "(attachment)",
        thread_ts=message.thread_ts if message.thread_ts != ts else None,
    )


def register_events(router: EventRouter) -> None:
    router.on("reaction_added", process_reaction_added)
