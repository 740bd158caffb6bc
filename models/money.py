"""Money for Docket: integer minor units, exact sixtieths, and the one rounding rule.

Rules (pure, no I/O):

- An amount is an ``int`` of minor units (cents) and a currency code kept beside it. Docket
  assumes two decimal places for every currency (one currency per workspace).
- Exact intermediate amounts are integers in sixtieths of a minor unit (``SUBUNITS = 60``):
  whole minutes x an hourly rate in minor units is then exact (``minutes * minor_per_hour``).
- Rounding is half up, symmetric for negatives (-0.5 -> -1), and happens once, when an exact
  amount is presented (``round_subunits``).
- Splits (a monthly fee over the days of a month) use the largest-remainder method: the parts
  always add up to the total, and equal remainders favour the earlier items.
- Amounts are shown as ``"1,234.50 EUR"``: the ISO code after the number and never a symbol,
  because "$" alone cannot tell USD, AUD and NZD apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

SUBUNITS = 60
"""Sixtieths of a minor unit per minor unit: the exact unit of labour cost and revenue."""

MAX_AMOUNT_MINOR = 10**15 - 1
"""Largest amount `parse_amount` accepts (far inside a 64-bit column)."""

_AMOUNT_RE = re.compile(
    r"(?P<sign>-)?(?P<whole>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]{1,2}))?"
)
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def div_half_up(numer: int, denom: int) -> int:
    """Divide two integers and round half up, symmetric for negatives (-2.5 -> -3)."""
    if denom == 0:
        raise ZeroDivisionError("div_half_up by zero")
    negative = (numer < 0) != (denom < 0)
    quotient, remainder = divmod(abs(numer), abs(denom))
    if 2 * remainder >= abs(denom):
        quotient += 1
    return -quotient if negative else quotient


def parse_amount(text: str) -> int:
    """Parse a decimal amount such as ``"480"``, ``"480.5"`` or ``"1,200.00"`` into minor units.

    Commas are accepted only as thousands separators in correct groups of three; at most two
    decimals; an optional leading ``-``. Anything else raises ValueError naming the text.
    """
    cleaned = text.strip()
    match = _AMOUNT_RE.fullmatch(cleaned)
    if match is None:
        raise ValueError(
            f"{text!r} is not an amount: use digits with at most two decimals, "
            "e.g. 480, 480.50 or 1,200.00"
        )
    whole = int(match["whole"].replace(",", ""))
    frac = (match["frac"] or "").ljust(2, "0")
    minor = whole * 100 + int(frac)
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(f"{text!r} is too large an amount")
    return -minor if match["sign"] else minor


def to_decimal_string(minor: int) -> str:
    """Minor units as a plain two-decimal string: ``48000 -> "480.00"``, ``-5 -> "-0.05"``."""
    _check_int(minor)
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_amount(minor: int, currency: str) -> str:
    """Minor units for people: ``123450, "eur" -> "1,234.50 EUR"`` (code, never a symbol)."""
    _check_int(minor)
    code = currency.strip().upper()
    if not _CURRENCY_RE.fullmatch(code):
        raise ValueError(f"{currency!r} is not a three-letter currency code")
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {code}"


def format_rate(rate: Decimal | None, currency: str, *, missing: str = "n/a") -> str:
    """A per-hour rate in major units (as from `rate_per_hour`): ``"96.00 EUR/h"``."""
    if rate is None:
        return missing
    minor = int((rate * 100).to_integral_value(rounding=ROUND_HALF_UP))
    return f"{format_amount(minor, currency)}/h"


def round_subunits(value_60: int) -> int:
    """Round an exact amount in sixtieths to minor units, half up, symmetric for negatives."""
    _check_int(value_60)
    return div_half_up(value_60, SUBUNITS)


def split_largest_remainder(total_minor: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_minor`` in proportion to ``weights`` so the parts add up exactly.

    Each part gets its floor share, then the units left over go one each to the largest
    remainders; equal remainders go to the earlier items. A negative total is split as its
    absolute value and negated. Weights must be non-negative and not all zero (unless the
    total is zero).
    """
    _check_int(total_minor)
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must not be negative: {list(weights)}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total_minor == 0:
            return [0] * len(weights)
        raise ValueError(f"cannot split {total_minor} over zero total weight")
    if total_minor < 0:
        return [-part for part in split_largest_remainder(-total_minor, weights)]
    parts: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        part, remainder = divmod(total_minor * weight, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    left = total_minor - sum(parts)
    # sorted() is stable, so equal remainders keep their original (earlier-first) order.
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
        parts[index] += 1
    return parts


def percent(numer: int, denom: int) -> Decimal | None:
    """``numer / denom`` as a percentage with two places, half up; None when ``denom`` is 0."""
    if denom == 0:
        return None
    return Decimal(div_half_up(numer * 10_000, denom)).scaleb(-2)


def rate_per_hour(amount_minor: int, minutes: int) -> Decimal | None:
    """Amount per hour in MAJOR units, two places, half up (``9600, 60 -> 96.00``).

    None when ``minutes`` is 0.
    """
    if minutes == 0:
        return None
    return Decimal(div_half_up(amount_minor * 60, minutes)).scaleb(-2)


def minutes_to_hours(minutes: int) -> Decimal:
    """Minutes as hours with two places, half up (``50 -> 0.83``)."""
    return Decimal(div_half_up(minutes * 100, 60)).scaleb(-2)


def _check_int(value: int) -> None:
    # A float or Decimal here means an amount escaped integer minor units upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer amount, got {type(value).__name__}: {value!r}")
