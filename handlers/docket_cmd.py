"""`/docket`: help, and the routing helper other modules use for their sub-commands.

A module adds `/docket settings` with
`app.command(Command.DOCKET, matchers=[subcommand("settings")])(handler)`; the help below is
registered last (see bot.app.register_listeners) and answers everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from handlers.blocks.common import build_help
from handlers.ids import Command

logger = logging.getLogger(__name__)


def split_subcommand(text: str | None) -> tuple[str, str]:
    """`"outbox retry 12"` -> `("outbox", "retry 12")`."""
    sub, _, rest = (text or "").strip().partition(" ")
    return sub.lower(), rest.strip()


def subcommand(*names: str) -> Callable[..., Awaitable[bool]]:
    """A Bolt matcher for `/docket <name> ...` (or `/ticket <name> ...`)."""
    wanted = {n.lower() for n in names}

    async def matches(command: dict[str, Any]) -> bool:
        return split_subcommand(command.get("text"))[0] in wanted

    return matches


async def handle_docket_help(ack: AsyncAck) -> None:
    """Anything `/docket` does not know gets the help, never a stack trace."""
    await ack(blocks=build_help(), text="Docket help", response_type="ephemeral")


def register(app: AsyncApp) -> None:
    app.command(Command.DOCKET.value)(handle_docket_help)
