"""Button listeners: ack first, then the button's work with what Bolt passed, in one object.

Bolt gives a listener the arguments its parameters name; `on_click` writes that signature once
for the buttons that need the clicked action, a way to answer and the Web API client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services

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
