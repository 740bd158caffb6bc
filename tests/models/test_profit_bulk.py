"""The set-based recompute (models.profit_bulk) against the per-customer engine.

Pure pieces first (rate pieces, day shares), then random workspaces on SQLite and PostgreSQL:
the set-based rebuild, the set-based refresh of a backlog and the per-customer rebuild must
store identical results, to the sixtieth of a cent.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_engine, make_sessionmaker
from models import profit_bulk
from models.money import split_largest_remainder
from models.periods import month_of, week_of
from models.profit_bulk import DayShares, charge_pieces, contract_pieces, cost_pieces
from models.profitability import CostRates, PricedContract, PricingKind
from models.rates import RateRow
from models.tables import ContractKind as StoredKind
from models.tables import Workspace
from models.timelog import TimeRefused
from tests.conftest import BACKENDS
from tests.models.profit_world import World, fresh_url

FAR = date(9999, 12, 31)


# -- pure pieces -------------------------------------------------------------------------


def test_cost_pieces_follow_member_then_group_then_default() -> None:
    rates = CostRates(
        member={1: [RateRow(date(2025, 3, 1), 9000)]},
        group_of={1: 7, 2: 7, 3: None},
        group={7: [RateRow(date(2025, 2, 1), 6000)]},
        default=[RateRow(date(2025, 1, 1), 3000), RateRow(date(2025, 4, 1), 3500)],
    )
    pieces = cost_pieces(rates, [1, 2, 3])
    assert [p for p in pieces if p[0] == 1] == [
        (1, date(2025, 1, 1), date(2025, 2, 1), 3000),
        (1, date(2025, 2, 1), date(2025, 3, 1), 6000),
        (1, date(2025, 3, 1), FAR, 9000),  # the default's change does not show through
    ]
    assert [p for p in pieces if p[0] == 2] == [
        (2, date(2025, 1, 1), date(2025, 2, 1), 3000),
        (2, date(2025, 2, 1), FAR, 6000),
    ]
    assert [p for p in pieces if p[0] == 3] == [
        (3, date(2025, 1, 1), date(2025, 4, 1), 3000),
        (3, date(2025, 4, 1), FAR, 3500),
    ]


def test_no_rate_before_the_first_one_leaves_the_days_uncosted() -> None:
    rates = CostRates(member={1: [RateRow(date(2025, 5, 1), 100)]}, group_of={1: None, 2: None})
    assert cost_pieces(rates, [1, 2]) == [(1, date(2025, 5, 1), FAR, 100)]


def test_rates_recorded_on_the_same_day_the_later_one_wins() -> None:
    rates = CostRates(
        member={1: [RateRow(date(2025, 5, 1), 100), RateRow(date(2025, 5, 1), 200)]},
        group_of={1: None},
    )
    assert cost_pieces(rates, [1]) == [(1, date(2025, 5, 1), FAR, 200)]


def test_charge_pieces_only_for_hourly_contracts() -> None:
    hourly = PricedContract(
        id=1,
        customer_id=1,
        kind=PricingKind.HOURLY,
        start=date(2025, 1, 1),
        charge_rates=(RateRow(date(2025, 1, 1), 12000), RateRow(date(2025, 7, 1), 13000)),
    )
    fixed = PricedContract(
        id=2, customer_id=1, kind=PricingKind.FIXED, start=date(2025, 1, 1), monthly_fee_minor=9
    )
    assert charge_pieces([hourly, fixed]) == [
        (1, date(2025, 1, 1), date(2025, 7, 1), 12000),
        (1, date(2025, 7, 1), FAR, 13000),
    ]


def test_contract_pieces_cover_the_active_days_with_their_charge_rate() -> None:
    hourly = PricedContract(
        id=1,
        customer_id=7,
        kind=PricingKind.HOURLY,
        start=date(2025, 1, 10),
        end=date(2025, 8, 31),
        charge_rates=(RateRow(date(2025, 2, 1), 12000), RateRow(date(2025, 7, 1), 13000)),
    )
    block = PricedContract(
        id=2,
        customer_id=7,
        kind=PricingKind.BLOCK,
        start=date(2025, 3, 1),
        block_minutes=600,
        block_price_minor=10_000,
    )
    assert contract_pieces([hourly, block]) == [
        (1, 7, "hourly", date(2025, 1, 10), date(2025, 2, 1), None),  # active, unpriced
        (1, 7, "hourly", date(2025, 2, 1), date(2025, 7, 1), 12000),
        (1, 7, "hourly", date(2025, 7, 1), date(2025, 9, 1), 13000),  # until the day after
        (2, 7, "block", date(2025, 3, 1), FAR, None),
    ]


def test_contract_amounts_are_the_day_shares_of_each_period() -> None:
    fixed = PricedContract(
        id=3,
        customer_id=1,
        kind=PricingKind.FIXED,
        start=date(2025, 1, 15),
        end=date(2025, 2, 10),
        monthly_fee_minor=100_001,
        monthly_direct_cost_minor=7_777,
    )
    shares = DayShares()
    amounts = shares.contract_amounts(fixed, horizon=date(2025, 12, 31))
    assert amounts[("month", date(2025, 1, 1))] == (
        DayShares().over(100_001, date(2025, 1, 15), date(2025, 1, 31)) * 60,
        DayShares().over(7_777, date(2025, 1, 15), date(2025, 1, 31)) * 60,
    )
    # The week of 10 February ends with the contract on its first day.
    assert (
        amounts[("week", date(2025, 2, 10))][0]
        == DayShares().over(100_001, date(2025, 2, 10), date(2025, 2, 10)) * 60
    )
    assert ("week", date(2025, 2, 17)) not in amounts
    assert shares.contract_amounts(fixed, horizon=date(2025, 12, 31)) is amounts  # computed once


@pytest.mark.parametrize(
    ("amount", "first", "last"),
    [
        (100_001, date(2025, 2, 1), date(2025, 2, 28)),  # a whole month: the whole amount
        (100_001, date(2025, 2, 10), date(2025, 2, 16)),
        (7_777, date(2025, 1, 27), date(2025, 2, 2)),  # a week across two months
        (31, date(2024, 2, 29), date(2024, 2, 29)),  # a leap day
        (0, date(2025, 3, 1), date(2025, 3, 31)),
    ],
)
def test_day_shares_equal_the_split_of_each_month(amount: int, first: date, last: date) -> None:
    expected = 0
    day = first
    while day <= last:
        month = month_of(day)
        shares = split_largest_remainder(amount, [1] * month.day_count)
        expected += shares[day.day - 1]
        day += timedelta(days=1)
    assert DayShares().over(amount, first, last) == expected


# -- random workspaces, both databases ---------------------------------------------------

AT = datetime(2021, 1, 20, 9, 0, tzinfo=UTC)
FIRST = date(2020, 12, 10)  # ISO 2020-W53 (28 Dec .. 3 Jan) and a year end inside
DAYS = 40

log = st.tuples(
    st.integers(0, 2),  # member
    st.sampled_from([0, 1, 1, 2, 3, 4, 5]),  # hourly, block, fixed, no contract, none, other's
    st.integers(0, DAYS - 1),
    st.integers(1, 400),
    st.booleans(),
)
change = st.one_of(
    st.tuples(
        st.just("cost"), st.sampled_from(["member", "group", "default"]), st.integers(0, DAYS)
    ),
    st.tuples(st.just("charge"), st.integers(0, DAYS), st.integers(0, 20_000)),
    st.tuples(st.just("block"), st.integers(1, 30), st.integers(1, 90_000)),
    st.tuples(st.just("fixed-end"), st.integers(0, DAYS)),
)


async def _scenario(url: str, logs: list[Any], changes: list[Any]) -> None:
    engine = make_engine(url)
    try:
        w = await World.create(engine, timezone="Pacific/Auckland", at=AT)
        members = [await w.member("Ann"), await w.member("Ben", group="techs")]
        members.append(await w.member("Cid"))  # uncosted until a default rate appears
        await w.cost_rate(5000, date(2020, 1, 1), member_id=members[0])
        techs = await w.group_id("techs")
        await w.cost_rate(4000, FIRST + timedelta(days=12), group_id=techs)
        acme, beta, gamma = [await w.customer(n) for n in ("Acme", "Beta", "Gamma")]
        hourly, block, fixed = await w.mixed_contracts(acme, beta, FIRST)
        other = await w.contract(
            gamma, "Gamma hourly", StoredKind.HOURLY, FIRST, hourly_rate_minor=9
        )
        targets: list[dict[str, Any]] = [
            {"contract_id": hourly},
            {"contract_id": block},
            {"contract_id": fixed},
            {"customer_id": beta},
            {},
            {"contract_id": other},
        ]
        for who, where, offset, minutes, billable in logs:
            try:
                await w.log(
                    members[who],
                    minutes,
                    FIRST + timedelta(days=offset),
                    billable=billable,
                    **targets[where],
                )
            except TimeRefused:
                pass
        await w.refresh()
        for op in changes:
            if op[0] == "cost":
                since = FIRST + timedelta(days=op[2])
                subject = {
                    "member": {"member_id": members[0]},
                    "group": {"group_id": techs},
                    "default": {},
                }[op[1]]
                await w.cost_rate(3000 + op[2], since, **subject)
            elif op[0] == "charge":
                await w.charge_rate(hourly, FIRST + timedelta(days=op[1]), op[2])
            elif op[0] == "block":
                await w.contract(
                    acme,
                    "Block",
                    StoredKind.BLOCK,
                    date(2020, 12, 1),
                    FIRST + timedelta(days=33),
                    block_minutes=op[1] * 20,
                    block_price_minor=op[2],
                    overage_minor_per_hour=13_000,
                )
            else:
                await w.contract(
                    beta,
                    "Fixed",
                    StoredKind.FIXED,
                    FIRST + timedelta(days=8),
                    FIRST + timedelta(days=8 + op[1]),
                    monthly_fee_minor=100_001,
                    monthly_direct_cost_minor=7_777,
                )
        # The backlog the changes left, worked off set-based (one customer per step)...
        await w.refresh_many(customers=1)
        assert await w.stale() == 0
        bulk_refreshed = await w.stored()
        # ...equals a per-customer rebuild, and a set-based rebuild in blocks of two.
        await w.rebuild(per_customer=True)
        per_customer = await w.stored()
        assert bulk_refreshed == per_customer
        await w.rebuild(chunk=2)
        assert await w.stored() == per_customer
        # Time logged in ISO week 2020-W53 (28 Dec .. 3 Jan) is stored under that week.
        w53 = week_of(date(2020, 12, 31)).start
        if any(18 <= offset <= 24 for _who, _where, offset, _m, _b in logs):
            assert any(k[0] == "week" and k[1] == w53 and v[0] for k, v in per_customer.items())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(logs=st.lists(log, min_size=0, max_size=14), changes=st.lists(change, max_size=5))
def test_set_based_equals_per_customer(
    backend: str,
    sqlite_template: Path,
    postgres_ready: bool,
    logs: list[Any],
    changes: list[Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:

        async def run() -> None:
            url = await fresh_url(backend, sqlite_template, Path(tmp))
            await _scenario(url, logs, changes)

        asyncio.run(run())


async def test_a_refresh_claims_only_its_own_workspaces_marks(engine: AsyncEngine) -> None:
    """Two workspaces on one database: each refresh step claims and works off its own marks."""
    from models import profit_bulk
    from models.profit_refresh import claim_stale, stale_count
    from models.timelog import mark_stale

    sessions = make_sessionmaker(engine)
    at = datetime(2025, 3, 10, tzinfo=UTC)
    async with sessions() as session, session.begin():
        spaces = [Workspace(team_id=f"T{n}", name=f"W{n}") for n in (1, 2)]
        session.add_all(spaces)
        await session.flush()
        ids = [w.id for w in spaces]
        for n, ws in enumerate(ids):
            keys = [(None, week_of(date(2025, 1, 6) + timedelta(weeks=n + k))) for k in range(3)]
            await mark_stale(session=session, workspace_id=ws, keys=keys, at=at)
    async with sessions() as session, session.begin():
        mine = await claim_stale(session=session, workspace_id=ids[0], limit=10)
        assert len(mine) == 3
        stats = await profit_bulk.refresh_step(
            session=session, workspace_id=ids[0], today=date(2025, 3, 10), at=at
        )
        assert stats.customer_periods == 3
    async with sessions() as session:
        assert await stale_count(session=session, workspace_id=ids[0]) == 0
        assert await stale_count(session=session, workspace_id=ids[1]) == 3


async def test_copy_stores_what_insert_stores(
    engine: AsyncEngine, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results written by COPY (PostgreSQL, many rows) read back exactly as the same rows
    written by INSERT: dates, no customer, the member list, the time stamp, large amounts."""
    import sqlalchemy as sa

    from models import profit_store
    from models.profit_bulk import _INSERT_KEYS
    from models.tables import ProfitResult

    if engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    at = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)

    def rows(contract_base: int) -> list[tuple[Any, ...]]:
        return [
            (
                workspace.id,
                kind,
                start,
                None,
                contract_base + n,
                *(n * 7 + i for i in range(7)),
                2**40 + n,
                [n, n + 3] if n % 2 else [],
                at,
            )
            for n, (kind, start) in enumerate(
                [
                    ("week", date(2025, 1, 6)),
                    ("month", date(2025, 1, 1)),
                    ("week", date(2020, 12, 28)),
                ]
            )
        ]

    async def read(contract_base: int) -> list[tuple[Any, ...]]:
        table = ProfitResult.__table__  # type: ignore[attr-defined]
        cols = [table.c[k] for k in _INSERT_KEYS]
        async with sessions() as session:
            result = await session.execute(
                sa.select(*cols)
                .where(table.c.contract_key.between(contract_base, contract_base + 9))
                .order_by(table.c.contract_key)
            )
            return [(*r[:4], r[4] - contract_base, *r[5:]) for r in result]

    table = ProfitResult.__table__  # type: ignore[attr-defined]
    async with sessions() as session, session.begin():
        monkeypatch.setattr(profit_store, "COPY_FROM_ROWS", 10**9)
        await profit_store.bulk_insert_rows(session, table, _INSERT_KEYS, rows(100))
        monkeypatch.setattr(profit_store, "COPY_FROM_ROWS", 1)
        await profit_store.bulk_insert_rows(session, table, _INSERT_KEYS, rows(200))
    inserted, copied = await read(100), await read(200)
    assert len(copied) == 3
    assert copied == inserted


async def test_time_logged_between_blocks_is_in_the_rebuilds_results(
    engine: AsyncEngine, workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """Time logged while a rebuild is between two blocks, for a customer of a later block, is
    in that customer's rebuilt figures (SQLite sums the next block ahead: a commit in between
    makes it sum the block again in its own transaction); nothing is left stale or wrong."""
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ann = await w.member("Ann")
    await w.cost_rate(5000, date(2025, 1, 1), member_id=ann)
    customers = [await w.customer(n) for n in ("Acme", "Beta", "Gamma")]
    for customer in customers:
        await w.log(ann, 60, date(2025, 6, 2), customer_id=customer)
    await w.refresh()
    logged: list[int] = []

    async def log_between(done: int, total: int) -> None:
        if done == 1:  # after the first block, for the customer of the next one
            logged.append(await w.log(ann, 45, date(2025, 6, 3), customer_id=customers[1]))

    caplog.set_level(logging.INFO, logger="models.profit_bulk")
    await profit_bulk.rebuild(
        sessions=w.sessions,
        workspace_id=w.ws,
        today=w.today,
        at=w.at,
        progress=log_between,
        chunk=1,
    )
    assert logged
    if engine.dialect.name != "sqlite":
        await w.refresh()  # a block already under way: the mark is refreshed as usual
    rebuilt = await w.stored()
    minutes = [v[0] for k, v in rebuilt.items() if k[0] == "month" and k[2] == customers[1]]
    assert sum(minutes) == 105
    if engine.dialect.name == "sqlite":
        # Summed again in the block's own transaction: right at once, nothing left stale.
        assert await w.stale() == 0
        assert "summed again" in caplog.text
    await w.rebuild(per_customer=True)
    assert rebuilt == await w.stored()
