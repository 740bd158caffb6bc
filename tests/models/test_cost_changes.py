"""Cost-rate changes added to the stored results as differences (models.cost_changes and
models.profit_bulk.settle).

The pure part first (which members' rates change on which days), then real workspaces on
SQLite and PostgreSQL: the stored results after a change equal a rebuild from scratch, rows of
stale customer-periods are not counted twice, reported periods are restated, changes that make
days costed or uncosted fall back to a recompute, each workspace settles only its own changes,
and on PostgreSQL a rate change waits for a recompute that read the old rates.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_engine, make_sessionmaker
from models import cost_changes, profit_bulk, profit_refresh
from models.cost_changes import FAR, costs_everywhere, rate_deltas
from models.profitability import CostRates
from models.rates import RateRow
from models.reporting import quality_notes
from models.tables import ContractKind as StoredKind
from models.tables import CostChange, Workspace
from models.timelog import TimeRefused
from tests.conftest import BACKENDS
from tests.models.profit_world import World, fresh_url

JAN = date(2025, 1, 1)
W23 = date(2025, 6, 2)  # Monday of ISO 2025-W23

# -- pure: which members' rates change, on which days ------------------------------------


def _rates(**kw: Any) -> CostRates:
    return CostRates(**kw)


def test_a_group_rate_changes_only_members_without_their_own_rate() -> None:
    before = _rates(
        member={1: [RateRow(JAN, 7000)]},
        group_of={1: 10, 2: 10, 3: None},
        group={10: [RateRow(JAN, 5000)]},
        default=[RateRow(JAN, 4000)],
    )
    after = _rates(
        member=before.member,
        group_of=before.group_of,
        group={10: [RateRow(JAN, 5000), RateRow(date(2025, 3, 1), 6000)]},
        default=before.default,
    )
    # Member 1 keeps their own rate and member 3 is in no group: only member 2 changes.
    assert rate_deltas(before, after, [1, 2, 3]) == [(2, date(2025, 3, 1), FAR, 5000, 6000)]


def test_a_back_dated_rate_ends_where_a_later_rate_takes_over() -> None:
    before = _rates(
        group_of={1: None}, default=[RateRow(JAN, 4000), RateRow(date(2025, 7, 1), 4500)]
    )
    after = _rates(
        group_of={1: None},
        default=[
            RateRow(JAN, 4000),
            RateRow(date(2025, 2, 1), 4200),
            RateRow(date(2025, 7, 1), 4500),
        ],
    )
    assert rate_deltas(before, after, [1]) == [(1, date(2025, 2, 1), date(2025, 7, 1), 4000, 4200)]


def test_adjacent_ranges_of_the_same_change_merge_and_an_unchanged_rate_gives_nothing() -> None:
    before = _rates(
        member={1: [RateRow(JAN, 7000)]},
        group_of={1: None},
        default=[RateRow(JAN, 4000), RateRow(date(2025, 5, 1), 4100)],
    )
    after = _rates(member={1: [RateRow(JAN, 7500)]}, group_of={1: None}, default=before.default)
    # The default's own edge on 1 May does not split member 1's change.
    assert rate_deltas(before, after, [1]) == [(1, JAN, FAR, 7000, 7500)]
    assert rate_deltas(before, before, [1]) == []


def test_a_first_rate_for_uncosted_days_is_not_a_difference() -> None:
    before = _rates(group_of={1: None, 2: None}, member={2: [RateRow(JAN, 6000)]})
    after = _rates(
        group_of={1: None, 2: None}, member={2: [RateRow(JAN, 6000)]}, default=[RateRow(JAN, 4000)]
    )
    deltas = rate_deltas(before, after, [1, 2])
    assert deltas == [(1, JAN, FAR, None, 4000)]
    assert not costs_everywhere(deltas)
    assert costs_everywhere([(1, JAN, FAR, 4000, 4100)])


# -- real workspaces, both databases -----------------------------------------------------


async def _pending(w: World) -> int:
    async with w.sessions() as s:
        stmt = (
            sa.select(sa.func.count())
            .select_from(CostChange)
            .where(CostChange.workspace_id == w.ws)
        )
        return int((await s.execute(stmt)).scalar_one())


async def _setup(w: World) -> dict[str, int]:
    """Ann and Ben in the techs group, Cid with a rate of his own; one hourly customer."""
    ids = {
        "ann": await w.member("Ann", group="techs"),
        "ben": await w.member("Ben", group="techs"),
        "cid": await w.member("Cid"),
    }
    ids["techs"] = await w.group_id("techs")
    await w.cost_rate(4000, JAN)
    await w.cost_rate(5000, JAN, group_id=ids["techs"])
    await w.cost_rate(7000, JAN, member_id=ids["cid"])
    ids["acme"] = await w.customer("Acme")
    ids["hourly"] = await w.contract(
        ids["acme"], "Hourly", StoredKind.HOURLY, JAN, hourly_rate_minor=12_000
    )
    await w.log(ids["ann"], 90, W23, contract_id=ids["hourly"])
    await w.log(ids["ben"], 60, W23 + timedelta(days=8), contract_id=ids["hourly"])
    await w.log(ids["cid"], 30, W23 + timedelta(days=1), contract_id=ids["hourly"])
    await w.log(ids["ann"], 45, W23 + timedelta(days=2), customer_id=ids["acme"])  # no contract
    await w.refresh()
    return ids


async def _equals_a_rebuild(w: World) -> None:
    """What is stored equals a per-customer rebuild from scratch, which writes nothing."""
    stored = await w.stored()
    stats = await w.rebuild(per_customer=True)
    assert (stats.rows_written, stats.rows_deleted) == (0, 0)
    assert await w.stored() == stored


async def test_a_back_dated_group_rate_is_added_as_a_difference(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    before = await w.stored()
    await w.cost_rate(6000, JAN, group_id=ids["techs"])
    # Nothing is marked stale: one change waits, and /profit says so meanwhile.
    assert await w.stale() == 0
    assert await _pending(w) == 1
    report = await w.report("2025-W23")
    assert report.quality.cost_change_pending
    assert "a cost-rate change is being applied to labour costs" in quality_notes(report)
    assert await w.refresh() >= 1
    assert await _pending(w) == 0
    after = await w.stored()
    week = ("week", W23, ids["acme"], ids["hourly"])
    month = ("month", date(2025, 6, 1), ids["acme"], ids["hourly"])
    labour = 6  # the index of labour_cost_60 in World.stored values
    # Ann's 90 minutes in W23 cost 1000 more an hour (sixtieths: minutes x minor per hour);
    # Cid's own rate is unchanged; the month also holds Ben's 60 minutes.
    assert after[week][labour] - before[week][labour] == 90 * 1000
    assert after[month][labour] - before[month][labour] == 150 * 1000
    no_contract = ("week", W23, ids["acme"], 0)
    assert after[no_contract][labour] - before[no_contract][labour] == 45 * 1000
    changed = {k for k in after if after[k] != before[k]}
    assert all(after[k][:labour] == before[k][:labour] for k in changed)  # only labour moved
    assert not (await w.report("2025-W23")).quality.cost_change_pending
    await _equals_a_rebuild(w)


async def test_a_move_to_another_group_is_a_difference(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    """A member moved between groups takes the new group's rate wherever their group's rate
    applied; a move to a group without a rate while no default applies is recomputed."""
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    await w.member("Leo", group="leads")
    await w.cost_rate(8000, JAN, group_id=await w.group_id("leads"))
    await w.refresh()  # Leo's new rate (he has no time yet)
    before = await w.stored()
    assert await w.member("Ann", group="leads") == ids["ann"]
    assert (await _pending(w), await w.stale()) == (1, 0)
    await w.refresh()
    after = await w.stored()
    week = ("week", W23, ids["acme"], ids["hourly"])
    assert after[week][6] - before[week][6] == 90 * (8000 - 5000)
    await _equals_a_rebuild(w)
    # Cid has a rate of his own: moving him changes nothing at all.
    assert await w.member("Cid", group="leads") == ids["cid"]
    assert (await _pending(w), await w.stale()) == (0, 0)


async def test_time_logged_after_the_change_is_not_counted_twice(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    """The customer-period the new entry marks is recomputed with the new rate, not given
    the difference on top."""
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    await w.cost_rate(6500, date(2025, 6, 4), group_id=ids["techs"])
    await w.log(ids["ann"], 120, W23 + timedelta(days=3), contract_id=ids["hourly"])
    await w.cost_rate(5500, date(2025, 6, 1), member_id=ids["ben"])
    assert await _pending(w) == 2 and await w.stale() > 0
    await w.refresh()
    assert await _pending(w) == 0 and await w.stale() == 0
    await _equals_a_rebuild(w)


async def test_a_reported_period_is_restated(engine: AsyncEngine, workspace: Workspace) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    reported, _run = await w.final("2025-W23")
    await w.cost_rate(6000, JAN, group_id=ids["techs"])
    await w.refresh()
    (restated,) = await w.restatements()
    assert (restated.period_kind, restated.period_start, restated.customer_id) == (
        "week",
        W23,
        ids["acme"],
    )
    assert restated.before["labour_cost_60"] == reported.total.labour_cost_60
    assert restated.after["labour_cost_60"] - restated.before["labour_cost_60"] == 135 * 1000
    await _equals_a_rebuild(w)


async def test_a_first_rate_for_uncosted_time_is_recomputed(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    """Days going from uncosted to costed change who is missing a rate: the member's time
    is marked stale and recomputed instead."""
    assert workspace.id is not None
    w = World(engine, workspace.id)
    dee = await w.member("Dee")
    acme = await w.customer("Acme")
    await w.log(dee, 60, W23, customer_id=acme)
    await w.refresh()
    assert (await w.report("2025-W23")).quality.missing_rates == ("Dee",)
    await w.cost_rate(4000, JAN, member_id=dee)
    assert await _pending(w) == 0 and await w.stale() > 0
    await w.refresh()
    report = await w.report("2025-W23")
    assert report.quality.missing_rates == () and report.total.labour_cost_60 == 60 * 4000
    await _equals_a_rebuild(w)


async def test_a_recompute_refuses_to_run_before_changes_are_applied(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    await w.cost_rate(6000, JAN, group_id=ids["techs"])
    async with w.sessions() as s, s.begin():
        with pytest.raises(cost_changes.CostChangesPending):
            await profit_refresh.refresh_some(session=s, workspace_id=w.ws, at=w.at)
    # The set-based rebuild settles them first, so its figures come from the new rates once.
    await w.rebuild()
    assert await _pending(w) == 0
    await _equals_a_rebuild(w)


async def test_each_workspace_settles_only_its_own_changes(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    alpha = World(engine, workspace.id)
    bravo = await World.create(engine, timezone="Europe/Berlin", at=alpha.at, team_id="T0002")
    alpha_ids, bravo_ids = await _setup(alpha), await _setup(bravo)
    await alpha.cost_rate(6000, JAN, group_id=alpha_ids["techs"])
    await bravo.cost_rate(6000, JAN, group_id=bravo_ids["techs"])
    bravo_before = await bravo.stored()
    async with sessions() as s, s.begin():
        stats = await profit_bulk.settle(session=s, workspace_id=alpha.ws, at=alpha.at)
    assert stats is not None and stats.customer_periods > 0
    assert (await _pending(alpha), await _pending(bravo)) == (0, 1)
    assert await bravo.stored() == bravo_before
    await _equals_a_rebuild(alpha)


async def test_a_rate_change_waits_for_a_recompute_that_read_the_old_rates(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ids = await _setup(w)
    async with w.sessions() as s, s.begin():
        assert await profit_bulk.settle(session=s, workspace_id=w.ws, at=w.at) is None
        saving = asyncio.create_task(w.cost_rate(6000, JAN, group_id=ids["techs"]))
        done, _ = await asyncio.wait({saving}, timeout=0.5)
        assert not done  # held back by the recompute's shared lock
    await asyncio.wait_for(saving, timeout=10)
    assert await _pending(w) == 1
    await w.refresh()
    await _equals_a_rebuild(w)


# -- random workspaces, both databases ---------------------------------------------------

FIRST = date(2020, 12, 10)  # ISO 2020-W53 and a year end inside
DAYS = 40
AT = datetime(2021, 1, 20, 9, 0, tzinfo=UTC)

log = st.tuples(
    st.integers(0, 3),  # member
    st.sampled_from([0, 1, 2, 3, 4]),  # hourly, block, fixed (ends mid-month), customer, none
    st.integers(0, DAYS - 1),
    st.integers(1, 400),
    st.booleans(),
)
step = st.one_of(
    st.tuples(
        st.just("rate"),
        st.sampled_from(["ann", "ben", "techs", "default"]),
        st.integers(-5, DAYS),
        st.integers(0, 9000),
    ),
    st.tuples(st.just("log"), log),
)


async def _random_workspace(url: str, logs: list[Any], steps: list[Any]) -> None:
    engine = make_engine(url)
    try:
        w = await World.create(engine, timezone="Pacific/Auckland", at=AT)
        members = [
            await w.member("Ann"),
            await w.member("Ben", group="techs"),
            await w.member("Cat", group="techs"),
            await w.member("Dan"),  # uncosted until a default rate appears
        ]
        techs = await w.group_id("techs")
        await w.cost_rate(5000, date(2020, 1, 1), member_id=members[0])
        await w.cost_rate(4000, FIRST + timedelta(days=12), group_id=techs)
        acme, beta = await w.customer("Acme"), await w.customer("Beta")
        hourly, block, fixed = await w.mixed_contracts(
            acme, beta, FIRST, fixed_end=FIRST + timedelta(days=27)
        )
        targets: list[dict[str, Any]] = [
            {"contract_id": hourly},
            {"contract_id": block},
            {"contract_id": fixed},
            {"customer_id": beta},
            {},
        ]

        async def log_one(entry: Any) -> None:
            who, where, offset, minutes, billable = entry
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

        for entry in logs:
            await log_one(entry)
        await w.refresh()
        for op in steps:
            if op[0] == "log":
                await log_one(op[1])
                continue
            _rate, subject, offset, minor = op
            who = {
                "ann": {"member_id": members[0]},
                "ben": {"member_id": members[1]},
                "techs": {"group_id": techs},
                "default": {},
            }[subject]
            await w.cost_rate(minor, FIRST + timedelta(days=offset), **who)
        await w.refresh()
        assert await _pending(w) == 0 and await w.stale() == 0
        await _equals_a_rebuild(w)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(logs=st.lists(log, max_size=12), steps=st.lists(step, min_size=1, max_size=5))
def test_cost_changes_as_differences_equal_a_rebuild(
    backend: str,
    sqlite_template: Path,
    postgres_ready: bool,
    logs: list[Any],
    steps: list[Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:

        async def run() -> None:
            url = await fresh_url(backend, sqlite_template, Path(tmp))
            await _random_workspace(url, logs, steps)

        asyncio.run(run())
