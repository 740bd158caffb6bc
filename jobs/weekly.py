"""The managers' report run: claim the period, build the post, queue it, exactly once.

1. Claim: insert a ReportRun row (unique per workspace, kind and period) in its own
   transaction, before anything is built. Whoever inserts it owns the run; a replica or a
   second fire that finds the row does nothing.
2. Build the summary (reading the same report structures as `/profit` and
   `docket report profitability`) and render the chart, outside any write transaction.
3. In one transaction: move the run from "claimed" to "queued" (a conditional update, so
   only one process can) and queue the post and the chart in the outbox. The outbox keys
   (``report:{workspace}:{kind}:{period}``) make a second queueing a no-op as well.

A process killed between 1 and 3 leaves the run "claimed"; the catch-up at start (and any later
fire, after `STALE_CLAIM`) builds and queues it then.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.services import Services
from handlers.blocks.sla import build_service_levels
from handlers.blocks.weekly import build_weekly_blocks, weekly_fallback_text
from jobs.chart import render_chart
from models.outbox import FileUpload, enqueue, slack_call
from models.periods import Period, local_date, parse_period
from models.profit_bulk import refresh_step
from models.profit_refresh import ensure_horizon
from models.profit_report import mark_restatements_reported
from models.report_runs import (
    QUEUED,
    SKIPPED,
    abandoned_runs,
    claim_run,
    finish_run,
    runs_of,
)
from models.reporting import report_json
from models.sla_report import build_sla_report, margins_by_customer
from models.tables import Workspace
from models.weekly import (
    ReportKind,
    WeeklySummary,
    due_periods,
    effective_report_time,
    post_time,
)
from models.weekly_data import load_post
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)
"""A claim older than this is taken as abandoned by a crashed process (at start: any age)."""


@dataclass(frozen=True)
class RunOutcome:
    """What one attempt at a period's report did."""

    workspace_id: int
    kind: ReportKind
    period_key: str
    status: str  # queued / skipped / taken (someone else owns or finished it)
    reason: str = ""


def outbox_key(workspace_id: int, kind: str, period_key: str) -> str:
    """The idempotency key of a period's post (the chart's adds ":chart")."""
    return f"report:{workspace_id}:{kind}:{period_key}"


def ordering_key(workspace_id: int) -> str:
    # One queue per workspace's reports: catch-up posts arrive oldest first, charts after posts.
    return f"report:{workspace_id}"


# ---------------------------------------------------------------------------------------
# Building the post from the report structures
# ---------------------------------------------------------------------------------------


REFRESH_ROUNDS = 20
REFRESH_BATCH = 50


async def refresh_figures(
    services: Services, *, workspace_id: int, today: date, now: datetime
) -> None:
    """Bring stored results up to date before reporting (the refresh worker may lag).

    Bounded: after a huge import the rest is left to the worker, and the post says figures
    were still being recomputed.
    """
    async with services.transaction() as session:
        await ensure_horizon(session=session, workspace_id=workspace_id, today=today, at=now)
    for _ in range(REFRESH_ROUNDS):
        async with services.transaction() as session:
            stats = await refresh_step(
                session=session,
                workspace_id=workspace_id,
                today=today,
                at=now,
                limit=REFRESH_BATCH,
            )
        if stats.customer_periods == 0:
            return


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def chart_payload(channel: str, kind: str, summary: WeeklySummary, png: bytes) -> FileUpload:
    """The outbox payload of the chart upload."""
    return FileUpload(
        channel=channel,
        filename=f"docket-{kind}-{summary.period.key}.png",
        title=f"Profitability {summary.title}",
        content_b64=base64.b64encode(png).decode("ascii"),
        initial_comment=f"Chart: {summary.title}",
    )


async def _complete(
    services: Services,
    *,
    run_id: int,
    workspace_id: int,
    kind: ReportKind,
    period: Period,
    now: datetime,
) -> RunOutcome:
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=workspace_id)
        channel = ws.managers_channel
        today = local_date(now, workspace_zone(ws))
    if not channel:
        reason = "no managers' channel is set (/docket settings)"
        async with services.transaction() as session:
            done = await finish_run(
                session=session, run_id=run_id, status=SKIPPED, snapshot={"reason": reason}, at=now
            )
        logger.warning("workspace %s: %s %s skipped: %s", workspace_id, kind, period.key, reason)
        return RunOutcome(workspace_id, kind, period.key, SKIPPED if done else "taken", reason)

    await refresh_figures(services, workspace_id=workspace_id, today=today, now=now)
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=workspace_id)
        post = await load_post(session=session, workspace=ws, kind=kind, period=period)
    summary = post.summary
    # matplotlib is CPU work: keep it off the event loop (the Figure API is thread-safe).
    png = await asyncio.to_thread(render_chart, summary.chart)
    blocks = build_weekly_blocks(summary, chart_follows=png is not None)
    async with services.read() as session:
        sla = await build_sla_report(
            session=session, workspace_id=workspace_id, period=period, now=now
        )
    # The service levels go just above the definitions (the last block).
    blocks[-1:-1] = build_service_levels(sla, margins_by_customer(post.report))
    key = outbox_key(workspace_id, kind, period.key)
    async with services.transaction() as session:
        if not await finish_run(
            session=session,
            run_id=run_id,
            status=QUEUED,
            snapshot=report_json(post.report),
            at=now,
        ):
            return RunOutcome(workspace_id, kind, period.key, "taken", "queued by another process")
        await enqueue(
            session=session,
            workspace_id=workspace_id,
            key=key,
            payload=slack_call(
                "chat.postMessage",
                channel=channel,
                text=weekly_fallback_text(summary),
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            ),
            at=now,
            ordering_key=ordering_key(workspace_id),
        )
        if png is not None:
            await enqueue(
                session=session,
                workspace_id=workspace_id,
                key=f"{key}:chart",
                payload=chart_payload(channel, kind, summary, png),
                at=now,
                ordering_key=ordering_key(workspace_id),
            )
        await mark_restatements_reported(
            session=session,
            workspace_id=workspace_id,
            run_id=run_id,
            restatement_ids=[item.id for item in post.report.restatements],
        )
    logger.info("workspace %s: %s report %s queued", workspace_id, kind, period.key)
    return RunOutcome(workspace_id, kind, period.key, QUEUED)


async def run_report(
    services: Services,
    *,
    workspace_id: int,
    kind: ReportKind,
    period: Period,
    now: datetime,
) -> RunOutcome:
    """Claim ``period`` and, if the claim is ours, build and queue its post."""
    async with services.transaction() as session:
        run_id = await claim_run(
            session=session, workspace_id=workspace_id, kind=kind, period_key=period.key, at=now
        )
    if run_id is None:
        return RunOutcome(workspace_id, kind, period.key, "taken", "already claimed")
    return await _complete(
        services,
        run_id=run_id,
        workspace_id=workspace_id,
        kind=kind,
        period=period,
        now=now,
    )


async def resume_claimed(
    services: Services,
    *,
    workspace_id: int,
    now: datetime,
    older_than: timedelta | None,
) -> list[RunOutcome]:
    """Build and queue runs left "claimed" by a process that died (oldest first).

    Safe to race with the claimer itself: only one process can move the run to "queued",
    and the outbox keys would make a second queueing a no-op anyway.
    """
    async with services.read() as session:
        stuck = await abandoned_runs(
            session=session,
            workspace_id=workspace_id,
            kinds=("weekly", "monthly"),
            now=now,
            older_than=older_than,
        )
    outcomes = []
    for run_id, kind, period_key in stuck:
        period = parse_period(period_key, today=now.date())
        logger.warning(
            "workspace %s: resuming abandoned %s report %s", workspace_id, kind, period_key
        )
        outcomes.append(
            await _complete(
                services,
                run_id=run_id,
                workspace_id=workspace_id,
                kind=kind,  # type: ignore[arg-type]
                period=period,
                now=now,
            )
        )
    return outcomes


async def run_due(
    services: Services,
    *,
    workspace_id: int,
    kinds: Sequence[ReportKind] = ("weekly", "monthly"),
    now: datetime,
    resume_older_than: timedelta | None = STALE_CLAIM,
) -> list[RunOutcome]:
    """Finish abandoned runs, then post every due, unclaimed period, oldest first."""
    outcomes = await resume_claimed(
        services, workspace_id=workspace_id, now=now, older_than=resume_older_than
    )
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=workspace_id)
        taken = {
            (r.kind, r.period_key)
            for r in await runs_of(session=session, workspace_id=workspace_id, kinds=kinds)
        }
    tz = workspace_zone(ws)
    at, _why = effective_report_time(ws.report_time)
    weekday = ws.report_weekday if 0 <= ws.report_weekday <= 6 else 0
    due: list[tuple[datetime, ReportKind, Period]] = []
    for kind in kinds:
        if kind == "monthly" and not ws.monthly_post:
            continue
        since = reporting_since(ws, kind)
        for period in due_periods(kind, now=now, tz=tz, weekday=weekday, at=at, since=since):
            if (kind, period.key) not in taken:
                due.append((post_time(kind, period, tz=tz, weekday=weekday, at=at), kind, period))
    due.sort(key=lambda item: (item[0], item[1] == "monthly"))
    for _when, kind, period in due:
        outcomes.append(
            await run_report(services, workspace_id=workspace_id, kind=kind, period=period, now=now)
        )
    return outcomes


def workspace_zone(ws: Workspace) -> ZoneInfo:
    """The workspace's time zone; UTC (with a warning) if the stored name is unknown."""
    try:
        return ZoneInfo(ws.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("workspace %s: unknown timezone %r, using UTC", ws.id, ws.timezone)
        return ZoneInfo("UTC")


def reporting_since(ws: Workspace, kind: ReportKind) -> datetime:
    """Posts due before this instant are never caught up: the workspace did not report yet.

    The workspace's creation, and for monthly posts the moment they were last switched on
    (``settings["monthly_post_since"]``, written by /docket settings).
    """
    since = ws.created_at
    if kind == "monthly":
        raw = (ws.settings or {}).get("monthly_post_since")
        if isinstance(raw, str):
            try:
                since = max(since, datetime.fromisoformat(raw))
            except ValueError:
                logger.warning("workspace %s: bad monthly_post_since %r", ws.id, raw)
    return since
