"""`/docket outbox`: admins see the messages Docket could not deliver, and queue them again.

`/docket outbox` lists dead rows with a Retry button each (and Retry all);
`/docket outbox retry <id>` and `/docket outbox retry all` do the same from the keyboard.
Only admins (role admin, or named in DOCKET_ADMINS) see or retry anything; the button
re-checks the person who clicked, since Slack vouches for the app, not for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import Block, section
from handlers.blocks.outbox import RETRY_ALL, build_outbox_list
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.ids import Action, Command
from handlers.people import user_of
from models.outbox import list_dead, retry_dead, status_counts
from models.people import is_admin, member_by_slack_id

logger = logging.getLogger(__name__)

DENIED = "Only Docket admins can see and retry the outbox."
USAGE = "Use `/docket outbox retry <id>` or `/docket outbox retry all`."


def parse_retry(words: Sequence[str]) -> int | str | None:
    """`retry 12` -> 12, `retry all` -> "all", anything else -> None."""
    if len(words) != 2 or words[0].lower() != "retry":
        return None
    target = words[1].lower().lstrip("#")
    if target == RETRY_ALL:
        return RETRY_ALL
    return int(target) if target.isdigit() else None


async def _allowed(session: AsyncSession, services: Services, user_id: str) -> bool:
    if user_id in services.settings.docket_admins:
        return True
    member = await member_by_slack_id(
        session=session, workspace_id=services.workspace_id, slack_user_id=user_id
    )
    return is_admin(member)


async def _retry_and_list(
    services: Services, user_id: str, target: int | str | None
) -> list[Block] | None:
    """Retry `target` (a row id or "all") if given, then list; None when not allowed."""
    note = None
    async with services.transaction() as session:
        if not await _allowed(session, services, user_id):
            return None
        if target is not None:
            count = await retry_dead(
                session=session,
                workspace_id=services.workspace_id,
                row_id=None if target == RETRY_ALL else int(target),
                at=services.now(),
            )
            if count:
                note = f"Queued {count} message{'s' if count != 1 else ''} again."
            else:
                note = f"There is no dead message {target}."
            logger.info("outbox: %s queued %d dead row(s) again", user_id, count)
        rows = await list_dead(session=session, workspace_id=services.workspace_id, limit=100)
        counts = await status_counts(session=session, workspace_id=services.workspace_id)
    return build_outbox_list(rows, counts, note=note)


async def handle_outbox_command(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, services: Services
) -> None:
    """`/docket outbox [retry <id>|retry all]`."""
    await ack()
    _, rest = split_subcommand(command.get("text"))
    words = rest.split()
    target = parse_retry(words)
    blocks = await _retry_and_list(services, str(command.get("user_id") or ""), target)
    if blocks is None:
        await respond(text=DENIED, response_type="ephemeral")
        return
    if words and target is None:
        blocks.insert(2, section(USAGE))
    await respond(blocks=blocks, text="Docket outbox", response_type="ephemeral")


async def handle_outbox_retry(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, services: Services
) -> None:
    """The Retry (or Retry all) button: queue again, then show the list as it is now."""
    await ack()
    action = (body.get("actions") or [{}])[0]
    value = str(action.get("value") or "")
    target: int | str | None = RETRY_ALL if value == RETRY_ALL else None
    if value.isdigit():
        target = int(value)
    user_id = user_of(body)[0]
    blocks = await _retry_and_list(services, user_id, target)
    if blocks is None:
        await respond(text=DENIED, response_type="ephemeral", replace_original=False)
        return
    await respond(blocks=blocks, text="Docket outbox", replace_original=True)


def register(app: AsyncApp) -> None:
    app.command(Command.DOCKET.value, matchers=[subcommand("outbox")])(handle_outbox_command)
    app.action(Action.OUTBOX_RETRY.value)(handle_outbox_retry)
