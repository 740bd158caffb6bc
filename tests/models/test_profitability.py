"""The profitability engine: hand-computed periods, presentation, and additivity properties.

Amounts in comments are in major units unless marked; ``_60`` values are sixtieths of a minor
unit (minutes x rate per hour in minor units).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.money import SUBUNITS
from models.periods import Period, date_range, local_date, month_of, week_of
from models.profitability import (
    INT_FIELDS,
    CostRates,
    Entry,
    Figures,
    PeriodFigures,
    PricedContract,
    PricingKind,
    RowKey,
    attributed_contract,
    block_revenue_60,
    block_usage_before,
    compute_period,
    monthly_day_shares,
    present,
    sum_figures,
)
from models.rates import RateRow, RateSource

ALICE, BOB, CAROL, DAN, EVE = 1, 2, 3, 4, 5
SUPPORT, PROJECTS = 10, 11  # member groups; PROJECTS has no rates

RATES = CostRates(
    member={
        ALICE: (RateRow(date(2025, 1, 1), 5000), RateRow(date(2025, 6, 4), 6000)),
        DAN: (RateRow(date(2025, 6, 10), 7000),),
    },
    group_of={BOB: SUPPORT, EVE: PROJECTS, CAROL: None},
    group={SUPPORT: (RateRow(date(2025, 1, 1), 4000),), PROJECTS: ()},
    default=(RateRow(date(2025, 1, 1), 3000),),
)
NO_DEFAULT = CostRates(member=RATES.member, group_of=RATES.group_of, group=RATES.group)

ACME, GLOBEX, INITECH = 7, 8, 9  # customers

HOURLY = PricedContract(
    id=100,
    customer_id=ACME,
    kind=PricingKind.HOURLY,
    start=date(2025, 1, 1),
    charge_rates=(RateRow(date(2025, 1, 1), 9000), RateRow(date(2025, 6, 5), 10000)),
)
W23 = week_of(date(2025, 6, 2))  # Mon 2 .. Sun 8 June 2025
W24 = week_of(date(2025, 6, 9))
JUNE = month_of(date(2025, 6, 1))
JULY = month_of(date(2025, 7, 1))


def entry(
    id: int,
    day: date,
    minutes: int,
    *,
    member: int = ALICE,
    customer: int | None = ACME,
    contract: int | None = 100,
    billable: bool = True,
) -> Entry:
    return Entry(id, member, customer, contract, day, minutes, billable)


def run(
    period: Period,
    entries: Iterable[Entry],
    contracts: Iterable[PricedContract] = (HOURLY,),
    *,
    rates: CostRates = RATES,
    used: Mapping[int, int] | None = None,
) -> PeriodFigures:
    return compute_period(
        period=period,
        entries=list(entries),
        contracts={c.id: c for c in contracts},
        rates=rates,
        block_used_before=used or {},
    )


# --- hourly contracts, cost rates ---------------------------------------------------------


def test_rate_changes_inside_a_week() -> None:
    # Alice costs 50/h until Tue 3 June and 60/h from Wed 4 June; Acme pays 90/h until
    # Wed 4 June and 100/h from Thu 5 June.
    result = run(
        W23,
        [
            entry(1, date(2025, 6, 3), 90),  # cost 90 x 5000, charge 90 x 9000
            entry(2, date(2025, 6, 4), 60),  # cost 60 x 6000, charge 60 x 9000
            entry(3, date(2025, 6, 5), 30),  # cost 30 x 6000, charge 30 x 10000
            entry(4, date(2025, 6, 6), 45, billable=False),  # cost 45 x 6000, no charge
            entry(5, date(2025, 6, 9), 600),  # next week: ignored
            entry(6, date(2025, 6, 1), 600),  # previous week: ignored
        ],
    )
    assert result.rows == {
        (ACME, 100): Figures(
            minutes=225,
            billable_minutes=180,
            revenue_60=810_000 + 540_000 + 300_000,
            labour_cost_60=450_000 + 360_000 + 180_000 + 270_000,
        )
    }
    shown = present(result.rows[(ACME, 100)])
    assert shown.revenue_minor == 27500  # 135 + 90 + 50
    assert shown.labour_cost_minor == 21000  # 75 + 60 + 30 + 45
    assert shown.contribution_minor == 6500
    assert str(shown.margin_pct) == "23.64"
    assert str(shown.hours) == "3.75"
    assert str(shown.billable_hours) == "3.00"
    assert str(shown.effective_rate) == "73.33"
    assert str(shown.contribution_per_hour) == "17.33"
    assert shown.complete
    assert result.missing_rates == ()


def test_entry_before_any_rate_is_uncosted_not_free() -> None:
    # Dan's own rate starts on 10 June; he has no group and there is no default.
    result = run(
        W24,
        [
            entry(1, date(2025, 6, 9), 60, member=DAN),
            entry(2, date(2025, 6, 10), 60, member=DAN),
            entry(3, date(2025, 6, 11), 30, member=ALICE),
        ],
        rates=NO_DEFAULT,
    )
    row = result.rows[(ACME, 100)]
    assert row.minutes == 150
    assert row.uncosted_minutes == 60
    assert row.labour_cost_60 == 60 * 7000 + 30 * 6000
    assert row.revenue_60 == 150 * 10000  # revenue does not depend on cost rates
    assert row.missing_rates == frozenset({DAN})
    assert result.uncosted_by_member == {DAN: 60}
    assert result.missing_rates == (DAN,)
    shown = present(row)
    assert not shown.complete
    assert shown.missing_rates == (DAN,)
    assert shown.uncosted_minutes == 60


@pytest.mark.parametrize(
    ("member", "day", "minor_per_hour", "source"),
    [
        (ALICE, date(2025, 6, 3), 5000, RateSource.MEMBER),
        (ALICE, date(2025, 6, 4), 6000, RateSource.MEMBER),
        (BOB, date(2025, 6, 4), 4000, RateSource.GROUP),
        (CAROL, date(2025, 6, 4), 3000, RateSource.DEFAULT),  # no group
        (EVE, date(2025, 6, 4), 3000, RateSource.DEFAULT),  # group without rates
        (DAN, date(2025, 6, 9), 3000, RateSource.DEFAULT),  # before his own rate
        (DAN, date(2025, 6, 10), 7000, RateSource.MEMBER),
        (99, date(2025, 6, 4), 3000, RateSource.DEFAULT),  # unknown member
        (ALICE, date(2024, 12, 31), None, None),  # before every rate
    ],
)
def test_cost_rate_fallback(
    member: int, day: date, minor_per_hour: int | None, source: RateSource | None
) -> None:
    resolved = RATES.resolve(member, day)
    if minor_per_hour is None:
        assert resolved is None
    else:
        assert resolved is not None
        assert (resolved.minor_per_hour, resolved.source) == (minor_per_hour, source)


def test_group_and_default_fallback_in_a_period() -> None:
    result = run(
        W23,
        [
            entry(1, date(2025, 6, 4), 60, member=BOB),
            entry(2, date(2025, 6, 4), 60, member=CAROL),
            entry(3, date(2025, 6, 4), 60, member=EVE),
        ],
    )
    row = result.rows[(ACME, 100)]
    assert row.labour_cost_60 == 60 * 4000 + 60 * 3000 + 60 * 3000
    assert row.uncosted_minutes == 0
    assert present(row).labour_cost_minor == 10000


def test_hourly_without_charge_rate_is_unpriced() -> None:
    late_priced = PricedContract(
        id=101,
        customer_id=ACME,
        kind="hourly",  # type: ignore[arg-type]  # strings from the database are accepted
        start=date(2025, 1, 1),
        charge_rates=(RateRow(date(2025, 6, 5), 10000),),
    )
    result = run(
        W23,
        [
            entry(1, date(2025, 6, 4), 60, contract=101),  # no charge rate yet
            entry(2, date(2025, 6, 4), 15, contract=101, billable=False),  # not billable anyway
            entry(3, date(2025, 6, 5), 30, contract=101),
        ],
        [late_priced],
    )
    row = result.rows[(ACME, 101)]
    assert row.unpriced_minutes == 60
    assert row.revenue_60 == 30 * 10000
    assert row.billable_minutes == 90
    assert not present(row).complete


# --- attribution ----------------------------------------------------------------------------


def test_time_without_a_usable_contract_is_unattributed() -> None:
    ended = PricedContract(
        id=102,
        customer_id=ACME,
        kind=PricingKind.HOURLY,
        start=date(2025, 6, 5),
        end=date(2025, 6, 6),
        charge_rates=(RateRow(date(2025, 1, 1), 9000),),
    )
    result = run(
        W23,
        [
            entry(1, date(2025, 6, 4), 10, contract=None),  # no contract named
            entry(2, date(2025, 6, 4), 20, contract=102),  # before the contract starts
            entry(3, date(2025, 6, 7), 30, contract=102),  # after it ended
            entry(4, date(2025, 6, 5), 40, contract=102),  # active: earns
            entry(5, date(2025, 6, 4), 50, customer=None, contract=999),  # unknown contract
            entry(6, date(2025, 6, 4), 60, customer=GLOBEX, contract=102),  # Acme's contract
            entry(7, date(2025, 6, 4), 70, customer=None, contract=100),  # customer inferred
            entry(8, date(2025, 6, 4), 80, customer=None, contract=None),  # internal time
            entry(9, date(2025, 6, 4), 90, customer=None, contract=102),  # inactive, inferred
        ],
        [HOURLY, ended],
    )
    cost = 6000  # Alice from 4 June
    assert result.rows == {
        (ACME, None): Figures(
            minutes=10 + 20 + 30 + 90,
            billable_minutes=150,
            labour_cost_60=150 * cost,
            unattributed_minutes=150,
        ),
        (ACME, 102): Figures(
            minutes=40, billable_minutes=40, revenue_60=40 * 9000, labour_cost_60=40 * cost
        ),
        (ACME, 100): Figures(
            minutes=70, billable_minutes=70, revenue_60=70 * 9000, labour_cost_60=70 * cost
        ),
        (None, None): Figures(
            minutes=130, billable_minutes=130, labour_cost_60=130 * cost, unattributed_minutes=130
        ),
        (GLOBEX, None): Figures(
            minutes=60, billable_minutes=60, labour_cost_60=60 * cost, unattributed_minutes=60
        ),
    }
    shown = present(result.rows[(ACME, None)])
    assert shown.revenue_minor == 0
    assert shown.margin_pct is None
    assert shown.contribution_minor == -15000


def test_attributed_contract_rules() -> None:
    assert attributed_contract(entry(1, date(2025, 6, 4), 5), {100: HOURLY}) is HOURLY
    assert attributed_contract(entry(1, date(2024, 12, 31), 5), {100: HOURLY}) is None
    assert attributed_contract(entry(1, date(2025, 6, 4), 5), {}) is None
    assert (
        attributed_contract(entry(1, date(2025, 6, 4), 5, customer=GLOBEX), {100: HOURLY}) is None
    )


# --- fixed fees and direct costs -------------------------------------------------------------

# Globex pays 1,000.00 a month from Wednesday 18 June 2025. June (30 days): days 1-10 earn
# 33.34 and days 11-30 earn 33.33. July (31 days): days 1-25 earn 32.26, days 26-31 earn 32.25.
FIXED = PricedContract(
    id=200,
    customer_id=GLOBEX,
    kind=PricingKind.FIXED,
    start=date(2025, 6, 18),
    monthly_fee_minor=100_000,
)


def revenue_minor(result: PeriodFigures, key: RowKey) -> int:
    row = result.rows[key]
    assert row.revenue_60 % SUBUNITS == 0  # fee shares are whole minor units
    return row.revenue_60 // SUBUNITS


def test_monthly_day_shares() -> None:
    july = monthly_day_shares(100_000, JULY)
    assert [july[date(2025, 7, d)] for d in (1, 25, 26, 31)] == [3226, 3226, 3225, 3225]
    assert sum(july.values()) == 100_000
    june = monthly_day_shares(100_000, JUNE)
    assert [june[date(2025, 6, d)] for d in (1, 10, 11, 30)] == [3334, 3334, 3333, 3333]


@pytest.mark.parametrize(
    ("period", "minor"),
    [
        (week_of(date(2025, 6, 11)), None),  # before the start: no row at all
        (week_of(date(2025, 6, 16)), 5 * 3333),  # Wed 18 .. Sun 22 June
        (week_of(date(2025, 6, 23)), 7 * 3333),
        (week_of(date(2025, 6, 30)), 3333 + 6 * 3226),  # Mon 30 June .. Sun 6 July
        (JUNE, 13 * 3333),  # 18 .. 30 June
        (JULY, 100_000),
        (week_of(date(2025, 7, 28)), 4 * 3225 + 3 * 3226),  # 28-31 July, 1-3 August
        (date_range(date(2025, 6, 18), date(2025, 6, 18)), 3333),
    ],
)
def test_fixed_fee_by_day_without_time_entries(period: Period, minor: int | None) -> None:
    result = run(period, [], [FIXED])
    if minor is None:
        assert result.rows == {}
    else:
        assert revenue_minor(result, (GLOBEX, 200)) == minor
        assert result.rows[(GLOBEX, 200)].minutes == 0


def test_weeks_clipped_to_the_month_add_up_to_the_month() -> None:
    ended = PricedContract(
        id=201,
        customer_id=GLOBEX,
        kind=PricingKind.FIXED,
        start=date(2025, 6, 18),
        end=date(2025, 7, 10),
        monthly_fee_minor=100_000,
        monthly_direct_cost_minor=31_000,
    )
    for month in (JUNE, JULY):
        pieces = []
        day = month.start
        while day <= month.end:
            clipped_end = min(week_of(day).end, month.end)
            piece = run(date_range(day, clipped_end), [], [ended])
            pieces.append(piece.rows.get((GLOBEX, 201), Figures()))
            day = clipped_end + timedelta(days=1)
        assert sum_figures(pieces) == run(month, [], [ended]).rows[(GLOBEX, 201)]
    july = run(JULY, [], [ended]).rows[(GLOBEX, 201)]
    assert july.revenue_60 == 10 * 3226 * SUBUNITS  # 1 .. 10 July
    assert july.direct_cost_60 == 10 * 1000 * SUBUNITS  # 310.00 over 31 days, exactly 10.00 a day


def test_time_on_a_fixed_contract_earns_nothing_more() -> None:
    week = week_of(date(2025, 6, 23))
    result = run(
        week,
        [entry(1, date(2025, 6, 24), 120, customer=GLOBEX, contract=200, member=BOB)],
        [FIXED],
    )
    assert result.rows == {
        (GLOBEX, 200): Figures(
            minutes=120,
            billable_minutes=120,
            revenue_60=7 * 3333 * SUBUNITS,
            labour_cost_60=120 * 4000,
        )
    }
    shown = present(result.rows[(GLOBEX, 200)])
    assert shown.revenue_minor == 23331
    assert shown.labour_cost_minor == 8000
    assert shown.contribution_minor == 15331
    assert str(shown.margin_pct) == "65.71"  # 15331 / 23331 = 0.657109...
    assert str(shown.effective_rate) == "116.66"  # 233.31 over 2 h = 116.655 -> up


def test_direct_costs_on_an_hourly_contract() -> None:
    # 62.00 a month over June's 30 days: days 1-20 carry 2.07, days 21-30 carry 2.06.
    with_costs = PricedContract(
        id=103,
        customer_id=ACME,
        kind=PricingKind.HOURLY,
        start=date(2025, 1, 1),
        charge_rates=(RateRow(date(2025, 1, 1), 9000),),
        monthly_direct_cost_minor=6200,
    )
    quiet = run(W23, [], [with_costs])
    assert quiet.rows == {(ACME, 103): Figures(direct_cost_60=7 * 207 * SUBUNITS)}
    assert present(quiet.rows[(ACME, 103)]).contribution_minor == -1449
    busy = run(W23, [entry(1, date(2025, 6, 4), 60, contract=103)], [with_costs])
    shown = present(busy.rows[(ACME, 103)])
    assert (shown.revenue_minor, shown.labour_cost_minor, shown.direct_cost_minor) == (
        9000,
        6000,
        1449,
    )
    assert shown.contribution_minor == 9000 - 6000 - 1449
    june = run(JUNE, [], [with_costs]).rows[(ACME, 103)]
    assert june.direct_cost_60 == 6200 * SUBUNITS


# --- block contracts -------------------------------------------------------------------------

# Initech bought 10 hours for 1,000.00; beyond that 120.00 an hour.
BLOCK = PricedContract(
    id=300,
    customer_id=INITECH,
    kind=PricingKind.BLOCK,
    start=date(2025, 5, 1),
    block_minutes=600,
    block_price_minor=100_000,
    overage_minor_per_hour=12_000,
)


def block_entry(id: int, day: date, minutes: int, *, billable: bool = True) -> Entry:
    return entry(id, day, minutes, customer=INITECH, contract=300, billable=billable)


@pytest.mark.parametrize(
    ("used_before", "minutes", "revenue_60", "used_after"),
    [
        (0, 500, 5_000_000, 500),  # 500/600 of 1,000.00 = 833.33 1/3
        (500, 200, 1_000_000 + 100 * 12_000, 700),  # 100 min left in the block, 100 overage
        (700, 60, 60 * 12_000, 760),  # all overage
        (0, 600, 6_000_000, 600),
        (0, 0, 0, 0),
        (600, 1, 12_000, 601),
    ],
)
def test_block_revenue(used_before: int, minutes: int, revenue_60: int, used_after: int) -> None:
    assert block_revenue_60(BLOCK, used_before, minutes) == (revenue_60, used_after)


def test_block_rounds_cumulatively_so_the_block_earns_exactly_its_price() -> None:
    # 7 minutes for 0.10: 85.71 sixtieths a minute, rounded on the running total.
    tiny = PricedContract(
        id=301,
        customer_id=INITECH,
        kind=PricingKind.BLOCK,
        start=date(2025, 1, 1),
        block_minutes=7,
        block_price_minor=10,
    )
    used, earned = 0, []
    for _ in range(7):
        revenue, used = block_revenue_60(tiny, used, 1)
        earned.append(revenue)
    assert earned == [86, 85, 86, 86, 86, 85, 86]
    assert sum(earned) == 10 * SUBUNITS
    # Exactly half a sixtieth rounds up: 1/8 of 60 = 7.5 -> 8, then 15 - 8 = 7.
    eighth = PricedContract(
        id=302,
        customer_id=1,
        kind=PricingKind.BLOCK,
        start=date(2025, 1, 1),
        block_minutes=8,
        block_price_minor=1,
    )
    assert block_revenue_60(eighth, 0, 1) == (8, 1)
    assert block_revenue_60(eighth, 1, 1) == (7, 2)


def test_block_exhausted_inside_one_entry() -> None:
    result = run(
        W23,
        [
            block_entry(1, date(2025, 6, 2), 500),
            block_entry(2, date(2025, 6, 3), 200),  # straddles the end of the block
            block_entry(3, date(2025, 6, 3), 30, billable=False),  # does not consume
        ],
        [BLOCK],
    )
    row = result.rows[(INITECH, 300)]
    assert row.revenue_60 == 7_200_000  # 1,000.00 + 100 min x 120.00/h
    assert row.billable_minutes == 700
    assert row.minutes == 730
    assert present(row).revenue_minor == 120_000
    assert result.block_used_after == {300: 700}


def test_block_across_periods_uses_block_used_before() -> None:
    entries = [
        block_entry(1, date(2025, 5, 20), 500),  # before W24
        block_entry(2, date(2025, 6, 10), 200),
        block_entry(3, date(2025, 6, 12), 60),
        block_entry(4, date(2025, 5, 21), 90, billable=False),
    ]
    used = block_usage_before(entries=entries, contracts={300: BLOCK}, before=W24.start)
    assert used == {300: 500}
    result = run(W24, entries, [BLOCK], used=used)
    assert result.rows[(INITECH, 300)].revenue_60 == 1_000_000 + 100 * 12_000 + 60 * 12_000
    assert result.block_used_after == {300: 760}
    # Forgetting the earlier usage would price the same week as fresh block time.
    fresh = run(W24, entries, [BLOCK])
    assert fresh.rows[(INITECH, 300)].revenue_60 == 260 * 10_000
    # A previous period hands over its usage.
    may = run(month_of(date(2025, 5, 1)), entries, [BLOCK])
    assert may.block_used_after == {300: 500}


def test_block_usage_ignores_unattributed_and_other_kinds() -> None:
    entries = [
        block_entry(1, date(2025, 4, 30), 100),  # before the block contract starts
        entry(2, date(2025, 5, 5), 100, customer=GLOBEX, contract=300),  # wrong customer
        block_entry(3, date(2025, 5, 5), 40),
        entry(4, date(2025, 5, 5), 100),  # hourly contract
        block_entry(5, date(2025, 6, 9), 100),  # not before the date
    ]
    used = block_usage_before(
        entries=entries, contracts={300: BLOCK, 100: HOURLY}, before=date(2025, 6, 9)
    )
    assert used == {300: 40}


# --- contract and entry validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kind": PricingKind.HOURLY, "monthly_fee_minor": 100}, "monthly_fee_minor"),
        ({"kind": PricingKind.HOURLY, "block_minutes": 60}, "block_minutes"),
        ({"kind": PricingKind.FIXED, "charge_rates": (RateRow(date(2025, 1, 1), 1),)}, "charge"),
        ({"kind": PricingKind.FIXED, "overage_minor_per_hour": 5}, "overage"),
        ({"kind": PricingKind.BLOCK}, "block_minutes > 0"),
        ({"kind": PricingKind.BLOCK, "block_minutes": 60, "monthly_fee_minor": 1}, "monthly_fee"),
        ({"kind": PricingKind.FIXED, "end": date(2024, 12, 31)}, "before its start"),
        ({"kind": PricingKind.FIXED, "monthly_direct_cost_minor": -1}, "cannot be negative"),
        ({"kind": "retainer"}, "retainer"),
    ],
)
def test_contract_refuses_inconsistent_fields(changes: dict[str, object], words: str) -> None:
    fields: dict[str, object] = {"id": 1, "customer_id": 1, "start": date(2025, 1, 1)}
    fields.update(changes)
    with pytest.raises(ValueError, match=words):
        PricedContract(**fields)  # type: ignore[arg-type]


def test_entry_refuses_negative_minutes() -> None:
    with pytest.raises(ValueError, match="minutes"):
        entry(1, date(2025, 6, 4), -5)


def test_contracts_mapping_must_match_ids() -> None:
    with pytest.raises(ValueError, match="contracts"):
        compute_period(
            period=W23, entries=[], contracts={1: HOURLY}, rates=RATES, block_used_before={}
        )


def test_block_revenue_needs_a_block_contract() -> None:
    with pytest.raises(ValueError):
        block_revenue_60(HOURLY, 0, 10)


# --- time zones ------------------------------------------------------------------------------


def test_work_logged_after_midnight_in_auckland_lands_in_the_next_week() -> None:
    # 12:30 UTC on Sunday 8 June is Monday 9 June, 00:30 in Auckland: the entry belongs to W24.
    logged_at = datetime(2025, 6, 8, 12, 30, tzinfo=UTC)
    day = local_date(logged_at, ZoneInfo("Pacific/Auckland"))
    entries = [entry(1, day, 60)]
    assert run(W23, entries).rows == {}
    assert run(W24, entries).rows[(ACME, 100)].minutes == 60


# --- presentation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fig", "revenue", "labour", "direct", "contribution", "margin"),
    [
        (Figures(revenue_60=30, labour_cost_60=29, direct_cost_60=90), 1, 0, 2, -1, "-100.00"),
        (Figures(revenue_60=29, labour_cost_60=30), 0, 1, 0, -1, None),
        (Figures(revenue_60=-30), -1, 0, 0, -1, "100.00"),  # a credit rounds symmetrically
        (Figures(revenue_60=89, labour_cost_60=31), 1, 1, 0, 0, "0.00"),
        (Figures(revenue_60=600_030, labour_cost_60=300_000), 10001, 5000, 0, 5001, "50.00"),
        (Figures(), 0, 0, 0, 0, None),
    ],
)
def test_present_rounds_each_amount_once(
    fig: Figures, revenue: int, labour: int, direct: int, contribution: int, margin: str | None
) -> None:
    shown = present(fig)
    assert (shown.revenue_minor, shown.labour_cost_minor, shown.direct_cost_minor) == (
        revenue,
        labour,
        direct,
    )
    assert shown.contribution_minor == contribution
    assert shown.contribution_minor == revenue - direct - labour
    assert (None if shown.margin_pct is None else str(shown.margin_pct)) == margin


def test_present_without_minutes_has_no_rates() -> None:
    shown = present(Figures(revenue_60=6000 * SUBUNITS))
    assert shown.effective_rate is None
    assert shown.contribution_per_hour is None
    assert shown.hours == Decimal("0.00")
    assert str(shown.margin_pct) == "100.00"


def test_totals_are_exact_sums_presented_once() -> None:
    # Two rows of half a cent each show 0.01 each, but together they are exactly 0.01.
    rows = [Figures(minutes=1, revenue_60=30), Figures(minutes=1, revenue_60=30)]
    assert [present(r).revenue_minor for r in rows] == [1, 1]
    total = sum_figures(rows)
    assert total == Figures(minutes=2, revenue_60=60)
    assert present(total).revenue_minor == 1


def test_figures_add_and_period_rollups() -> None:
    a = Figures(minutes=1, revenue_60=2, uncosted_minutes=1, missing_rates=frozenset({4}))
    b = Figures(minutes=10, labour_cost_60=5, unpriced_minutes=3, missing_rates=frozenset({2}))
    assert a + b == Figures(
        minutes=11,
        revenue_60=2,
        labour_cost_60=5,
        uncosted_minutes=1,
        unpriced_minutes=3,
        missing_rates=frozenset({2, 4}),
    )
    assert sum_figures([]) == Figures()
    assert a + Figures() == a
    result = run(
        W23,
        [
            entry(1, date(2025, 6, 4), 60),
            entry(2, date(2025, 6, 4), 30, contract=None),
            entry(3, date(2025, 6, 4), 15, customer=GLOBEX, contract=None),
        ],
    )
    by_customer = result.by_customer()
    assert by_customer[ACME].minutes == 90
    assert by_customer[GLOBEX].minutes == 15
    assert result.total.minutes == 105
    assert result.total == sum_figures(by_customer.values())
    assert set(INT_FIELDS) == {
        "minutes",
        "billable_minutes",
        "revenue_60",
        "labour_cost_60",
        "direct_cost_60",
        "uncosted_minutes",
        "unattributed_minutes",
        "unpriced_minutes",
    }


# --- properties ------------------------------------------------------------------------------

FIRST, LAST = date(2025, 5, 1), date(2025, 7, 31)  # about three months
DAYS = st.dates(min_value=FIRST - timedelta(days=10), max_value=LAST)
rate_rows = st.lists(
    st.builds(RateRow, DAYS, st.integers(min_value=0, max_value=20_000)), max_size=2
).map(tuple)


@st.composite
def contracts(draw: st.DrawFn) -> dict[int, PricedContract]:
    result: dict[int, PricedContract] = {}
    for contract_id in range(1, draw(st.integers(min_value=0, max_value=4)) + 1):
        kind = draw(st.sampled_from(list(PricingKind)))
        start = draw(DAYS)
        end = draw(st.none() | st.dates(min_value=start, max_value=LAST + timedelta(days=10)))
        common = {
            "id": contract_id,
            "customer_id": draw(st.integers(min_value=1, max_value=3)),
            "kind": kind,
            "start": start,
            "end": end,
            "monthly_direct_cost_minor": draw(st.sampled_from([0, 0, 9_999, 31_001])),
        }
        if kind is PricingKind.HOURLY:
            extra: dict[str, object] = {"charge_rates": draw(rate_rows)}
        elif kind is PricingKind.FIXED:
            extra = {"monthly_fee_minor": draw(st.integers(min_value=0, max_value=500_000))}
        else:
            extra = {
                "block_minutes": draw(st.integers(min_value=1, max_value=900)),
                "block_price_minor": draw(st.integers(min_value=0, max_value=200_001)),
                "overage_minor_per_hour": draw(st.integers(min_value=0, max_value=20_000)),
            }
        result[contract_id] = PricedContract(**common, **extra)  # type: ignore[arg-type]
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[int, PricedContract], list[Entry], CostRates]:
    found = draw(contracts())
    contract_ids = [None, 99, *found]  # 99 is not a known contract
    entries = [
        Entry(
            id=entry_id,
            member_id=draw(st.integers(min_value=1, max_value=4)),
            customer_id=draw(st.sampled_from([None, 1, 2, 3])),
            contract_id=draw(st.sampled_from(contract_ids)),
            work_date=draw(DAYS),
            minutes=draw(st.integers(min_value=0, max_value=600)),
            billable=draw(st.booleans()),
        )
        for entry_id in draw(st.lists(st.integers(1, 10_000), max_size=30, unique=True))
    ]
    rates = CostRates(
        member={m: draw(rate_rows) for m in (1, 2, 3)},
        group_of={1: 1, 2: 2, 3: None, 4: 1},
        group={1: draw(rate_rows), 2: draw(rate_rows)},
        default=draw(rate_rows),
    )
    return found, entries, rates


def merge(*results: PeriodFigures) -> dict[RowKey, Figures]:
    merged: dict[RowKey, Figures] = {}
    for result in results:
        for key, figures in result.rows.items():
            merged[key] = merged.get(key, Figures()) + figures
    return merged


@settings(max_examples=200, deadline=None)
@given(
    scenario=scenarios(),
    start=st.dates(min_value=FIRST, max_value=LAST),
    first_len=st.integers(min_value=1, max_value=40),
    second_len=st.integers(min_value=1, max_value=40),
)
def test_adjacent_ranges_add_up_to_their_union(
    scenario: tuple[dict[int, PricedContract], list[Entry], CostRates],
    start: date,
    first_len: int,
    second_len: int,
) -> None:
    found, entries, rates = scenario
    split = start + timedelta(days=first_len)
    end = split + timedelta(days=second_len - 1)
    used = block_usage_before(entries=entries, contracts=found, before=start)

    def compute(period: Period, used_before: Mapping[int, int]) -> PeriodFigures:
        return compute_period(
            period=period,
            entries=entries,
            contracts=found,
            rates=rates,
            block_used_before=used_before,
        )

    first = compute(date_range(start, split - timedelta(days=1)), used)
    assert dict(first.block_used_after) == {
        cid: block_usage_before(entries=entries, contracts=found, before=split).get(cid, 0)
        for cid, c in found.items()
        if c.kind is PricingKind.BLOCK
    }
    second = compute(date_range(split, end), first.block_used_after)
    union = compute(date_range(start, end), used)
    assert merge(first, second) == dict(union.rows)
    assert second.block_used_after == union.block_used_after
    for member in {*first.uncosted_by_member, *second.uncosted_by_member}:
        assert union.uncosted_by_member[member] == first.uncosted_by_member.get(
            member, 0
        ) + second.uncosted_by_member.get(member, 0)
    # Every minute is costed or counted as uncosted; rows add up on screen.
    total = union.total
    in_range = [e for e in entries if start <= e.work_date <= end]
    assert total.minutes == sum(e.minutes for e in in_range)
    for row in union.rows.values():
        shown = present(row)
        assert shown.contribution_minor == (
            shown.revenue_minor - shown.direct_cost_minor - shown.labour_cost_minor
        )
        assert row.unattributed_minutes + row.unpriced_minutes <= row.minutes


@settings(max_examples=50, deadline=None)
@given(scenario=scenarios(), month_start=st.sampled_from([date(2025, 5, 1), date(2025, 6, 1)]))
def test_days_of_a_month_add_up_to_the_month(
    scenario: tuple[dict[int, PricedContract], list[Entry], CostRates], month_start: date
) -> None:
    found, entries, rates = scenario
    month = month_of(month_start)
    used: Mapping[int, int] = block_usage_before(
        entries=entries, contracts=found, before=month.start
    )
    day_results = []
    for day in month:
        result = compute_period(
            period=date_range(day, day),
            entries=entries,
            contracts=found,
            rates=rates,
            block_used_before=used,
        )
        used = result.block_used_after
        day_results.append(result)
    whole = compute_period(
        period=month,
        entries=entries,
        contracts=found,
        rates=rates,
        block_used_before=block_usage_before(entries=entries, contracts=found, before=month.start),
    )
    assert merge(*day_results) == dict(whole.rows)
    for contract in found.values():
        # A fixed fee earns exactly the fee for a month the contract covers entirely.
        if (
            contract.kind is PricingKind.FIXED
            and contract.monthly_fee_minor
            and contract.start <= month.start
            and (contract.end is None or contract.end >= month.end)
        ):
            fee_row = whole.rows[(contract.customer_id, contract.id)]
            assert fee_row.revenue_60 == contract.monthly_fee_minor * SUBUNITS
