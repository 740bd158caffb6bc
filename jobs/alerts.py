"""Process stored alert deliveries: each once, in one transaction with its ticket changes.

A worker claims a few pending deliveries of its workspace (a lease, `FOR UPDATE SKIP LOCKED`
on PostgreSQL), then processes them in one transaction that also marks them done, and only
while it still holds their leases: two replicas never process one delivery twice, and a crash
leaves the deliveries pending for the next worker once the lease runs out. What the changes
tell people in Slack comes from the hooks the runtime passes in.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from bot.services import Services
from jobs.loop import run_worker
from models.alerts import AlertHooks, claim_deliveries, fail_delivery, process_claimed

logger = logging.getLogger(__name__)


class AlertWorker:
    """The intake worker for alerts: claim, process, mark done (or retry with back-off)."""

    def __init__(
        self,
        services: Services,
        *,
        hooks: AlertHooks,
        batch: int = 10,
        owner: str | None = None,
    ) -> None:
        self.services = services
        self.hooks = hooks
        self.batch = batch
        self.owner = owner or uuid.uuid4().hex[:16]

    async def _process(self, ids: list[int]) -> None:
        async with self.services.transaction() as session:
            await process_claimed(
                session=session,
                workspace_id=self.services.workspace_id,
                delivery_ids=ids,
                owner=self.owner,
                hooks=self.hooks,
                at=self.services.now(),
            )

    async def step(self) -> float | None:
        """Process one batch; 0 when more may be waiting."""
        services = self.services
        async with services.transaction() as session:
            ids = await claim_deliveries(
                session=session,
                workspace_id=services.workspace_id,
                owner=self.owner,
                now=services.now(),
                limit=self.batch,
            )
        if not ids:
            return None
        try:
            # One transaction for the batch: repeats of one alert refresh its card once.
            await self._process(ids)
        except Exception:
            logger.warning("an alert batch failed; processing its deliveries one by one")
            for delivery_id in ids:
                try:
                    await self._process([delivery_id])
                except Exception as exc:
                    logger.exception("processing alert delivery %s failed", delivery_id)
                    async with services.transaction() as session:
                        await fail_delivery(
                            session=session,
                            workspace_id=services.workspace_id,
                            delivery_id=delivery_id,
                            at=services.now(),
                            error=f"{type(exc).__name__}: {exc}",
                        )
        return 0 if len(ids) == self.batch else None

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set, woken by `services.wake.alerts`."""
        await run_worker("alerts", self.step, self.services.wake.alerts, stop)
