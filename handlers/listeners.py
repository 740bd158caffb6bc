"""Listeners that ack first, then run their work with what Bolt passed, in one object.

Bolt gives a listener the arguments its parameters name; `on_click` writes that signature once
for the buttons that need the clicked action, a way to answer and the Web API client, and
`on_command` for the slash commands that need the command, a way to answer and the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NamedTuple

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.respond import for_stored_request

Listener = Callable[..., Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Click:
    """A click on a button (or a choice in a select), as Bolt passed it."""

    services: Services
    body: dict[str, Any]
    action: dict[str, Any]
    respond: AsyncRespond
    client: AsyncWebClient


def on_click(work: Callable[[Click], Awaitable[None]]) -> Listener:
    """A Bolt action listener that acks, then runs `work` for the click."""

    async def listener(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        services: Services,
    ) -> None:
        await ack()
        await work(Click(services, body, action, respond, client))

    return listener


class Slash(NamedTuple):
    """A slash command as Bolt passed it (unpacks as `command, respond, client, services`)."""

    command: dict[str, Any]
    respond: AsyncRespond
    client: AsyncWebClient
    services: Services


def on_command(work: Callable[[Slash], Awaitable[None]], *, stored: bool = False) -> Listener:
    """A Bolt command listener that acks, then runs `work` for the command. With `stored`, a
    command the intake stored and acknowledged first answers in place of that acknowledgement."""

    async def listener(
        ack: AsyncAck,
        command: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        services: Services,
        context: AsyncBoltContext | None = None,
    ) -> None:
        await ack()
        if stored:
            respond = for_stored_request(respond, context or {})
        await work(Slash(command, respond, client, services))

    return listener
