"""The report scheduler: each workspace's weekly (and monthly) post at its local time.

APScheduler 3's AsyncIOScheduler runs in Docket's event loop, one cron trigger per workspace
and kind in the workspace's time zone. A trigger only says "look now": the run itself
(jobs.weekly.run_due) posts every due period that nobody has claimed, so a late, repeated or
concurrent fire (another replica, the catch-up at start) can never post a period twice; the
claim in the database decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlmodel import col, select

from bot.services import Services
from jobs import weekly
from jobs.weekly import workspace_zone
from models.tables import Workspace
from models.weekly import ReportKind, check_weekday, effective_report_time

logger = logging.getLogger(__name__)

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RETRY_AFTER = weekly.STALE_CLAIM + timedelta(minutes=5)
"""A failed run is tried again after this; its claim is stale by then, so it is resumed."""

RunDue = Callable[..., Awaitable[list[weekly.RunOutcome]]]


def weekly_trigger(*, weekday: int, at: time, tz: ZoneInfo) -> CronTrigger:
    """Every ``weekday`` (0 = Monday) at ``at`` local time; CronTrigger follows DST changes."""
    return CronTrigger(
        day_of_week=_DAY_NAMES[check_weekday(weekday)], hour=at.hour, minute=at.minute, timezone=tz
    )


def monthly_trigger(*, at: time, tz: ZoneInfo) -> CronTrigger:
    """Weekdays among the 1st-3rd of each month at ``at``: the first working day is one of them.

    Later fires in the same month find the month already claimed and do nothing.
    """
    return CronTrigger(
        day="1-3", day_of_week="mon-fri", hour=at.hour, minute=at.minute, timezone=tz
    )


class ReportScheduler:
    """Owns the APScheduler instance and the report jobs of every workspace."""

    def __init__(self, services: Services, *, run_due: RunDue = weekly.run_due) -> None:
        self.services = services
        self.run_due = run_due
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            # A fire delayed by a busy loop or a suspended host still runs, once.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _lock(self, workspace_id: int) -> asyncio.Lock:
        return self._locks.setdefault(workspace_id, asyncio.Lock())

    async def start(self) -> None:
        """Start inside the running loop and add every workspace's jobs."""
        self.scheduler.start()
        async with self.services.read() as session:
            workspaces = list((await session.exec(select(Workspace))).all())
        for ws in workspaces:
            self._apply(ws)

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def job_id(self, workspace_id: int, kind: ReportKind) -> str:
        return f"report:{workspace_id}:{kind}"

    def _apply(self, ws: Workspace) -> None:
        """(Re)place the workspace's jobs from its settings."""
        assert ws.id is not None
        tz = workspace_zone(ws)
        at, why = effective_report_time(ws.report_time)
        if why:
            logger.warning("workspace %s: %s", ws.id, why)
        try:
            weekday = check_weekday(ws.report_weekday)
        except ValueError:
            logger.warning(
                "workspace %s: bad report weekday %r, using Monday", ws.id, ws.report_weekday
            )
            weekday = 0
        self.scheduler.add_job(
            self.fire,
            weekly_trigger(weekday=weekday, at=at, tz=tz),
            args=[ws.id, "weekly"],
            id=self.job_id(ws.id, "weekly"),
            name=f"weekly report for workspace {ws.id}",
            replace_existing=True,
        )
        monthly_id = self.job_id(ws.id, "monthly")
        if ws.monthly_post:
            self.scheduler.add_job(
                self.fire,
                monthly_trigger(at=at, tz=tz),
                args=[ws.id, "monthly"],
                id=monthly_id,
                name=f"monthly report for workspace {ws.id}",
                replace_existing=True,
            )
        elif self.scheduler.get_job(monthly_id) is not None:
            self.scheduler.remove_job(monthly_id)
        logger.info(
            "workspace %s: weekly report %s %s %s%s",
            ws.id,
            _DAY_NAMES[weekday],
            at.strftime("%H:%M"),
            tz.key,
            ", monthly on the first working day" if ws.monthly_post else "",
        )

    async def fire(self, workspace_id: int, kind: ReportKind) -> None:
        """What a trigger runs: post whatever of this kind is due and unclaimed.

        A failure (the database away, say) tries again after `RETRY_AFTER` instead of waiting
        a week for the next fire; the claim left behind is resumed then, as it is stale.
        """
        try:
            async with self._lock(workspace_id):
                await self.run_due(
                    self.services,
                    workspace_id=workspace_id,
                    kinds=(kind,),
                    now=self.services.now(),
                    resume_older_than=weekly.STALE_CLAIM,
                )
        except Exception:
            logger.exception(
                "workspace %s: the %s report failed; trying again in %s",
                workspace_id,
                kind,
                RETRY_AFTER,
            )
            if self.scheduler.running:
                self.scheduler.add_job(
                    self.fire,
                    DateTrigger(run_date=datetime.now(UTC) + RETRY_AFTER),
                    args=[workspace_id, kind],
                    id=f"report-retry:{workspace_id}:{kind}",
                    replace_existing=True,
                )

    async def catch_up(self) -> None:
        """At start: finish abandoned runs and post missed periods, once each, oldest first."""
        async with self.services.read() as session:
            ids = list((await session.exec(select(Workspace.id).order_by(col(Workspace.id)))).all())
        for workspace_id in ids:
            assert workspace_id is not None
            try:
                async with self._lock(workspace_id):
                    await self.run_due(
                        self.services,
                        workspace_id=workspace_id,
                        kinds=("weekly", "monthly"),
                        now=self.services.now(),
                        resume_older_than=None,
                    )
            except Exception:
                logger.exception("workspace %s: report catch-up failed", workspace_id)

    async def reschedule(self, workspace_id: int) -> None:
        """Apply changed settings at once, then post anything the new schedule makes due."""
        async with self.services.read() as session:
            ws = await session.get(Workspace, workspace_id)
        if ws is None:
            for kind in ("weekly", "monthly"):
                if self.scheduler.get_job(self.job_id(workspace_id, kind)):  # type: ignore[arg-type]
                    self.scheduler.remove_job(self.job_id(workspace_id, kind))  # type: ignore[arg-type]
            return
        self._apply(ws)
        kinds: tuple[ReportKind, ...] = ("weekly", "monthly") if ws.monthly_post else ("weekly",)
        try:
            async with self._lock(workspace_id):
                await self.run_due(
                    self.services,
                    workspace_id=workspace_id,
                    kinds=kinds,
                    now=self.services.now(),
                    resume_older_than=weekly.STALE_CLAIM,
                )
        except Exception:
            logger.exception("workspace %s: report after rescheduling failed", workspace_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_reschedule(self, workspace_id: int) -> None:
        """The `services.on_reschedule` hook: reschedule in the background (a handler must not
        wait while a report is built)."""
        self._spawn(self.reschedule(workspace_id))

    def spawn_catch_up(self) -> None:
        self._spawn(self.catch_up())

    async def idle(self) -> None:
        """Wait for background reschedules and catch-ups (for tests and orderly stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
