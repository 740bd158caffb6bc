"""Money rules: parsing, formatting, half-up rounding, largest-remainder splits, ratios."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.money import (
    MAX_AMOUNT_MINOR,
    SUBUNITS,
    div_half_up,
    format_amount,
    format_rate,
    minutes_to_hours,
    parse_amount,
    percent,
    rate_per_hour,
    round_subunits,
    split_largest_remainder,
    to_decimal_string,
)

FAST = settings(max_examples=200, deadline=None)


def test_subunits_is_sixty() -> None:
    # Whole minutes x a rate per hour is exact only in sixtieths.
    assert SUBUNITS == 60


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("480", 48000),
        ("480.5", 48050),
        ("480.50", 48050),
        ("480.05", 48005),
        ("1,200.00", 120000),
        ("1,234,567.89", 123456789),
        ("0.05", 5),
        ("0", 0),
        ("  7 ", 700),
        ("-12.34", -1234),
        ("0012", 1200),
    ],
)
def test_parse_amount_accepts(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "480.505",
        "480.",
        ".5",
        "1,20.00",
        "12,00",
        "1,2345",
        ",100",
        "1e3",
        "480 EUR",
        "€480",
        "--1",
        "+5",
        "1_000",
        "NaN",
        "\u0664\u0668\u0660",  # Arabic-Indic digits: \d would accept them
        "10000000000000",
    ],
)
def test_parse_amount_refuses_and_names_the_text(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_amount(text)
    assert repr(text) in str(info.value)


def test_parse_amount_limit_is_inclusive() -> None:
    assert parse_amount(to_decimal_string(MAX_AMOUNT_MINOR)) == MAX_AMOUNT_MINOR


@pytest.mark.parametrize(
    ("minor", "text"),
    [(48000, "480.00"), (5, "0.05"), (-150, "-1.50"), (0, "0.00"), (-5, "-0.05"), (100, "1.00")],
)
def test_to_decimal_string(minor: int, text: str) -> None:
    assert to_decimal_string(minor) == text


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123450, "EUR", "1,234.50 EUR"),
        (0, "usd", "0.00 USD"),
        (-5, "GBP", "-0.05 GBP"),
        (-123456, "AUD", "-1,234.56 AUD"),
        (100000000, "NZD", "1,000,000.00 NZD"),
        (99999, " eur ", "999.99 EUR"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("currency", ["", "EURO", "€", "E1R"])
def test_format_amount_refuses_bad_currency(currency: str) -> None:
    with pytest.raises(ValueError, match="currency"):
        format_amount(100, currency)


@pytest.mark.parametrize("bad", [1.5, Decimal("1.50"), True])
def test_amounts_must_be_integers(bad: object) -> None:
    with pytest.raises(TypeError):
        format_amount(bad, "EUR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_subunits(bad)  # type: ignore[arg-type]


def test_format_rate() -> None:
    assert format_rate(Decimal("96.00"), "eur") == "96.00 EUR/h"
    assert format_rate(Decimal("-1234.5"), "USD") == "-1,234.50 USD/h"
    assert format_rate(Decimal("0.005"), "EUR") == "0.01 EUR/h"  # half up
    assert format_rate(Decimal("-0.005"), "EUR") == "-0.01 EUR/h"
    assert format_rate(None, "EUR") == "n/a"
    assert format_rate(None, "EUR", missing="-") == "-"


@pytest.mark.parametrize(
    ("value_60", "minor"),
    [
        (0, 0),
        (29, 0),
        (30, 1),  # exactly half: up
        (31, 1),
        (59, 1),
        (60, 1),
        (89, 1),
        (90, 2),
        (120, 2),
        (-29, 0),
        (-30, -1),  # symmetric: -0.5 -> -1
        (-31, -1),
        (-90, -2),
        (-91, -2),
    ],
)
def test_round_subunits_half_up_symmetric(value_60: int, minor: int) -> None:
    assert round_subunits(value_60) == minor


@pytest.mark.parametrize(
    ("numer", "denom", "result"),
    [(5, 2, 3), (-5, 2, -3), (5, -2, -3), (-5, -2, 3), (4, 2, 2), (7, 3, 2), (1, 3, 0)],
)
def test_div_half_up(numer: int, denom: int, result: int) -> None:
    assert div_half_up(numer, denom) == result


def test_div_half_up_by_zero() -> None:
    with pytest.raises(ZeroDivisionError):
        div_half_up(1, 0)


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        # 100000 / 31 = 3225.8...: 25 units left over go to the first 25 days.
        (100000, [1] * 31, [3226] * 25 + [3225] * 6),
        # 100000 / 30 = 3333.3...: 10 units left over go to the first 10 days.
        (100000, [1] * 30, [3334] * 10 + [3333] * 20),
        (10, [1, 1, 1], [4, 3, 3]),
        (2, [1, 1, 1], [1, 1, 0]),
        (100, [1, 2], [33, 67]),  # remainders 1/3 and 2/3: the larger wins
        (5, [3, 1, 1, 3], [2, 1, 0, 2]),  # ties at 7/8 and 5/8 go to the earlier item
        (-10, [1, 1, 1], [-4, -3, -3]),
        (7, [0, 1], [0, 7]),
        (0, [1, 1], [0, 0]),
        (0, [0, 0], [0, 0]),
        (0, [], []),
        (31000, [1] * 31, [1000] * 31),
    ],
)
def test_split_largest_remainder(total: int, weights: list[int], parts: list[int]) -> None:
    assert split_largest_remainder(total, weights) == parts


@pytest.mark.parametrize(("total", "weights"), [(5, []), (5, [0, 0]), (5, [1, -1])])
def test_split_largest_remainder_refuses(total: int, weights: list[int]) -> None:
    with pytest.raises(ValueError):
        split_largest_remainder(total, weights)


@pytest.mark.parametrize(
    ("numer", "denom", "result"),
    [
        (1, 3, "33.33"),
        (2, 3, "66.67"),
        (-1, 3, "-33.33"),
        (1, 8, "12.50"),
        (1, 200, "0.50"),
        (1, 20000, "0.01"),  # 0.005 % exactly: half up
        (-1, 20000, "-0.01"),
        (1, 40000, "0.00"),
        (6500, 27500, "23.64"),
        (3, 3, "100.00"),
        (0, 5, "0.00"),
    ],
)
def test_percent(numer: int, denom: int, result: str) -> None:
    value = percent(numer, denom)
    assert value is not None
    assert str(value) == result


def test_percent_of_zero_is_none() -> None:
    assert percent(5, 0) is None
    assert percent(0, 0) is None


@pytest.mark.parametrize(
    ("amount", "minutes", "result"),
    [
        (9600, 60, "96.00"),
        (10000, 90, "66.67"),
        (-3000, 60, "-30.00"),
        (1, 120, "0.01"),  # half a cent an hour: up
        (27500, 225, "73.33"),
        (0, 30, "0.00"),
    ],
)
def test_rate_per_hour(amount: int, minutes: int, result: str) -> None:
    value = rate_per_hour(amount, minutes)
    assert value is not None
    assert str(value) == result


def test_rate_per_hour_without_minutes_is_none() -> None:
    assert rate_per_hour(100, 0) is None


@pytest.mark.parametrize(
    ("minutes", "hours"),
    [(0, "0.00"), (1, "0.02"), (50, "0.83"), (90, "1.50"), (225, "3.75"), (600, "10.00")],
)
def test_minutes_to_hours(minutes: int, hours: str) -> None:
    assert str(minutes_to_hours(minutes)) == hours


@FAST
@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=40).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_split_is_exact_and_close_to_the_true_share(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, weight_sum)) < 1


@FAST
@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    count=st.integers(min_value=1, max_value=31),
)
def test_equal_weights_differ_by_at_most_one_and_earlier_get_more(total: int, count: int) -> None:
    parts = split_largest_remainder(total, [1] * count)
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    # Earlier days never get less (more negative for a negative total) than later ones.
    magnitudes = [abs(p) for p in parts]
    assert magnitudes == sorted(magnitudes, reverse=True)


@FAST
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_round_subunits_is_nearest_and_symmetric(value_60: int) -> None:
    rounded = round_subunits(value_60)
    assert abs(value_60 - rounded * SUBUNITS) <= SUBUNITS // 2
    assert round_subunits(-value_60) == -rounded


@FAST
@given(st.integers(min_value=-MAX_AMOUNT_MINOR, max_value=MAX_AMOUNT_MINOR))
def test_parse_reads_back_what_we_print(minor: int) -> None:
    assert parse_amount(to_decimal_string(minor)) == minor
    assert parse_amount(format_amount(minor, "EUR").removesuffix(" EUR")) == minor
