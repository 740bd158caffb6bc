"""The profitability report: one structure, rendered as a table, JSON or CSV.

Pure. `models.engine.build_report` fills a `Report` from stored results; `/profit`,
`docket report profitability` and the managers' weekly post all render from it, so they show
the same numbers.

Presentation rules (from models.profitability): each amount of a line is rounded once, half up,
from exact sixtieths; contribution = revenue - direct cost - labour cost of the rounded
amounts; margin % is none at zero revenue; effective rate and contribution per hour are none at
zero hours. A total is presented from the exact sum, so it can differ by a cent from the sum of
the rounded lines. JSON and CSV give amounts as decimal strings ("480.00").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models.money import minutes_to_hours, to_decimal_string
from models.periods import Period
from models.profitability import INT_FIELDS, Figures, Presented, present

NO_CUSTOMER = "(no customer)"
NO_CONTRACT = "(no contract)"


@dataclass(frozen=True)
class Line:
    """Figures of one customer, or of one contract of a customer (exact)."""

    customer_id: int | None
    customer: str
    figures: Figures
    contract_id: int | None = None
    contract: str | None = None
    kind: str | None = None

    @property
    def presented(self) -> Presented:
        return present(self.figures)


@dataclass(frozen=True)
class RestatementItem:
    """A reported period whose figures changed afterwards: what was reported, what is now."""

    id: int
    period_key: str
    customer_id: int | None
    customer: str
    before: Figures
    after: Figures


@dataclass(frozen=True)
class Quality:
    """What the figures are known to miss (minutes), and whether some are being refreshed."""

    uncosted_minutes: int = 0
    unattributed_minutes: int = 0
    unpriced_minutes: int = 0
    missing_rates: tuple[str, ...] = ()
    stale_customers: int = 0
    cost_change_pending: bool = False  # a cost-rate change not yet in the labour costs

    @property
    def clean(self) -> bool:
        return not (
            self.uncosted_minutes
            or self.unattributed_minutes
            or self.unpriced_minutes
            or self.stale_customers
            or self.cost_change_pending
        )


@dataclass(frozen=True)
class Report:
    """Profitability of one period, per customer and per contract, with its notes."""

    period: Period
    currency: str
    total: Figures
    customers: tuple[Line, ...]
    contracts: tuple[Line, ...]
    quality: Quality
    restatements: tuple[RestatementItem, ...] = ()
    customer_filter: tuple[str, ...] | None = None

    @property
    def title(self) -> str:
        scope = f" — {', '.join(self.customer_filter)}" if self.customer_filter else ""
        return f"Profitability {self.period.key}{scope}"

    def customer(self, customer_id: int | None) -> Line | None:
        """The line of one customer, if it has figures this period."""
        return next((line for line in self.customers if line.customer_id == customer_id), None)


def figures_to_json(fig: Figures) -> dict[str, Any]:
    """Exact figures as JSON (ints, plus member ids) for snapshots and restatements."""
    data: dict[str, Any] = {name: getattr(fig, name) for name in INT_FIELDS}
    data["missing_rates"] = sorted(fig.missing_rates)
    return data


def figures_from_json(data: dict[str, Any]) -> Figures:
    """The inverse of `figures_to_json` (missing keys count as zero)."""
    values = {name: int(data.get(name, 0)) for name in INT_FIELDS}
    return Figures(**values, missing_rates=frozenset(int(m) for m in data.get("missing_rates", ())))


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def presented_json(p: Presented) -> dict[str, Any]:
    """A line's presented figures as the report's JSON fields."""
    return {
        "hours": str(p.hours),
        "billable_hours": str(p.billable_hours),
        "revenue": to_decimal_string(p.revenue_minor),
        "labour_cost": to_decimal_string(p.labour_cost_minor),
        "direct_cost": to_decimal_string(p.direct_cost_minor),
        "contribution": to_decimal_string(p.contribution_minor),
        "margin_pct": _dec(p.margin_pct),
        "effective_rate": _dec(p.effective_rate),
        "contribution_per_hour": _dec(p.contribution_per_hour),
    }


def _hours(minutes: int) -> str:
    return str(minutes_to_hours(minutes))


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (the documented `--format json` shape)."""
    return {
        "period": report.period.key,
        "start": report.period.start.isoformat(),
        "end": report.period.end.isoformat(),
        "currency": report.currency,
        "totals": presented_json(present(report.total)),
        "customers": [
            {"customer": line.customer, **presented_json(line.presented)}
            for line in report.customers
        ],
        "contracts": [
            {
                "customer": line.customer,
                "contract": line.contract,
                "kind": line.kind,
                **presented_json(line.presented),
            }
            for line in report.contracts
        ],
        "quality": {
            "uncosted_hours": _hours(report.quality.uncosted_minutes),
            "unattributed_hours": _hours(report.quality.unattributed_minutes),
            "unpriced_hours": _hours(report.quality.unpriced_minutes),
            "missing_rates": list(report.quality.missing_rates),
            "stale_customers": report.quality.stale_customers,
            "cost_change_pending": report.quality.cost_change_pending,
        },
        "restatements": [
            {
                "period": item.period_key,
                "customer": item.customer,
                "before": presented_json(present(item.before)),
                "after": presented_json(present(item.after)),
            }
            for item in report.restatements
        ],
    }


def render_json(report: Report) -> str:
    """`report_json` as indented JSON text."""
    return json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = (
    "period",
    "currency",
    "level",
    "customer",
    "contract",
    "kind",
    "hours",
    "billable_hours",
    "revenue",
    "labour_cost",
    "direct_cost",
    "contribution",
    "margin_pct",
    "effective_rate",
    "contribution_per_hour",
)


def render_csv(report: Report) -> str:
    """One CSV row per customer, per contract, and the total (`level` says which)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def row(level: str, customer: str, contract: str, kind: str, fig: Figures) -> None:
        data = presented_json(present(fig))
        writer.writerow(
            [report.period.key, report.currency, level, customer, contract, kind]
            + ["" if data[k] is None else data[k] for k in CSV_COLUMNS[6:]]
        )

    for line in report.customers:
        row("customer", line.customer, "", "", line.figures)
    for line in report.contracts:
        row("contract", line.customer, line.contract or "", line.kind or "", line.figures)
    row("total", "", "", "", report.total)
    return out.getvalue()


_TABLE_HEAD = (
    "",
    "Hours",
    "Billable",
    "Revenue",
    "Labour",
    "Direct",
    "Contrib.",
    "Margin",
    "Rate/h",
)
_NAME_WIDTH = 24


def _cut(name: str, width: int = _NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _cells(name: str, p: Presented) -> list[str]:
    return [
        _cut(name),
        str(p.hours),
        str(p.billable_hours),
        to_decimal_string(p.revenue_minor),
        to_decimal_string(p.labour_cost_minor),
        to_decimal_string(p.direct_cost_minor),
        to_decimal_string(p.contribution_minor),
        "–" if p.margin_pct is None else f"{p.margin_pct}%",
        "–" if p.effective_rate is None else str(p.effective_rate),
    ]


def _grid(rows: Sequence[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        first = r[0].ljust(widths[0])
        rest = "  ".join(cell.rjust(widths[i + 1]) for i, cell in enumerate(r[1:]))
        lines.append(f"{first}  {rest}".rstrip())
    return lines


def _restatement_text(item: RestatementItem, currency: str) -> str:
    before, after = present(item.before), present(item.after)
    parts = []
    for label, b, a in (
        ("revenue", before.revenue_minor, after.revenue_minor),
        ("labour cost", before.labour_cost_minor, after.labour_cost_minor),
        ("direct cost", before.direct_cost_minor, after.direct_cost_minor),
        ("contribution", before.contribution_minor, after.contribution_minor),
    ):
        if a != b:
            parts.append(f"{label} {to_decimal_string(b)} → {to_decimal_string(a)}")
    if before.minutes != after.minutes:
        parts.append(f"hours {before.hours} → {after.hours}")
    changed = "; ".join(parts) or "details changed"
    return f"{item.period_key} {_cut(item.customer, 40)}: {changed} {currency}"


def quality_notes(report: Report) -> list[str]:
    """Sentences about what the figures miss (empty when nothing is known to be missing)."""
    q = report.quality
    notes = []
    if q.uncosted_minutes:
        who = f" (no cost rate: {', '.join(q.missing_rates)})" if q.missing_rates else ""
        notes.append(f"{_hours(q.uncosted_minutes)} h without a cost rate{who}")
    if q.unattributed_minutes:
        notes.append(f"{_hours(q.unattributed_minutes)} h not on an active contract (no revenue)")
    if q.unpriced_minutes:
        notes.append(f"{_hours(q.unpriced_minutes)} h on hourly contracts without a charge rate")
    if q.stale_customers:
        notes.append(f"figures of {q.stale_customers} customer(s) are being refreshed")
    if q.cost_change_pending:
        notes.append("a cost-rate change is being applied to labour costs")
    return notes


def render_table(report: Report) -> str:
    """The report as fixed-width text: what `/profit` shows and `docket report` prints."""
    p = report.period
    lines = [
        f"{report.title} ({p.start.isoformat()} to {p.end.isoformat()}), amounts in "
        f"{report.currency}",
        "",
    ]
    rows = [list(_TABLE_HEAD)]
    rows[0][0] = "Customer"
    rows += [_cells(line.customer, line.presented) for line in report.customers]
    rows.append(_cells("Total", present(report.total)))
    grid = _grid(rows)
    lines += [grid[0], *grid[1:-1], "-" * len(max(grid, key=len)), grid[-1]]
    if report.contracts:
        rows = [list(_TABLE_HEAD)]
        rows[0][0] = "Contract"
        rows += [
            _cells(f"{line.customer} / {line.contract or NO_CONTRACT}", line.presented)
            for line in report.contracts
        ]
        lines += ["", *_grid(rows)]
    if not report.customers:
        lines += ["", "No time, fees or costs in this period."]
    notes = quality_notes(report)
    if notes:
        lines += ["", "Data quality: " + "; ".join(notes) + "."]
    if report.restatements:
        lines += ["", "Restated since last reported:"]
        lines += [f"  {_restatement_text(item, report.currency)}" for item in report.restatements]
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str) -> str:
    """Render in `fmt`: "table", "json" or "csv"."""
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    raise ValueError(f"unknown format {fmt!r}: use table, json or csv")
