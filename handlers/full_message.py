""" "Show full message" on a customer-reply DM: the whole mail, quoted history included, in a modal.

The DM quotes only the new text the rules found; this button is how an assignee sees anything
the rules left out. Only active members of the support team may open it (Slack vouches for
the app, not for the person who clicked).
"""

from __future__ import annotations

import functools
import logging

from slack_bolt.async_app import AsyncApp

from handlers.blocks.notify import build_full_message_modal
from handlers.ids import Action
from handlers.listeners import Click, on_click
from handlers.people import resolve_member, user_of
from handlers.respond import answering_failures, tell
from models.inbound_store import full_message
from models.people import PermissionDenied, require_agent

logger = logging.getLogger(__name__)

NOT_FOUND = "That message is no longer available."
SORRY = "Sorry, Docket could not open the message just now. Please try again."


async def _show_full_message(click: Click) -> None:
    """Open the whole customer message behind a reply DM in a modal."""
    services, body, respond, client = click.services, click.body, click.respond, click.client
    value = str(click.action.get("value") or "")
    if not value.isdigit():
        await tell(respond, NOT_FOUND)
        return
    user_id = user_of(body)[0]
    async with answering_failures(
        functools.partial(tell, respond),
        log=logger,
        doing="opening the full message",
        sorry=SORRY,
        refusals=(PermissionDenied,),
    ):
        member = await resolve_member(services, user_id, client=client)
        require_agent(member)
        async with services.read() as session:
            message = await full_message(
                session=session, workspace_id=services.workspace_id, event_id=int(value)
            )
        if message is None:
            await tell(respond, NOT_FOUND)
            return
        await client.views_open(
            trigger_id=body["trigger_id"], view=build_full_message_modal(message)
        )


handle_show_full_message = on_click(_show_full_message)


def register(app: AsyncApp) -> None:
    app.action(Action.SHOW_FULL_MESSAGE.value)(handle_show_full_message)
