"""Properties of the stored results, on a real SQLite database, for random histories:

1. Refreshing incrementally after every kind of change (time logged, edited, moved, deleted;
   cost and charge rates with back-dated effect; contract terms changed) gives exactly what a
   full rebuild computes.
2. The weeks add up to the month. Weeks straddle month ends, so the check is: a month's stored
   figures = the stored weeks lying wholly inside it + the days at each end of the month that
   fall in a straddling week, computed fresh for just those days.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.db import make_engine
from models import engine as per_customer
from models import profit_report
from models.directory import DirectoryError
from models.periods import date_range, month_of, week_of
from models.profitability import INT_FIELDS, Figures, sum_figures
from models.tables import ContractKind, Role
from models.timelog import TimeRefused
from tests.models.profit_world import World

AT = datetime(2025, 7, 15, 9, 0, tzinfo=UTC)
FIRST = date(2025, 5, 20)
DAYS = 52  # 20 May .. 10 July: three months, nine weeks, straddling both month ends
MONTHS = (date(2025, 5, 1), date(2025, 6, 1), date(2025, 7, 1))

day = st.integers(min_value=0, max_value=DAYS - 1)
amount = st.integers(min_value=0, max_value=20_000)

log_op = st.tuples(
    st.just("log"),
    st.integers(0, 2),  # member
    # where: hourly, block (twice as likely), fixed, customer without contract, no customer
    st.sampled_from([0, 1, 1, 2, 3, 4]),
    day,
    st.integers(1, 300),
    st.booleans(),
)
edit_op = st.tuples(
    st.just("edit"),
    st.integers(0, 50),
    st.one_of(st.none(), st.integers(1, 600)),
    st.one_of(st.none(), day),
)
delete_op = st.tuples(st.just("delete"), st.integers(0, 50))
cost_op = st.tuples(st.just("cost"), st.sampled_from(["member", "group", "default"]), day, amount)
charge_op = st.tuples(st.just("charge"), day, amount)
contract_op = st.tuples(
    st.just("contract"),
    st.sampled_from(["fixed-end", "fixed-fee", "block-size", "hourly-start"]),
    day,
    amount,
)
refresh_op = st.tuples(st.just("refresh"))
operation = st.one_of(
    log_op, edit_op, delete_op, cost_op, charge_op, contract_op, refresh_op, refresh_op
)


async def _world(url: str) -> tuple[World, dict[str, Any]]:
    engine = make_engine(url)
    w = await World.create(engine, timezone="Europe/Berlin", at=AT)
    members = [
        await w.member("Ann"),
        await w.member("Ben", group="techs"),
        await w.member("Cid"),  # uncosted until a default rate appears
    ]
    boss = await w.member("Boss", role=Role.MANAGER)  # edits and deletes anyone's time
    await w.cost_rate(5000, date(2025, 1, 1), member_id=members[0])
    await w.cost_rate(4000, date(2025, 6, 10), group_id=await w.group_id("techs"))
    acme = await w.customer("Acme")
    beta = await w.customer("Beta")
    contracts = {
        "hourly": await w.contract(
            acme, "Hourly", ContractKind.HOURLY, date(2025, 5, 25), hourly_rate_minor=12_000
        ),
        "block": await w.contract(
            acme,
            "Block",
            ContractKind.BLOCK,
            date(2025, 5, 1),
            date(2025, 7, 5),
            # Entries of up to 5 h fill it within a few; the price makes every minute's share
            # a fraction, so the order of consumption shows in the exact figures.
            block_minutes=400,
            block_price_minor=50_001,
            overage_minor_per_hour=13_000,
        ),
        "fixed": await w.contract(
            beta,
            "Fixed",
            ContractKind.FIXED,
            date(2025, 5, 28),
            monthly_fee_minor=100_001,  # does not divide evenly by any month's days
            monthly_direct_cost_minor=7_777,
        ),
    }
    return w, {
        "engine": engine,
        "members": members,
        "boss": boss,
        "acme": acme,
        "beta": beta,
        **contracts,
    }


async def _apply(w: World, ctx: dict[str, Any], op: tuple[Any, ...], entries: list[int]) -> None:
    kind = op[0]
    if kind == "log":
        _, who, where, offset, minutes, billable = op
        target: dict[str, Any] = [
            {"contract_id": ctx["hourly"]},
            {"contract_id": ctx["block"]},
            {"contract_id": ctx["fixed"]},
            {"customer_id": ctx["beta"]},
            {},
        ][where]
        try:
            entries.append(
                await w.log(
                    ctx["members"][who],
                    minutes,
                    FIRST + timedelta(days=offset),
                    billable=billable,
                    **target,
                )
            )
        except TimeRefused:
            pass  # more than 24 h on a day: refused, as it should be
    elif kind == "edit" and entries:
        _, index, minutes, offset = op
        entry = entries[index % len(entries)]
        changes: dict[str, Any] = {}
        if minutes is not None:
            changes["minutes"] = minutes
        if offset is not None:
            changes["work_date"] = FIRST + timedelta(days=offset)
        if changes:
            try:
                await w.edit(ctx["boss"], entry, **changes)
            except TimeRefused:
                pass  # more than 24 h on the new day
    elif kind == "delete" and entries:
        await w.delete(ctx["boss"], entries.pop(op[1] % len(entries)))
    elif kind == "cost":
        _, subject, offset, minor = op
        since = FIRST + timedelta(days=offset)
        if subject == "member":
            await w.cost_rate(minor, since, member_id=ctx["members"][0])
        elif subject == "group":
            await w.cost_rate(minor, since, group_id=await w.group_id("techs"))
        else:
            await w.cost_rate(minor, since)
    elif kind == "charge":
        await w.charge_rate(ctx["hourly"], FIRST + timedelta(days=op[1]), op[2])
    elif kind == "contract":
        try:
            await _change_contract(w, ctx, *op[1:])
        except DirectoryError:
            pass  # e.g. an end before the start: refused, nothing changes
    elif kind == "refresh":
        await w.refresh()


async def _change_contract(
    w: World, ctx: dict[str, Any], which: str, offset: int, minor: int
) -> None:
    on = FIRST + timedelta(days=offset)
    if which == "fixed-end":
        await w.contract(
            ctx["beta"],
            "Fixed",
            ContractKind.FIXED,
            date(2025, 5, 28),
            on,
            monthly_fee_minor=100_001,
            monthly_direct_cost_minor=7_777,
        )
    elif which == "fixed-fee":
        await w.contract(
            ctx["beta"],
            "Fixed",
            ContractKind.FIXED,
            date(2025, 5, 28),
            monthly_fee_minor=minor + 1,
            monthly_direct_cost_minor=minor // 3,
        )
    elif which == "block-size":
        await w.contract(
            ctx["acme"],
            "Block",
            ContractKind.BLOCK,
            date(2025, 5, 1),
            date(2025, 7, 5),
            block_minutes=60 + offset * 10,
            block_price_minor=minor + 1,
            overage_minor_per_hour=13_000,
        )
    else:
        await w.contract(ctx["acme"], "Hourly", ContractKind.HOURLY, on, hourly_rate_minor=minor)


def _exact(fig: Figures) -> tuple[Any, ...]:
    return (*(getattr(fig, n) for n in INT_FIELDS), tuple(sorted(fig.missing_rates)))


async def _weeks_add_up(w: World) -> None:
    async with w.sessions() as session:
        for customer in await per_customer.customers_with_data(session=session, workspace_id=w.ws):
            for start in MONTHS:
                month = month_of(start)
                stored = await profit_report.stored_rows(
                    session=session, workspace_id=w.ws, period=month, customer_ids=[customer]
                )
                parts: list[Figures] = []
                monday = week_of(month.start).start
                while monday <= month.end:
                    week = week_of(monday)
                    if week.start >= month.start and week.end <= month.end:
                        rows = await profit_report.stored_rows(
                            session=session, workspace_id=w.ws, period=week, customer_ids=[customer]
                        )
                    else:
                        edge = date_range(max(week.start, month.start), min(week.end, month.end))
                        rows = await per_customer.compute_customer_period(
                            session=session, workspace_id=w.ws, customer_id=customer, period=edge
                        )
                    parts.extend(rows.values())
                    monday += timedelta(days=7)
                assert _exact(sum_figures(stored.values())) == _exact(sum_figures(parts)), (
                    customer,
                    month.key,
                )


async def _check(url: str, history: list[tuple[Any, ...]], ops: list[tuple[Any, ...]]) -> None:
    w, ctx = await _world(url)
    try:
        entries: list[int] = []
        # A refreshed history first, so later changes must update results already stored.
        for op in history:
            await _apply(w, ctx, op, entries)
        await w.refresh()
        for op in ops:
            await _apply(w, ctx, op, entries)
        await w.refresh()
        incremental = await w.stored()
        await _weeks_add_up(w)
        await w.rebuild(chunk=2)  # set-based, in blocks of two customers
        assert await w.stored() == incremental
        assert await w.stale() == 0
        await w.rebuild(per_customer=True)  # one customer at a time
        assert await w.stored() == incremental
    finally:
        await ctx["engine"].dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    history=st.lists(log_op, min_size=2, max_size=8),
    ops=st.lists(operation, min_size=1, max_size=10),
)
# Histories random generation reaches only rarely, kept as fixed cases:
# late block time before stored later periods (their revenue moves)...
@example(
    history=[("log", 0, 1, 30, 240, True), ("log", 0, 1, 35, 200, True)],
    ops=[("log", 0, 1, 0, 100, True)],
)
# ...block usage chained across periods, back-dated cost and charge rates...
@example(
    history=[("log", 0, 1, 0, 200, True), ("log", 1, 1, 20, 300, True), ("log", 2, 0, 9, 50, True)],
    ops=[("cost", "default", 0, 3000), ("charge", 5, 9000), ("cost", "group", 3, 4500)],
)
# ...an entry moved from 31 May to 1 June, and a fixed fee ended mid-month.
@example(
    history=[("log", 0, 0, 11, 60, True), ("log", 1, 2, 12, 30, False)],
    ops=[("edit", 0, None, 12), ("refresh",), ("contract", "fixed-end", 25, 0)],
)
def test_incremental_equals_rebuild_and_weeks_make_the_month(
    sqlite_template: Path, history: list[tuple[Any, ...]], ops: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docket.db"
        shutil.copy(sqlite_template, path)
        asyncio.run(_check(f"sqlite+aiosqlite:///{path}", history, ops))
