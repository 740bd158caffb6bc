"""The profitability engine through the database: stored results, refresh, rebuild and
restatements, against figures worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.profitability import present
from models.reporting import NO_CUSTOMER, Report, report_json
from models.tables import ContractKind, Workspace
from tests.models.profit_world import World


@pytest.fixture
async def world(engine: AsyncEngine, workspace: Workspace) -> dict[str, Any]:
    """Four customers, three people, one of each contract kind, and a fortnight of time.

    Cost: alice 50.00/h (own rate; her group's is lower), bob 40.00/h (group "techs"),
    carol none (uncosted). Acme: hourly 120.00/h, 150.00/h from 16 June. Globex: fixed
    3,000.00 a month with 300.00 direct cost, from 1 June. Initech: 10 h block for 1,000.00,
    overage 150.00/h. Umbrella: no contract.
    """
    assert workspace.id is not None
    w = World(engine, workspace.id)
    alice = await w.member("Alice", group="techs")
    bob = await w.member("Bob", group="techs")
    carol = await w.member("Carol")
    await w.cost_rate(4000, date(2025, 1, 1), group_id=await w.group_id("techs"))
    await w.cost_rate(5000, date(2025, 1, 1), member_id=alice)
    acme = await w.customer("Acme")
    globex = await w.customer("Globex")
    initech = await w.customer("Initech")
    umbrella = await w.customer("Umbrella")
    support = await w.contract(
        acme, "Support", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=12000
    )
    await w.charge_rate(support, date(2025, 6, 16), 15000)
    managed = await w.contract(
        globex,
        "Managed",
        ContractKind.FIXED,
        date(2025, 6, 1),
        monthly_fee_minor=300000,
        monthly_direct_cost_minor=30000,
    )
    block = await w.contract(
        initech,
        "Prepaid 10h",
        ContractKind.BLOCK,
        date(2025, 5, 1),
        block_minutes=600,
        block_price_minor=100000,
        overage_minor_per_hour=15000,
    )
    e = {
        "alice_jun3": await w.log(alice, 90, date(2025, 6, 3), contract_id=support),
        "alice_jun4_nb": await w.log(
            alice, 30, date(2025, 6, 4), contract_id=support, billable=False
        ),
        "alice_jun17": await w.log(alice, 60, date(2025, 6, 17), contract_id=support),
        "bob_globex": await w.log(bob, 300, date(2025, 6, 5), contract_id=managed),
        "bob_block1": await w.log(bob, 360, date(2025, 6, 3), contract_id=block),
        "bob_block2": await w.log(bob, 360, date(2025, 6, 10), contract_id=block),
        "carol_acme": await w.log(carol, 60, date(2025, 6, 4), contract_id=support),
        "alice_umbrella": await w.log(alice, 45, date(2025, 6, 5), customer_id=umbrella),
        "bob_internal": await w.log(bob, 30, date(2025, 6, 6)),
    }
    await w.refresh()
    return {
        "w": w,
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "customers": {"Acme": acme, "Globex": globex, "Initech": initech, "Umbrella": umbrella},
        "contracts": {"support": support, "managed": managed, "block": block},
        "entries": e,
    }


def _line(report: Report, name: str) -> dict[str, Any]:
    if name == "Total":
        return {"customer": "Total", **report_json(report)["totals"]}
    return next(c for c in report_json(report)["customers"] if c["customer"] == name)


# period of 2025, customer, hours, billable, revenue, labour, direct, contribution, margin, rate
EXPECTED = [
    ("W23", "Acme", "3.00", "2.50", "300.00", "100.00", "0.00", "200.00", "66.67", "100.00"),
    ("W23", "Globex", "5.00", "5.00", "700.00", "200.00", "70.00", "430.00", "61.43", "140.00"),
    ("W23", "Initech", "6.00", "6.00", "600.00", "240.00", "0.00", "360.00", "60.00", "100.00"),
    ("W23", "Umbrella", "0.75", "0.75", "0.00", "37.50", "0.00", "-37.50", None, "0.00"),
    ("W23", NO_CUSTOMER, "0.50", "0.50", "0.00", "20.00", "0.00", "-20.00", None, "0.00"),
    ("W23", "Total", "15.25", "14.75", "1600.00", "597.50", "70.00", "932.50", "58.28", "104.92"),
    # Block: 4 h left in it (400.00), 2 h overage at 150.00.
    ("W24", "Initech", "6.00", "6.00", "700.00", "240.00", "0.00", "460.00", "65.71", "116.67"),
    ("W24", "Globex", "0.00", "0.00", "700.00", "0.00", "70.00", "630.00", "90.00", None),
    # The charge rate changed on 16 June.
    ("W25", "Acme", "1.00", "1.00", "150.00", "50.00", "0.00", "100.00", "66.67", "150.00"),
    # The fee started on Sunday 1 June: one day of June's fee in this week.
    ("W22", "Globex", "0.00", "0.00", "100.00", "0.00", "10.00", "90.00", "90.00", None),
    # 30 June from June's fee, 1-6 July from July's: 3,000.00 / 31 days, the first 23 days
    # getting the extra cent (96.78) and 300.00 / 31 likewise (9.68).
    ("W27", "Globex", "0.00", "0.00", "680.68", "0.00", "68.08", "612.60", "90.00", None),
    ("06", "Acme", "4.00", "3.50", "450.00", "150.00", "0.00", "300.00", "66.67", "112.50"),
    ("06", "Globex", "5.00", "5.00", "3000.00", "200.00", "300.00", "2500.00", "83.33", "600.00"),
    ("06", "Initech", "12.00", "12.00", "1300.00", "480.00", "0.00", "820.00", "63.08", "108.33"),
]


@pytest.mark.parametrize(
    "key, name, hours, billable, revenue, labour, direct, contrib, margin, rate",
    EXPECTED,
    ids=[f"{row[0]}-{row[1]}" for row in EXPECTED],
)
async def test_stored_figures_match_the_hand_worked_ones(
    world: dict[str, Any],
    key: str,
    name: str,
    hours: str,
    billable: str,
    revenue: str,
    labour: str,
    direct: str,
    contrib: str,
    margin: str | None,
    rate: str | None,
) -> None:
    report = await world["w"].report(f"2025-{key}")  # "W23" or "06"
    line = _line(report, name)
    assert (
        line["hours"],
        line["billable_hours"],
        line["revenue"],
        line["labour_cost"],
        line["direct_cost"],
        line["contribution"],
        line["margin_pct"],
        line["effective_rate"],
    ) == (hours, billable, revenue, labour, direct, contrib, margin, rate)


async def test_data_quality_names_who_has_no_rate(world: dict[str, Any]) -> None:
    quality = report_json(await world["w"].report("2025-W23"))["quality"]
    assert quality == {
        "uncosted_hours": "1.00",  # Carol's hour on Acme: counted, never costed at zero
        "unattributed_hours": "1.25",  # 45 min for Umbrella + 30 min against no customer
        "unpriced_hours": "0.00",
        "missing_rates": ["Carol"],
        "stale_customers": 0,
        "cost_change_pending": False,
    }


async def test_contract_lines_split_the_customer(world: dict[str, Any]) -> None:
    report = await world["w"].report("2025-W23")
    by_name = {(line.customer, line.contract): line for line in report.contracts}
    assert present(by_name[("Acme", "Support")].figures).revenue_minor == 30000
    assert by_name[("Acme", "Support")].kind == "hourly"
    assert by_name[("Umbrella", "(no contract)")].figures.unattributed_minutes == 45


async def test_customer_filter(world: dict[str, Any]) -> None:
    acme = world["customers"]["Acme"]
    report = await world["w"].report("2025-W23", customer_ids=[acme])
    assert [line.customer for line in report.customers] == ["Acme"]
    assert present(report.total).revenue_minor == 30000
    assert report.customer_filter == ("Acme",)


async def test_incremental_results_equal_a_full_rebuild(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.edit(world["alice"], world["entries"]["alice_jun3"], minutes=150)
    await w.delete(world["bob"], world["entries"]["bob_block1"])
    await w.cost_rate(6000, date(2025, 6, 10), member_id=world["bob"])
    await w.refresh()
    incremental = await w.stored()
    stats = await w.rebuild()
    assert await w.stored() == incremental
    assert (stats.rows_written, stats.rows_deleted) == (0, 0)
    assert await w.stale() == 0


async def test_rebuild_from_nothing_restores_every_result(world: dict[str, Any]) -> None:
    w = world["w"]
    before = await w.stored()
    async with w.sessions() as s, s.begin():
        from sqlalchemy import delete

        from models.tables import ProfitResult

        await s.execute(delete(ProfitResult))
    await w.rebuild()
    assert await w.stored() == before


async def test_late_edit_after_a_final_report_is_restated_once(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.final("2025-W23")
    await w.edit(world["alice"], world["entries"]["alice_jun3"], minutes=120)
    await w.refresh()
    await w.edit(world["alice"], world["entries"]["alice_jun3"], minutes=150)
    await w.refresh()

    (item,) = (await w.report("2025-W24")).restatements
    assert (item.period_key, item.customer) == ("2025-W23", "Acme")
    before, after = present(item.before), present(item.after)
    # What the final report said, and the figures now: 2 h 30 billed at 120.00, cost 50.00/h.
    assert (before.revenue_minor, before.labour_cost_minor) == (30000, 10000)
    assert (after.revenue_minor, after.labour_cost_minor) == (42000, 15000)
    # June was never reported, so it is simply recomputed.
    assert [r.period_kind for r in await w.restatements()] == ["week"]

    _report, run_id = await w.final("2025-W24")
    assert [r.reported_in_run_id for r in await w.restatements()] == [run_id]
    assert (await w.report("2025-W25")).restatements == ()


async def test_a_rate_with_an_earlier_effective_date_restates(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.final("2025-W23")
    await w.cost_rate(6000, date(2025, 6, 1), member_id=world["alice"])
    await w.refresh()
    items = {i.customer: i for i in (await w.report("2025-W24")).restatements}
    assert set(items) == {"Acme", "Umbrella"}
    assert present(items["Acme"].after).labour_cost_minor == 12000  # 2 h at 60.00
    assert present(items["Umbrella"].after).labour_cost_minor == 4500  # 45 min at 60.00
    assert present(items["Umbrella"].before).labour_cost_minor == 3750


async def test_a_change_undone_leaves_nothing_to_restate(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.final("2025-W23")
    entry = world["entries"]["alice_jun3"]
    await w.edit(world["alice"], entry, minutes=120)
    await w.refresh()
    assert len(await w.restatements()) == 1
    await w.edit(world["alice"], entry, minutes=90)
    await w.refresh()
    assert await w.restatements() == []


async def test_late_time_on_a_block_restates_the_later_week(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.final("2025-W24")
    block = world["contracts"]["block"]
    await w.log(world["bob"], 120, date(2025, 5, 28), contract_id=block)
    await w.refresh()
    (item,) = [i for i in await w.restatements() if i.period_kind == "week"]
    assert item.period_start == date(2025, 6, 9)
    before, after = present_json(item.before), present_json(item.after)
    # 8 h were used before the week now: 2 h left in the block, 4 h overage.
    assert (before["revenue"], after["revenue"]) == ("700.00", "800.00")
    incremental = await w.stored()
    await w.rebuild()
    assert await w.stored() == incremental


def present_json(data: dict[str, Any]) -> dict[str, Any]:
    from models.reporting import figures_from_json, presented_json

    return presented_json(present(figures_from_json(data)))


async def test_the_horizon_follows_the_calendar(world: dict[str, Any]) -> None:
    w = world["w"]
    assert await w.horizon(date(2025, 6, 20)) == 0  # June is covered already
    marked = await w.horizon(date(2025, 7, 10))
    assert marked == 5  # weeks 28 to 31 (week 27 reaches into July already) and July
    await w.refresh()
    july = _line(await w.report("2025-07"), "Globex")
    assert (july["revenue"], july["direct_cost"]) == ("3000.00", "300.00")
    incremental = await w.stored()
    await w.rebuild(date(2025, 7, 10))
    assert await w.stored() == incremental


async def test_a_report_counts_customers_still_being_refreshed(world: dict[str, Any]) -> None:
    w = world["w"]
    await w.log(world["bob"], 30, date(2025, 6, 6), contract_id=world["contracts"]["managed"])
    report = await w.report("2025-W23")
    assert report.quality.stale_customers == 1
    assert report_json(report)["customers"][1]["hours"] == "5.00"  # not refreshed yet
    await w.refresh()
    assert _line(await w.report("2025-W23"), "Globex")["hours"] == "5.50"


async def test_margin_and_rates_are_decimals(world: dict[str, Any]) -> None:
    line = (await world["w"].report("2025-W23")).customer(world["customers"]["Acme"])
    assert line is not None
    assert line.presented.margin_pct == Decimal("66.67")
    assert line.presented.effective_rate == Decimal("100.00")
