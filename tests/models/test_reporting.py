"""The report structure and its renderings (pure)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from models.periods import month_of, week_of
from models.profitability import Figures
from models.reporting import (
    CSV_COLUMNS,
    NO_CUSTOMER,
    Line,
    Quality,
    Report,
    RestatementItem,
    figures_from_json,
    figures_to_json,
    render,
    render_csv,
    render_json,
    render_table,
    report_json,
)

# Two customers whose revenue is 100.005 each in exact sixtieths: each line rounds up to
# 100.01, the exact total 200.01 (not 200.02): rounding happens once per presented amount.
HALF_CENT = 10_000 * 60 + 30
ACME = Figures(minutes=90, billable_minutes=90, revenue_60=HALF_CENT, labour_cost_60=4500 * 60)
BETA = Figures(minutes=30, billable_minutes=0, revenue_60=HALF_CENT, direct_cost_60=1000 * 60)
INTERNAL = Figures(
    minutes=20,
    labour_cost_60=20 * 3000,
    uncosted_minutes=0,
    unattributed_minutes=20,
)


def _report(**overrides: object) -> Report:
    values: dict[str, object] = {
        "period": week_of(date(2025, 6, 2)),
        "currency": "EUR",
        "total": ACME + BETA + INTERNAL,
        "customers": (
            Line(customer_id=1, customer="Acme", figures=ACME),
            Line(customer_id=2, customer="Beta", figures=BETA),
            Line(customer_id=None, customer=NO_CUSTOMER, figures=INTERNAL),
        ),
        "contracts": (
            Line(1, "Acme", ACME, contract_id=7, contract="Support", kind="hourly"),
            Line(2, "Beta", BETA, contract_id=8, contract="Managed", kind="fixed"),
            Line(None, NO_CUSTOMER, INTERNAL, contract=None),
        ),
        "quality": Quality(unattributed_minutes=20, uncosted_minutes=45, missing_rates=("Carol",)),
        "restatements": (
            RestatementItem(
                id=3,
                period_key="2025-W22",
                customer_id=1,
                customer="Acme",
                before=Figures(minutes=60, revenue_60=12_000 * 60),
                after=Figures(minutes=90, revenue_60=18_000 * 60),
            ),
        ),
    }
    values.update(overrides)
    return Report(**values)  # type: ignore[arg-type]


def test_json_shape_and_rounding_once() -> None:
    data = report_json(_report())
    assert list(data) == [
        "period",
        "start",
        "end",
        "currency",
        "totals",
        "customers",
        "contracts",
        "quality",
        "restatements",
    ]
    assert (data["period"], data["start"], data["end"]) == ("2025-W23", "2025-06-02", "2025-06-08")
    acme, beta, internal = data["customers"]
    assert acme == {
        "customer": "Acme",
        "hours": "1.50",
        "billable_hours": "1.50",
        "revenue": "100.01",
        "labour_cost": "45.00",
        "direct_cost": "0.00",
        "contribution": "55.01",
        "margin_pct": "55.00",
        "effective_rate": "66.67",
        "contribution_per_hour": "36.67",
    }
    assert beta["revenue"] == "100.01" and beta["contribution"] == "90.01"
    assert internal["margin_pct"] is None  # no revenue: no margin
    assert data["totals"]["revenue"] == "200.01"  # from the exact sum, not 200.02
    assert data["contracts"][0]["kind"] == "hourly"
    assert data["quality"] == {
        "uncosted_hours": "0.75",
        "unattributed_hours": "0.33",
        "unpriced_hours": "0.00",
        "missing_rates": ["Carol"],
        "stale_customers": 0,
        "cost_change_pending": False,
    }
    (restated,) = data["restatements"]
    assert (restated["before"]["revenue"], restated["after"]["revenue"]) == ("120.00", "180.00")
    assert json.loads(render_json(_report())) == data


def test_no_hours_means_no_rate() -> None:
    fixed_only = Figures(revenue_60=10_000 * 60)
    data = report_json(_report(customers=(Line(1, "Acme", fixed_only),), total=fixed_only))
    assert data["customers"][0]["effective_rate"] is None
    assert data["customers"][0]["contribution_per_hour"] is None


def test_csv_has_a_row_per_customer_contract_and_the_total() -> None:
    rows = list(csv.reader(io.StringIO(render_csv(_report()))))
    assert tuple(rows[0]) == CSV_COLUMNS
    levels = [(r[2], r[3], r[4]) for r in rows[1:]]
    assert levels == [
        ("customer", "Acme", ""),
        ("customer", "Beta", ""),
        ("customer", NO_CUSTOMER, ""),
        ("contract", "Acme", "Support"),
        ("contract", "Beta", "Managed"),
        ("contract", NO_CUSTOMER, ""),
        ("total", "", ""),
    ]
    assert rows[-1][8] == "200.01" and rows[3][12] == ""  # margin left empty when none


def test_the_table() -> None:
    table = render_table(_report())
    lines = table.splitlines()
    assert lines[0] == ("Profitability 2025-W23 (2025-06-02 to 2025-06-08), amounts in EUR")
    assert lines[2].split() == [
        "Customer",
        "Hours",
        "Billable",
        "Revenue",
        "Labour",
        "Direct",
        "Contrib.",
        "Margin",
        "Rate/h",
    ]
    assert lines[3].split() == [
        "Acme",
        "1.50",
        "1.50",
        "100.01",
        "45.00",
        "0.00",
        "55.01",
        "55.00%",
        "66.67",
    ]
    assert set(lines[6]) == {"-"}
    assert lines[7].split()[0:4] == ["Total", "2.33", "1.50", "200.01"]
    assert "Data quality: 0.75 h without a cost rate (no cost rate: Carol); " in table
    assert "0.33 h not on an active contract (no revenue)." in table
    assert "2025-W22 Acme: revenue 120.00 → 180.00; contribution 120.00 → 180.00; " in table
    # Columns line up: every number column ends at the same place.
    assert len({len(line) for line in lines[2:6]}) == 1


def test_an_empty_period_says_so() -> None:
    empty = _report(customers=(), contracts=(), total=Figures(), quality=Quality(), restatements=())
    table = render_table(empty)
    assert "No time, fees or costs in this period." in table
    assert "Data quality" not in table and "Restated" not in table


def test_title_names_the_customer_filter() -> None:
    assert _report(customer_filter=("Acme",)).title == "Profitability 2025-W23 — Acme"
    assert _report(period=month_of(date(2025, 6, 1))).title == "Profitability 2025-06"


def test_figures_json_round_trip() -> None:
    fig = Figures(minutes=5, revenue_60=7, missing_rates=frozenset({3, 1}))
    data = figures_to_json(fig)
    assert data["missing_rates"] == [1, 3]
    assert figures_from_json(json.loads(json.dumps(data))) == fig


def test_render_dispatch() -> None:
    report = _report()
    assert render(report, "table") == render_table(report)
    assert render(report, "csv") == render_csv(report)
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "xml")
