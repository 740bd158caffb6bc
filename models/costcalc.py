"""The fully loaded hourly cost of a person, as Docket's cost-rate calculator works it out.

Rule (pure, no I/O)::

    on_costs     = round_half_up(salary x on_costs_pct / 100)          (minor units)
    yearly_total = salary + on_costs + benefits + overhead_share         (minor units, exact)
    yearly_hours = working_days x hours_per_day                          (exact decimal)
    hourly_cost  = round_half_up(yearly_total / yearly_hours)            (minor units)

Only the on-costs and the final hourly figure are rounded, so the stored breakdown adds up
line by line. The breakdown holds only ints and strings and can be stored as JSON for audit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from fractions import Fraction

from models.money import div_half_up

METHOD = "loaded-cost-v1"
"""Names the formula in stored breakdowns, so a later change of formula stays auditable."""

DEFAULT_WORKING_DAYS = 220
DEFAULT_HOURS_PER_DAY = Decimal("7.5")


@dataclass(frozen=True)
class CostBreakdown:
    """Inputs and results of the calculator; ints are minor units, strings are decimals."""

    method: str
    yearly_salary_minor: int
    on_costs_pct: str
    on_costs_minor: int
    benefits_minor: int
    overhead_minor: int
    total_yearly_minor: int
    working_days: int
    hours_per_day: str
    yearly_hours: str
    hourly_cost_minor: int

    def as_json(self) -> dict[str, int | str]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def _non_negative_minor(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of minor units, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative: {value}")


def _as_decimal(name: str, value: Decimal | int) -> Decimal:
    # Floats are refused: a binary fraction would leak into an audited figure.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal or int, got {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}")
    return result


def _round_fraction(value: Fraction) -> int:
    return div_half_up(value.numerator, value.denominator)


def loaded_hourly_cost(
    *,
    yearly_salary_minor: int,
    on_costs_pct: Decimal | int,
    benefits_minor_per_year: int = 0,
    overhead_minor_per_year: int = 0,
    working_days: int = DEFAULT_WORKING_DAYS,
    hours_per_day: Decimal | int = DEFAULT_HOURS_PER_DAY,
) -> CostBreakdown:
    """Work out a fully loaded hourly cost in minor units (half up) with its breakdown.

    ``on_costs_pct`` is a percentage (``Decimal("21.5")`` means 21.5 %). Raises ValueError or
    TypeError with the offending input named.
    """
    _non_negative_minor("yearly salary", yearly_salary_minor)
    _non_negative_minor("benefits", benefits_minor_per_year)
    _non_negative_minor("overhead share", overhead_minor_per_year)
    pct = _as_decimal("on-costs percent", on_costs_pct)
    if not Decimal(0) <= pct <= Decimal(500):
        raise ValueError(f"on-costs percent must be between 0 and 500, got {pct}")
    hours = _as_decimal("hours per day", hours_per_day)
    if not Decimal(0) < hours <= Decimal(24):
        raise ValueError(f"hours per day must be more than 0 and at most 24, got {hours}")
    if isinstance(working_days, bool) or not isinstance(working_days, int):
        raise TypeError(f"working days must be an int, got {working_days!r}")
    if not 1 <= working_days <= 366:
        raise ValueError(f"working days must be between 1 and 366, got {working_days}")

    on_costs = _round_fraction(Fraction(yearly_salary_minor) * Fraction(pct) / 100)
    total = yearly_salary_minor + on_costs + benefits_minor_per_year + overhead_minor_per_year
    yearly_hours = hours * working_days
    hourly = _round_fraction(Fraction(total) / Fraction(yearly_hours))
    return CostBreakdown(
        method=METHOD,
        yearly_salary_minor=yearly_salary_minor,
        on_costs_pct=str(pct),
        on_costs_minor=on_costs,
        benefits_minor=benefits_minor_per_year,
        overhead_minor=overhead_minor_per_year,
        total_yearly_minor=total,
        working_days=working_days,
        hours_per_day=str(hours),
        yearly_hours=str(yearly_hours),
        hourly_cost_minor=hourly,
    )
