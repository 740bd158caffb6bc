"""`/docket integrations`: admins list monitoring alert sources and add one.

`/docket integrations add NAME [--auto-resolve] [--customer-label LABEL]` creates the source
before answering (the answer shows its secret, to the admin only). Only admins (role admin,
or named in DOCKET_ADMINS) see or add anything.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.services import Services
from handlers.blocks.alerts import INTEGRATIONS_USAGE, build_sources_list, source_created_text
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.ids import Command
from models.alerts import AlertSourceError, create_source, list_sources
from models.people import is_admin, member_by_slack_id

logger = logging.getLogger(__name__)

DENIED = "Only Docket admins can see and add alert sources."


@dataclass(frozen=True)
class AddSource:
    """A parsed `add` sub-command."""

    name: str
    auto_resolve: bool = False
    customer_label: str = "customer"


def parse_add(text: str) -> AddSource | str | None:
    """`add NAME [--auto-resolve] [--customer-label L]` -> AddSource; a problem as text; None
    when the text is not an `add`."""
    try:
        words = shlex.split(text)
    except ValueError:
        return "Check the quotes in that command."
    if not words or words[0].lower() != "add":
        return None
    name, auto, label = None, False, "customer"
    rest = iter(words[1:])
    for word in rest:
        if word == "--auto-resolve":
            auto = True
        elif word == "--customer-label":
            label = next(rest, "")
        elif word.startswith("--customer-label="):
            label = word.split("=", 1)[1]
        elif name is None and not word.startswith("-"):
            name = word
        else:
            return f"I do not understand `{word[:40]}`. {INTEGRATIONS_USAGE}"
    if not name:
        return INTEGRATIONS_USAGE
    return AddSource(name=name, auto_resolve=auto, customer_label=label)


async def handle_integrations_command(
    ack: AsyncAck, command: dict[str, Any], services: Services
) -> None:
    """`/docket integrations [add ...]`: answered with the ack, after the source is stored."""
    _, rest = split_subcommand(command.get("text"))
    user_id = str(command.get("user_id") or "")
    wanted = parse_add(rest)
    note = None
    async with services.transaction() as session:
        allowed = user_id in services.settings.docket_admins or is_admin(
            await member_by_slack_id(
                session=session, workspace_id=services.workspace_id, slack_user_id=user_id
            )
        )
        if allowed and isinstance(wanted, AddSource):
            try:
                source = await create_source(
                    session=session,
                    workspace_id=services.workspace_id,
                    name=wanted.name,
                    auto_resolve=wanted.auto_resolve,
                    customer_label=wanted.customer_label,
                    at=services.now(),
                )
            except AlertSourceError as exc:
                note = str(exc)
            else:
                logger.info("integrations: %s added alert source %s", user_id, source.name)
                note = source_created_text(source)
        sources = await list_sources(session=session, workspace_id=services.workspace_id)
    if not allowed:
        await ack(text=DENIED, response_type="ephemeral")
        return
    if isinstance(wanted, str):
        note = wanted
    await ack(
        blocks=build_sources_list(sources, note=note),
        text="Monitoring alert sources",
        response_type="ephemeral",
    )


def register(app: AsyncApp) -> None:
    app.command(Command.DOCKET.value, matchers=[subcommand("integrations")])(
        handle_integrations_command
    )
