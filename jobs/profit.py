"""The profitability refresh worker: recomputes stale customer-periods soon after a change.

Woken by `services.wake.profit` (set after a commit that marked periods stale), and every few
seconds anyway for changes made by another process (an import, another replica). Each step is
one short transaction over a few customer-periods, so the event loop and SQLite's write lock
are free between steps and the ack path stays fast even while a large backlog is worked off.
Once a day (or at start) it also moves the results horizon forward (new weeks and months of
fixed fees and direct costs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date

from bot.services import Services
from jobs.loop import run_worker
from models import profit_bulk, profit_refresh
from models.directory import workspace_today

logger = logging.getLogger(__name__)

STEP_LIMIT = 20
"""Customer-periods per transaction (one time query per customer in it)."""

STOP_GRACE = 5.0
"""Seconds a step in progress may take to finish when Docket stops."""

SQLITE_PAUSE = 0.05
"""Least pause between steps on SQLite, whose single write lock the steps hold: a writer's
busy handler retries every few tens of milliseconds and must find the lock free."""


class ProfitWorker:
    """One workspace's refresh loop: `run(stop)` calls `step` until stopped."""

    def __init__(self, services: Services, *, limit: int = STEP_LIMIT) -> None:
        self.services = services
        self.limit = limit
        self.horizon_checked: date | None = None
        self._finished = asyncio.Event()
        self._finished.set()

    async def step(self) -> float | None:
        """Refresh a few stale customer-periods; 0 when more are waiting, None when idle."""
        services = self.services
        now = services.now()
        async with services.read() as session:
            today = await workspace_today(
                session=session, workspace_id=services.workspace_id, at=now
            )
        if today != self.horizon_checked:
            async with services.transaction() as session:
                marked = await profit_refresh.ensure_horizon(
                    session=session, workspace_id=services.workspace_id, today=today, at=now
                )
            if marked:
                logger.info("profitability: %s new customer-period(s) to compute", marked)
            self.horizon_checked = today
        started = time.monotonic()
        async with services.transaction() as session:
            # Small changes one customer-period at a time; a large backlog set-based.
            stats = await profit_bulk.refresh_step(
                session=session,
                workspace_id=services.workspace_id,
                today=today,
                at=now,
                limit=self.limit,
            )
        if stats.restatements:
            logger.info("profitability: %s reported period(s) restated", stats.restatements)
        if not stats.customer_periods:
            return None
        if services.engine.dialect.name == "sqlite":
            # As long a pause as the step took (at least SQLITE_PAUSE): other writers, such as
            # people logging time, get the lock at least half of the time.
            return max(SQLITE_PAUSE, time.monotonic() - started)
        return 0

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set, woken by `services.wake.profit`."""
        self._finished.clear()
        try:
            await run_worker("profit", self.step, self.services.wake.profit, stop)
        finally:
            self._finished.set()

    async def close(self) -> None:
        """Let a step in progress finish (the stop event is already set), up to STOP_GRACE:
        shutting down never abandons a transaction holding SQLite's write lock."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            logger.warning("profitability refresh still busy at shutdown")
