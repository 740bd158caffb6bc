"""Answers through `response_url` for requests the intake stored and acknowledged first."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

logger = logging.getLogger(__name__)


async def tell(respond: AsyncRespond | None, text: str) -> None:
    """An ephemeral answer to the person who acted (when Slack gave us a response_url);
    a failure to answer is logged, never raised."""
    if respond is None:
        return
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:
        logger.exception("answering with respond() failed")


class ReplacingRespond(AsyncRespond):
    """respond() whose answer replaces the "received" ephemeral the ack showed."""

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("replace_original", True)
        return await super().__call__(*args, **kwargs)


def for_stored_request(respond: AsyncRespond, context: Mapping[str, Any]) -> AsyncRespond:
    """`respond` as is inline; replacing the acknowledgement when run from the intake."""
    if not context.get("intake_id") or not respond.response_url:
        return respond
    return ReplacingRespond(response_url=respond.response_url, proxy=respond.proxy, ssl=respond.ssl)


SORRY = "Sorry, Docket could not do that just now. Please try again."
"""What a person is told when their request failed for a reason of ours (the log says which)."""


@asynccontextmanager
async def answering_failures(
    say: Callable[[str], Awaitable[Any]],
    *,
    log: logging.Logger,
    doing: str,
    sorry: str,
    refusals: tuple[type[Exception], ...] = (),
) -> AsyncIterator[None]:
    """Run a request's work: a refusal (one of `refusals`) is said after ":no_entry:"; any other
    failure is logged as "`doing` failed" and the person is told `sorry`."""
    try:
        yield
    except refusals as exc:
        await say(f":no_entry: {exc}")
    except Exception:
        log.exception("%s failed", doing)
        await say(sorry)
