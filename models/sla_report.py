"""How each customer was served: the SLA report of the tickets created in a period.

`build_sla_report` evaluates every ticket with the same rules and history the card uses
(models.sla, models.sla_store), at one moment `now`; the renderers are pure.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.periods import Period
from models.sla import Target, TargetState, TargetStatus
from models.sla_store import ticket_states, workspace_calendar
from models.tables import Customer, Ticket

NO_CUSTOMER = "(no customer)"


@dataclass(frozen=True)
class TicketLine:
    number: int
    customer: str | None
    priority: str
    states: dict[Target, TargetState]


@dataclass
class CustomerLine:
    """Counts per customer; medians over the tickets whose first response has stopped."""

    customer: str
    counts: dict[tuple[Target, TargetStatus], int] = field(default_factory=dict)
    first_response_minutes: list[int] = field(default_factory=list)

    def count(self, target: Target, status: TargetStatus) -> int:
        return self.counts.get((target, status), 0)

    @property
    def median_first_response(self) -> float | int | None:
        if not self.first_response_minutes:
            return None
        median = statistics.median(self.first_response_minutes)
        return int(median) if float(median).is_integer() else float(median)

    def met_pct(self) -> int | None:
        """Share of finished targets (both kinds) that were met, in whole percent."""
        met = sum(self.count(t, TargetStatus.MET) for t in Target)
        breached = sum(self.count(t, TargetStatus.BREACHED) for t in Target)
        return None if met + breached == 0 else round(100 * met / (met + breached))


@dataclass(frozen=True)
class SlaReport:
    period: Period
    zone_name: str
    now: datetime
    tickets: list[TicketLine]
    customers: list[CustomerLine]


async def build_sla_report(
    *,
    session: AsyncSession,
    workspace_id: int,
    period: Period,
    now: datetime,
    customer_ids: list[int] | None = None,
) -> SlaReport:
    """Every ticket created in `period` (workspace dates) with both targets at `now`."""
    calendar = await workspace_calendar(session=session, workspace_id=workspace_id)
    zone = calendar.zone
    start = datetime.combine(period.start, time(0), tzinfo=zone)
    end = datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=zone)
    where = [
        col(Ticket.workspace_id) == workspace_id,
        col(Ticket.created_at) >= start,
        col(Ticket.created_at) < end,
    ]
    if customer_ids is not None:
        where.append(col(Ticket.customer_id).in_(customer_ids))
    stmt = select(Ticket).where(*where).order_by(col(Ticket.number))
    tickets = list((await session.exec(stmt)).all())
    states = await ticket_states(
        session=session, workspace_id=workspace_id, tickets=tickets, now=now
    )
    names = dict(
        (
            await session.exec(
                select(Customer.id, Customer.name).where(Customer.workspace_id == workspace_id)
            )
        ).all()
    )
    lines: list[TicketLine] = []
    customers: dict[str, CustomerLine] = {}
    for ticket in tickets:
        assert ticket.id is not None
        name = names.get(ticket.customer_id) if ticket.customer_id is not None else None
        line = TicketLine(ticket.number, name, ticket.priority, states[ticket.id])
        lines.append(line)
        summary = customers.setdefault(name or NO_CUSTOMER, CustomerLine(name or NO_CUSTOMER))
        for target, state in line.states.items():
            key = (target, state.status)
            summary.counts[key] = summary.counts.get(key, 0) + 1
        first = line.states[Target.FIRST_RESPONSE]
        if first.status in (TargetStatus.MET, TargetStatus.BREACHED):
            summary.first_response_minutes.append(first.used_minutes)
    ordered = sorted(customers.values(), key=lambda c: (c.customer == NO_CUSTOMER, c.customer))
    return SlaReport(period, zone.key, now, lines, ordered)


def _due(state: TargetState, report: SlaReport) -> str | None:
    if state.due is None:
        return None
    return state.due.astimezone(ZoneInfo(report.zone_name)).isoformat(timespec="minutes")


def _target_json(state: TargetState, report: SlaReport) -> dict[str, Any]:
    return {
        "target_minutes": state.target_minutes,
        "used_minutes": state.used_minutes if state.status != TargetStatus.NONE else None,
        "status": state.status.value,
        "due": _due(state, report),
    }


def sla_report_json(report: SlaReport) -> dict[str, Any]:
    """The report as plain data (the JSON shape is documented in docs/sla.md)."""
    return {
        "period": report.period.key,
        "tickets": [
            {
                "number": t.number,
                "customer": t.customer,
                "priority": t.priority,
                "first_response": _target_json(t.states[Target.FIRST_RESPONSE], report),
                "resolution": _target_json(t.states[Target.RESOLUTION], report),
            }
            for t in report.tickets
        ],
        "customers": [
            {
                "customer": c.customer,
                "first_response_met": c.count(Target.FIRST_RESPONSE, TargetStatus.MET),
                "first_response_breached": c.count(Target.FIRST_RESPONSE, TargetStatus.BREACHED),
                "resolution_met": c.count(Target.RESOLUTION, TargetStatus.MET),
                "resolution_breached": c.count(Target.RESOLUTION, TargetStatus.BREACHED),
                "median_first_response_minutes": c.median_first_response,
            }
            for c in report.customers
        ],
    }


CSV_COLUMNS = (
    "period",
    "number",
    "customer",
    "priority",
    "first_response_target_minutes",
    "first_response_used_minutes",
    "first_response_status",
    "first_response_due",
    "resolution_target_minutes",
    "resolution_used_minutes",
    "resolution_status",
    "resolution_due",
)


def render_sla_csv(report: SlaReport) -> str:
    """One CSV row per ticket."""
    data = sla_report_json(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in data["tickets"]:
        cells: list[Any] = [data["period"], t["number"], t["customer"] or "", t["priority"]]
        for target in ("first_response", "resolution"):
            part = t[target]
            cells += [part["target_minutes"], part["used_minutes"], part["status"], part["due"]]
        writer.writerow(["" if c is None else c for c in cells])
    return out.getvalue()


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]


def render_sla_table(report: SlaReport) -> str:
    """Per customer: met / breached / running per target and the median first response."""
    p = report.period
    lines = [f"Service levels {p.key} ({p.start.isoformat()} to {p.end.isoformat()})", ""]
    rows = [
        [
            "Customer",
            "FR met",
            "FR breached",
            "FR running",
            "Res met",
            "Res breached",
            "Res running",
            "Median FR (min)",
        ]
    ]
    for c in report.customers:
        median = c.median_first_response
        rows.append(
            [
                c.customer,
                *(
                    str(c.count(t, s))
                    for t in Target
                    for s in (TargetStatus.MET, TargetStatus.BREACHED, TargetStatus.RUNNING)
                ),
                "-" if median is None else str(median),
            ]
        )
    lines += _grid(rows) if report.customers else ["No tickets were created in this period."]
    return "\n".join(lines) + "\n"


def render_sla(report: SlaReport, fmt: str) -> str:
    """Render in `fmt`: "table", "json" or "csv"."""
    if fmt == "table":
        return render_sla_table(report)
    if fmt == "json":
        return json.dumps(sla_report_json(report), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return render_sla_csv(report)
    raise ValueError(f"unknown format {fmt!r}: use table, json or csv")


def margins_by_customer(report: Any) -> dict[str, Any]:
    """Margin % by customer name from a profitability report (models.engine.Report)."""
    return {line.customer: line.presented.margin_pct for line in report.customers}
