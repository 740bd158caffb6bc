"""Persistence of report runs: one row per workspace, kind and period, claimed exactly once.

A run is inserted "claimed" before anything is built (whoever inserts it owns it), then moved
to "queued" or "skipped" by a conditional update, so only one process can finish it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import insert_ignore
from models.tables import ReportRun

CLAIMED = "claimed"
QUEUED = "queued"
SKIPPED = "skipped"


async def claim_run(
    *, session: AsyncSession, workspace_id: int, kind: str, period_key: str, at: datetime
) -> int | None:
    """Insert the run row; its id, or None when the period is already claimed."""
    return await insert_ignore(
        session,
        ReportRun,
        {
            "workspace_id": workspace_id,
            "kind": kind,
            "period_key": period_key,
            "status": CLAIMED,
            "snapshot": {},
            "claimed_at": at,
        },
        conflict=["workspace_id", "kind", "period_key"],
    )


async def finish_run(
    *,
    session: AsyncSession,
    run_id: int,
    status: str,
    snapshot: dict[str, Any],
    at: datetime,
) -> bool:
    """Move a claimed run to ``status``; False if another process already did."""
    result = await session.execute(
        sa.update(ReportRun)
        .where(col(ReportRun.id) == run_id, col(ReportRun.status) == CLAIMED)
        .values(status=status, snapshot=snapshot, posted_at=at)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def runs_of(
    *, session: AsyncSession, workspace_id: int, kinds: Sequence[str]
) -> list[ReportRun]:
    """Every run of the workspace of these kinds (whatever their status)."""
    stmt = select(ReportRun).where(
        ReportRun.workspace_id == workspace_id, col(ReportRun.kind).in_(list(kinds))
    )
    return list((await session.exec(stmt)).all())


async def abandoned_runs(
    *,
    session: AsyncSession,
    workspace_id: int,
    kinds: Sequence[str],
    now: datetime,
    older_than: timedelta | None,
) -> list[tuple[int, str, str]]:
    """(id, kind, period key) of runs still "claimed" (older than `older_than`), oldest first."""
    stmt = (
        select(ReportRun)
        .where(
            ReportRun.workspace_id == workspace_id,
            ReportRun.status == CLAIMED,
            col(ReportRun.kind).in_(list(kinds)),
        )
        .order_by(col(ReportRun.claimed_at), col(ReportRun.id))
    )
    if older_than is not None:
        stmt = stmt.where(col(ReportRun.claimed_at) <= now - older_than)
    found = []
    for run in (await session.exec(stmt)).all():
        assert run.id is not None
        found.append((run.id, run.kind, run.period_key))
    return found
