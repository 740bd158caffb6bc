"""The shape every background worker shares: work, then sleep until woken or due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 5.0


async def run_worker(
    name: str,
    step: Callable[[], Awaitable[float | None]],
    wake: asyncio.Event,
    stop: asyncio.Event,
    *,
    idle_poll: float = IDLE_POLL_SECONDS,
) -> None:
    """Call `step` until `stop` is set.

    `step` returns how long until it has more work (0 for "at once", None for "nothing
    known"). Between steps the worker sleeps that long, or `idle_poll` at most, and wakes
    early when `wake` is set (work was committed) or when stopping. The idle poll is the
    safety net for work committed by another process.
    """
    while not stop.is_set():
        # Clear before working, so a commit made during the step wakes the next wait at once.
        wake.clear()
        try:
            delay = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s worker step failed; retrying", name)
            delay = 1.0
        if delay is not None and delay <= 0:
            await asyncio.sleep(0)
            continue
        timeout = idle_poll if delay is None else min(delay, idle_poll)
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
