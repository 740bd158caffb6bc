"""Profitability reports from stored results: `/profit`, the weekly and monthly posts and
`docket report profitability` all read `build_report`, and `record_report_run` records what
was reported (later changes to it are restated).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import cost_changes
from models.periods import Period
from models.profit_store import (
    PERIOD_KINDS,
    figures_of_row,
    period_of,
)
from models.profitability import (
    Figures,
    RowKey,
    sum_figures,
)
from models.reporting import (
    NO_CONTRACT,
    NO_CUSTOMER,
    Line,
    Quality,
    Report,
    RestatementItem,
    figures_from_json,
    report_json,
)
from models.tables import (
    Contract,
    Customer,
    Member,
    ProfitResult,
    ReportRun,
    Restatement,
    StalePeriod,
    Workspace,
)

# Core tables (typed Any): plain-column queries return rows, never ORM objects.
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]
_SP: Any = StalePeriod.__table__  # type: ignore[attr-defined]
_CO: Any = Contract.__table__  # type: ignore[attr-defined]
_CU: Any = Customer.__table__  # type: ignore[attr-defined]
_ME: Any = Member.__table__  # type: ignore[attr-defined]


async def _names(
    session: AsyncSession, workspace_id: int
) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
    customer_rows = await session.execute(
        sa.select(_CU.c.id, _CU.c.name).where(_CU.c.workspace_id == workspace_id)
    )
    contract_rows = await session.execute(
        sa.select(_CO.c.id, _CO.c.name, _CO.c.kind).where(_CO.c.workspace_id == workspace_id)
    )
    customers = {int(i): str(n) for i, n in customer_rows.all()}
    contracts = {int(i): (str(n), str(k)) for i, n, k in contract_rows.all()}
    return customers, contracts


def _sort_name(name: str, customer_id: int | None) -> tuple[int, str]:
    return (1 if customer_id is None else 0, name.casefold())


async def stored_rows(
    *,
    session: AsyncSession,
    workspace_id: int,
    period: Period,
    customer_ids: Collection[int | None] | None = None,
) -> dict[RowKey, Figures]:
    """The stored exact figures of a week or month per (customer, contract)."""
    stmt = sa.select(_PR).where(
        _PR.c.workspace_id == workspace_id,
        _PR.c.period_kind == period.kind,
        _PR.c.period_start == period.start,
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds = [_PR.c.customer_id.in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(_PR.c.customer_id.is_(None))
        stmt = stmt.where(sa.or_(*conds) if conds else sa.false())
    rows: dict[RowKey, Figures] = {}
    for row in (await session.execute(stmt)).mappings().all():
        key = (row["customer_id"], int(row["contract_key"]) or None)
        rows[key] = figures_of_row(row)
    return rows


async def build_report(
    *,
    session: AsyncSession,
    workspace_id: int,
    period: Period,
    customer_ids: Collection[int | None] | None = None,
    restatement_kinds: Collection[str] | None = None,
) -> Report:
    """The report of a week or month from stored results (see models.reporting).

    `customer_ids` limits it to some customers (None: everyone; include None for time against
    no customer). Restatements listed: those not yet reported, of the same period kind as
    `period` unless `restatement_kinds` says otherwise, for the same customers.
    """
    if period.kind not in PERIOD_KINDS:
        raise ValueError(f"results are kept for weeks and months, not {period.kind!r}")
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    customer_names, contract_names = await _names(session, workspace_id)
    rows = await stored_rows(
        session=session, workspace_id=workspace_id, period=period, customer_ids=customer_ids
    )

    def customer_name(customer_id: int | None) -> str:
        if customer_id is None:
            return NO_CUSTOMER
        return customer_names.get(customer_id, f"customer {customer_id}")

    per_customer: dict[int | None, Figures] = {}
    contract_lines = []
    for (customer_id, contract_id), fig in rows.items():
        per_customer[customer_id] = per_customer.get(customer_id, Figures()) + fig
        name, kind = (
            contract_names.get(contract_id, (NO_CONTRACT, None))
            if contract_id
            else (
                NO_CONTRACT,
                None,
            )
        )
        contract_lines.append(
            Line(
                customer_id=customer_id,
                customer=customer_name(customer_id),
                figures=fig,
                contract_id=contract_id,
                contract=name,
                kind=kind,
            )
        )
    customers = sorted(
        (
            Line(customer_id=c, customer=customer_name(c), figures=f)
            for c, f in per_customer.items()
        ),
        key=lambda line: _sort_name(line.customer, line.customer_id),
    )
    contract_lines.sort(
        key=lambda line: (
            *_sort_name(line.customer, line.customer_id),
            line.contract_id is None,
            (line.contract or "").casefold(),
        )
    )
    total = sum_figures(rows.values())
    missing = sorted(total.missing_rates)
    member_names: dict[int, str] = {}
    if missing:
        member_rows = await session.execute(
            sa.select(_ME.c.id, _ME.c.name, _ME.c.email).where(_ME.c.id.in_(missing))
        )
        member_names = {int(i): str(n or e or f"member {i}") for i, n, e in member_rows.all()}
    stale_stmt = sa.select(
        sa.func.count(sa.distinct(sa.func.coalesce(_SP.c.customer_id, 0)))
    ).where(
        _SP.c.workspace_id == workspace_id,
        _SP.c.period_kind == period.kind,
        _SP.c.period_start == period.start,
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds = [_SP.c.customer_id.in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(_SP.c.customer_id.is_(None))
        stale_stmt = stale_stmt.where(sa.or_(*conds) if conds else sa.false())
    quality = Quality(
        uncosted_minutes=total.uncosted_minutes,
        unattributed_minutes=total.unattributed_minutes,
        unpriced_minutes=total.unpriced_minutes,
        missing_rates=tuple(
            sorted((member_names.get(m, f"member {m}") for m in missing), key=str.casefold)
        ),
        stale_customers=int((await session.execute(stale_stmt)).scalar_one()),
        cost_change_pending=await cost_changes.has_pending(session, workspace_id),
    )
    restatements = await pending_restatements(
        session=session,
        workspace_id=workspace_id,
        kinds=(period.kind,) if restatement_kinds is None else restatement_kinds,
        customer_ids=customer_ids,
    )
    return Report(
        period=period,
        currency=ws.currency,
        total=total,
        customers=tuple(customers),
        contracts=tuple(contract_lines),
        quality=quality,
        restatements=tuple(
            RestatementItem(
                id=r.id or 0,
                period_key=period_of(r.period_kind, r.period_start).key,
                customer_id=r.customer_id,
                customer=customer_name(r.customer_id),
                before=figures_from_json(r.before),
                after=figures_from_json(r.after),
            )
            for r in restatements
        ),
        customer_filter=(
            tuple(customer_name(c) for c in customer_ids) if customer_ids is not None else None
        ),
    )


async def pending_restatements(
    *,
    session: AsyncSession,
    workspace_id: int,
    kinds: Collection[str] = PERIOD_KINDS,
    customer_ids: Collection[int | None] | None = None,
) -> list[Restatement]:
    """Restatements not yet listed in a report, oldest period first."""
    stmt = select(Restatement).where(
        Restatement.workspace_id == workspace_id,
        col(Restatement.reported_in_run_id).is_(None),
        col(Restatement.period_kind).in_(list(kinds)),
    )
    if customer_ids is not None:
        ids = [c for c in customer_ids if c is not None]
        conds: list[Any] = [col(Restatement.customer_id).in_(ids)] if ids else []
        if None in customer_ids:
            conds.append(col(Restatement.customer_id).is_(None))
        stmt = stmt.where(sa.or_(*conds) if conds else sa.false())
    stmt = stmt.order_by(col(Restatement.period_start), col(Restatement.id))
    return list((await session.exec(stmt)).all())


async def mark_restatements_reported(
    *, session: AsyncSession, workspace_id: int, run_id: int, restatement_ids: Collection[int]
) -> int:
    """Record that a report run listed these restatements; returns how many were pending."""
    if not restatement_ids:
        return 0
    result = await session.execute(
        sa.update(Restatement)
        .where(
            col(Restatement.workspace_id) == workspace_id,
            col(Restatement.id).in_(list(restatement_ids)),
            col(Restatement.reported_in_run_id).is_(None),
        )
        .values(reported_in_run_id=run_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def record_report_run(
    *, session: AsyncSession, workspace_id: int, kind: str, report: Report, at: datetime
) -> ReportRun:
    """Record that `report` was reported (kind "final", "weekly" or "monthly"): the run keeps
    the JSON snapshot, the period counts as reported from now on (later changes restate it),
    and the restatements the report listed are marked as reported in this run.

    Reporting the same kind and period again updates the run's snapshot.
    """
    stmt = select(ReportRun).where(
        ReportRun.workspace_id == workspace_id,
        ReportRun.kind == kind,
        ReportRun.period_key == report.period.key,
    )
    run = (await session.exec(stmt)).first()
    if run is None:
        run = ReportRun(
            workspace_id=workspace_id, kind=kind, period_key=report.period.key, claimed_at=at
        )
    run.status = "final" if kind == "final" else "posted"
    run.snapshot = report_json(report)
    run.posted_at = at
    session.add(run)
    await session.flush()
    assert run.id is not None
    await mark_restatements_reported(
        session=session,
        workspace_id=workspace_id,
        run_id=run.id,
        restatement_ids=[item.id for item in report.restatements],
    )
    return run
