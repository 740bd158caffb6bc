"""Slack's 3-second answer window, shared by every slow submission.

A submission whose answer depends on stored work (field errors, the saved view) starts that
work with `within_ack_budget`. Done in time, the handler answers in the ack itself; not done,
it acks at once (closing the modal) and tells the outcome another way (a DM), while the work
goes on to the end: it is never cut off half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

ACK_BUDGET_SECONDS = 2.0
"""How long a submission may work before it must ack (Slack gives up at 3 s)."""


async def within_ack_budget(
    work: Coroutine[Any, Any, T], *, budget: float = ACK_BUDGET_SECONDS
) -> asyncio.Task[T]:
    """Start `work` and wait for it at most `budget` seconds; `task.done()` says whether the
    answer can go in the ack."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task}, timeout=budget)
    return task


async def tell_by_dm(client: AsyncWebClient, user_id: str, text: str) -> None:
    """Tell a person the late outcome of a submission that was acked before it finished
    (`text` is mrkdwn, already escaped)."""
    try:
        await client.chat_postMessage(channel=user_id, text=text)
    except Exception:
        logger.exception("telling a person the outcome of their submission failed")
