"""Reading a period's managers' summary: the same report structures as `/profit` and
`docket report profitability`, plus the history, break-even and gap figures the post adds.

Shared by the scheduled post (jobs/weekly.py), `/profit week|month` and `docket demo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.periods import Period, month_of, previous
from models.profit_report import build_report
from models.reporting import Report
from models.tables import Contract, ContractKind, TimeEntry, Workspace
from models.weekly import (
    CHART_LENGTH,
    ReportKind,
    TicketGaps,
    WeeklySummary,
    build_summary,
    fixed_fee_usages,
)


@dataclass(frozen=True)
class WeeklyPost:
    """A period's post: the summary, and the report it was made from (the run's snapshot)."""

    summary: WeeklySummary
    report: Report


def _check_period(kind: ReportKind, period: Period) -> None:
    wanted = "week" if kind == "weekly" else "month"
    if period.kind != wanted:
        raise ValueError(f"a {kind} report is of a {wanted}, not {period}")


async def ticket_gaps(*, session: AsyncSession, workspace_id: int, period: Period) -> TicketGaps:
    """Tickets with time in ``period`` but no contract (an entry takes its ticket's contract)."""
    te: Any = TimeEntry.__table__  # type: ignore[attr-defined]
    stmt = sa.select(
        sa.func.count(sa.distinct(te.c.ticket_id)), sa.func.coalesce(sa.func.sum(te.c.minutes), 0)
    ).where(
        te.c.workspace_id == workspace_id,
        te.c.ticket_id.is_not(None),
        te.c.contract_id.is_(None),
        te.c.work_date >= period.start,
        te.c.work_date <= period.end,
    )
    tickets, minutes = (await session.execute(stmt)).one()
    return TicketGaps(tickets=int(tickets), minutes=int(minutes))


async def fixed_fees(*, session: AsyncSession, workspace_id: int) -> dict[int, tuple[int, int]]:
    """Fixed-fee contracts: id -> (monthly fee, monthly direct cost), minor units."""
    stmt = select(
        Contract.id, Contract.monthly_fee_minor, Contract.monthly_direct_cost_minor
    ).where(Contract.workspace_id == workspace_id, Contract.kind == ContractKind.FIXED)
    rows = (await session.exec(stmt)).all()
    return {int(i or 0): (int(fee), int(direct)) for i, fee, direct in rows}


async def load_post(
    *, session: AsyncSession, workspace: Workspace, kind: ReportKind, period: Period
) -> WeeklyPost:
    """The post of ``period`` from `models.engine.build_report`: the same report structure that
    `/profit` and `docket report profitability` render, so the figures are the same.

    History (for the change, trend and chart) is the reports of the periods before; break-even
    uses the report of the month the period ends in.
    """
    assert workspace.id is not None
    ws_id = workspace.id
    _check_period(kind, period)
    current = await build_report(session=session, workspace_id=ws_id, period=period)
    history: list[Report] = []
    earlier = period
    for _ in range(CHART_LENGTH - 1):
        earlier = previous(earlier)
        history.append(await build_report(session=session, workspace_id=ws_id, period=earlier))
    history.reverse()
    month = period if kind == "monthly" else month_of(period.end)
    month_report = (
        current
        if month == period
        else await build_report(session=session, workspace_id=ws_id, period=month)
    )
    usages, fallback = fixed_fee_usages(
        month_report, await fixed_fees(session=session, workspace_id=ws_id)
    )
    summary = build_summary(
        kind=kind,
        current=current,
        history=history,
        target_margin_pct=workspace.target_margin_pct,
        fixed_fees=usages,
        fallback_cost_rate_minor=fallback,
        gaps=await ticket_gaps(session=session, workspace_id=ws_id, period=period),
    )
    return WeeklyPost(summary=summary, report=current)


async def load_summary(
    *, session: AsyncSession, workspace: Workspace, kind: ReportKind, period: Period
) -> WeeklySummary:
    """The summary of ``period`` (what `/profit week` renders with `build_weekly_blocks`)."""
    post = await load_post(session=session, workspace=workspace, kind=kind, period=period)
    return post.summary
