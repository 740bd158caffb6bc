"""Slack's 3-second answer window, shared by every slow submission.

A submission whose answer depends on stored work (field errors, the saved view) hands that
work to `answer_within_budget`. Done in time, the answer goes in the ack itself; not done,
the ack goes at once (closing the modal) and the outcome is told by DM, while the work goes
on to the end: it is never cut off half-way. The ingress (`bot.intake`) gives storing a
request the same budget, ACK_BUDGET_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from handlers.blocks.common import safe

logger = logging.getLogger(__name__)
T = TypeVar("T")

ACK_BUDGET_SECONDS = 2.0
"""How long work may run before its answer must go to Slack (Slack gives up at 3 s)."""


async def within_ack_budget(
    work: Awaitable[T], *, budget: float | None = None
) -> asyncio.Future[T]:
    """Start `work` and wait for it at most `budget` seconds (ACK_BUDGET_SECONDS unless
    given); `.done()` on the result says whether the answer can go in the ack. The work is
    never cancelled."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task}, timeout=ACK_BUDGET_SECONDS if budget is None else budget)
    return task


@dataclass(frozen=True)
class Answer:
    """What a submission answers: field errors, a view that replaces the modal, or (neither)
    a plain close. `late` is what the person is told by DM when the answer could not go in
    the ack (mrkdwn, already escaped; None: nothing to tell)."""

    errors: dict[str, str] | None = None
    view: dict[str, Any] | None = None
    late: str | None = None

    @classmethod
    def refused(cls, errors: dict[str, str], *, what: str) -> Answer:
        """Field errors; by DM, "Your <what> was not saved: <the errors>"."""
        reasons = " ".join(errors.values())
        return cls(errors=errors, late=safe(f"Your {what} was not saved: {reasons}", 2000))

    def ack_arguments(self) -> dict[str, Any]:
        if self.errors:
            return {"response_action": "errors", "errors": self.errors}
        if self.view is not None:
            return {"response_action": "update", "view": self.view}
        return {}


async def answer_within_budget(
    ack: AsyncAck,
    client: AsyncWebClient,
    user_id: str,
    work: Awaitable[Answer],
    *,
    budget: float | None = None,
) -> Answer:
    """Answer a submission with `work`'s outcome: in the ack when it is done within `budget`,
    otherwise ack at once and tell `answer.late` by DM when it is done."""
    task = await within_ack_budget(work, budget=budget)
    if task.done():
        answer = task.result()
        await ack(**answer.ack_arguments())
        return answer
    # Slack stops waiting at 3 s: close the form and report the outcome by DM.
    await ack()
    answer = await task
    if answer.late:
        await tell_by_dm(client, user_id, answer.late)
    return answer


async def tell_by_dm(client: AsyncWebClient, user_id: str, text: str) -> None:
    """Tell a person the late outcome of a submission that was acked before it finished
    (`text` is mrkdwn, already escaped)."""
    try:
        await client.chat_postMessage(channel=user_id, text=text)
    except Exception:
        logger.exception("telling a person the outcome of their submission failed")
