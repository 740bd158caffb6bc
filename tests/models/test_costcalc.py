"""The fully loaded cost-rate calculator and its audit breakdown."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.costcalc import METHOD, CostBreakdown, loaded_hourly_cost


def test_worked_example() -> None:
    # 60,000.00 salary + 20 % on-costs (12,000.00) + 3,000.00 benefits + 5,000.00 overhead
    # = 80,000.00 a year over 220 x 7.5 = 1,650 hours = 48.4848... -> 48.48 an hour.
    breakdown = loaded_hourly_cost(
        yearly_salary_minor=6_000_000,
        on_costs_pct=Decimal("20"),
        benefits_minor_per_year=300_000,
        overhead_minor_per_year=500_000,
    )
    assert breakdown == CostBreakdown(
        method=METHOD,
        yearly_salary_minor=6_000_000,
        on_costs_pct="20",
        on_costs_minor=1_200_000,
        benefits_minor=300_000,
        overhead_minor=500_000,
        total_yearly_minor=8_000_000,
        working_days=220,
        hours_per_day="7.5",
        yearly_hours="1650.0",
        hourly_cost_minor=4848,
    )


@pytest.mark.parametrize(
    ("salary", "pct", "benefits", "overhead", "days", "hours", "on_costs", "hourly"),
    [
        # 4,950,825 / 1,650 = 3,000.5 exactly: half up.
        (4_950_825, Decimal(0), 0, 0, 220, Decimal("7.5"), 0, 3001),
        (4_950_824, Decimal(0), 0, 0, 220, Decimal("7.5"), 0, 3000),
        # On-costs 0.5 of a minor unit round up; 12,345 x 13.8 % = 1,703.61 -> 1,704.
        (1, Decimal(50), 0, 0, 220, Decimal("7.5"), 1, 0),
        (12_345, Decimal("13.8"), 0, 0, 1, Decimal(1), 1704, 14_049),
        # 8 hours a day as an int, 200 days: 1,600 hours.
        (8_000_000, Decimal("12.5"), 0, 0, 200, 8, 1_000_000, 5625),
        (0, Decimal(0), 0, 0, 220, Decimal("7.5"), 0, 0),
        (0, Decimal(0), 165_000, 0, 220, Decimal("7.5"), 0, 100),
    ],
)
def test_rounding_cases(
    salary: int,
    pct: Decimal,
    benefits: int,
    overhead: int,
    days: int,
    hours: Decimal | int,
    on_costs: int,
    hourly: int,
) -> None:
    breakdown = loaded_hourly_cost(
        yearly_salary_minor=salary,
        on_costs_pct=pct,
        benefits_minor_per_year=benefits,
        overhead_minor_per_year=overhead,
        working_days=days,
        hours_per_day=hours,
    )
    assert breakdown.on_costs_minor == on_costs
    assert breakdown.hourly_cost_minor == hourly


def test_breakdown_is_json_of_ints_and_strings() -> None:
    breakdown = loaded_hourly_cost(
        yearly_salary_minor=5_500_000, on_costs_pct=Decimal("21.25"), hours_per_day=8
    )
    data = breakdown.as_json()
    assert all(type(value) in (int, str) for value in data.values())
    assert json.loads(json.dumps(data)) == data
    assert CostBreakdown(**data) == breakdown  # type: ignore[arg-type]
    assert data["yearly_hours"] == "1760"
    assert data["on_costs_pct"] == "21.25"


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"yearly_salary_minor": -1}, ValueError, "yearly salary"),
        ({"benefits_minor_per_year": -1}, ValueError, "benefits"),
        ({"overhead_minor_per_year": -1}, ValueError, "overhead"),
        ({"on_costs_pct": Decimal("-0.01")}, ValueError, "on-costs percent"),
        ({"on_costs_pct": Decimal("500.01")}, ValueError, "on-costs percent"),
        ({"on_costs_pct": Decimal("NaN")}, ValueError, "on-costs percent"),
        ({"on_costs_pct": 20.0}, TypeError, "on-costs percent"),
        ({"hours_per_day": Decimal(0)}, ValueError, "hours per day"),
        ({"hours_per_day": Decimal("24.5")}, ValueError, "hours per day"),
        ({"working_days": 0}, ValueError, "working days"),
        ({"working_days": 367}, ValueError, "working days"),
        ({"working_days": 220.0}, TypeError, "working days"),
        ({"yearly_salary_minor": 60000.0}, TypeError, "yearly salary"),
    ],
)
def test_refuses_bad_inputs(changes: dict[str, object], error: type[Exception], words: str) -> None:
    inputs: dict[str, object] = {"yearly_salary_minor": 6_000_000, "on_costs_pct": Decimal(20)}
    inputs.update(changes)
    with pytest.raises(error, match=words):
        loaded_hourly_cost(**inputs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    salary=st.integers(min_value=0, max_value=50_000_000),
    pct=st.decimals(min_value=0, max_value=100, places=2),
    benefits=st.integers(min_value=0, max_value=5_000_000),
    overhead=st.integers(min_value=0, max_value=5_000_000),
    days=st.integers(min_value=1, max_value=366),
    hours=st.decimals(min_value=Decimal("0.25"), max_value=12, places=2),
)
def test_hourly_cost_is_the_nearest_minor_unit(
    salary: int, pct: Decimal, benefits: int, overhead: int, days: int, hours: Decimal
) -> None:
    b = loaded_hourly_cost(
        yearly_salary_minor=salary,
        on_costs_pct=pct,
        benefits_minor_per_year=benefits,
        overhead_minor_per_year=overhead,
        working_days=days,
        hours_per_day=hours,
    )
    assert b.total_yearly_minor == salary + b.on_costs_minor + benefits + overhead
    assert abs(b.on_costs_minor - Fraction(salary) * Fraction(pct) / 100) <= Fraction(1, 2)
    exact = Fraction(b.total_yearly_minor) / (Fraction(hours) * days)
    assert abs(b.hourly_cost_minor - exact) <= Fraction(1, 2)
    assert Fraction(b.yearly_hours) == Fraction(hours) * days
