"""A month's journal and invoices from stored results, on SQLite and PostgreSQL, hand-computed.

June 2025, Alice costs 50.00/h:
- Acme, hourly "Support" (120.00/h, 150.00/h from 16 June): ticket #1 90 min on 3 June and 60 min
  logged late on 4 June (after week 23 was reported: a restated week), 30 min non-billable;
  ticket #2 60 min on 17 June. Revenue 300.00 + 150.00 = 450.00; labour 4 h = 200.00.
- Beta, fixed "Managed" 3,000.00 a month from 11 June, 300.00 direct cost a month: 20 of 30
  days, revenue 2,000.00, direct cost 200.00.
- Gamma, block "Block" 10 h for 1,000.00, overage 150.00/h, 8 h used in May; 3 h in June:
  2 h of the block (200.00) and 1 h overage (150.00); labour 150.00.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from models import exports
from models.accounting import (
    DEFAULT_ACCOUNTS,
    LineKind,
    MissingAccount,
    balances,
    invoices_json,
)
from models.periods import Period, month_of
from models.reporting import report_json
from models.tables import ContractKind, JournalExport, Workspace
from tests.models.profit_world import AT, World

JUNE = month_of(date(2025, 6, 1))
JULY = month_of(date(2025, 7, 1))
AUGUST = month_of(date(2025, 8, 1))


async def _world(engine: AsyncEngine, workspace: Workspace) -> tuple[World, dict[str, int]]:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    alice = await w.member("Alice")
    await w.cost_rate(5000, date(2025, 1, 1), member_id=alice)
    acme, beta, gamma = [await w.customer(n) for n in ("Acme", "Beta", "Gamma")]
    support = await w.contract(
        acme, "Support", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=12000
    )
    await w.charge_rate(support, date(2025, 6, 16), 15000)
    managed = await w.contract(
        beta,
        "Managed",
        ContractKind.FIXED,
        date(2025, 6, 11),
        monthly_fee_minor=300000,
        monthly_direct_cost_minor=30000,
    )
    block = await w.contract(
        gamma,
        "Block",
        ContractKind.BLOCK,
        date(2025, 5, 1),
        block_minutes=600,
        block_price_minor=100000,
        overage_minor_per_hour=15000,
    )
    t1 = await w.ticket(1, acme, support)
    t2 = await w.ticket(2, acme, support)
    await w.log(alice, 90, date(2025, 6, 3), ticket_id=t1)
    await w.log(alice, 30, date(2025, 6, 4), ticket_id=t1, billable=False)
    await w.log(alice, 60, date(2025, 6, 17), ticket_id=t2)
    await w.log(alice, 480, date(2025, 5, 20), contract_id=block, customer_id=gamma)
    await w.log(alice, 180, date(2025, 6, 5), contract_id=block, customer_id=gamma)
    await w.refresh()
    await w.final("2025-W23")
    await w.log(alice, 60, date(2025, 6, 4), ticket_id=t1)  # restates week 23
    await w.refresh()
    assert len(await w.restatements()) == 1
    ids = {"alice": alice, "acme": acme, "support": support, "managed": managed, "block": block}
    return w, ids


def _lines(
    journal: exports.Journal, adjusts: str | None = None
) -> list[tuple[str, str, str, str, int, int]]:
    return [
        (
            ln.customer,
            ln.contract,
            ln.line_kind,
            ln.day.isoformat(),
            ln.debit_minor,
            ln.credit_minor,
        )
        for ln in journal.lines
        if adjusts is None or ln.adjusts == adjusts
    ]


JUNE_LINES = [
    ("Acme", "Support", "receivable", "2025-06-30", 45000, 0),
    ("Acme", "Support", "revenue_hourly", "2025-06-30", 0, 45000),
    ("Beta", "Managed", "receivable", "2025-06-30", 200000, 0),
    ("Beta", "Managed", "revenue_fixed", "2025-06-30", 0, 200000),
    ("Beta", "Managed", "direct_cost", "2025-06-30", 20000, 0),
    ("Beta", "Managed", "accrued_costs", "2025-06-30", 0, 20000),
    ("Gamma", "Block", "receivable", "2025-06-30", 15000, 0),
    ("Gamma", "Block", "deferred_revenue", "2025-06-30", 20000, 0),
    ("Gamma", "Block", "revenue_block", "2025-06-30", 0, 20000),
    ("Gamma", "Block", "revenue_overage", "2025-06-30", 0, 15000),
]
LABOUR_LINES = [
    ("Acme", "Support", "labour_cost", "2025-06-30", 20000, 0),
    ("Acme", "Support", "labour_allocation", "2025-06-30", 0, 20000),
    ("Gamma", "Block", "labour_cost", "2025-06-30", 15000, 0),
    ("Gamma", "Block", "labour_allocation", "2025-06-30", 0, 15000),
]


def _cents(text: str) -> int:
    return int(Decimal(text) * 100)


@pytest.mark.parametrize("labour", [False, True])
async def test_journal_of_a_month_hand_computed_and_reconciled(
    engine: AsyncEngine, workspace: Workspace, labour: bool
) -> None:
    w, _ids = await _world(engine, workspace)
    async with w.sessions() as s, s.begin():
        await exports.set_labour_allocation(session=s, workspace_id=w.ws, on=labour)
        result = await exports.export_journal(
            session=s, workspace_id=w.ws, month=JUNE, final=False, at=AT
        )
        report = report_json(
            await exports.profit_report.build_report(session=s, workspace_id=w.ws, period=JUNE)
        )
    expected = JUNE_LINES + (LABOUR_LINES if labour else [])
    assert sorted(_lines(result.journal)) == sorted(expected)
    for customer, (debit, credit) in balances(result.journal.lines).items():
        assert debit == credit, customer
    assert result.journal.total_debit == result.journal.total_credit
    assert result.journal.report_run.startswith("profitability 2025-06 computed ")
    # Reconciles with `docket report profitability --period 2025-06 --format json`.
    by_kind: dict[str, int] = {}
    for line in result.journal.lines:
        by_kind[line.line_kind] = (
            by_kind.get(line.line_kind, 0) + line.debit_minor - line.credit_minor
        )
    revenue = -sum(
        by_kind.get(k, 0)
        for k in ("revenue_hourly", "revenue_fixed", "revenue_block", "revenue_overage")
    )
    assert revenue == _cents(report["totals"]["revenue"]) == 280000
    assert by_kind["direct_cost"] == _cents(report["totals"]["direct_cost"]) == 20000
    if labour:
        assert by_kind["labour_cost"] == _cents(report["totals"]["labour_cost"]) == 35000
    assert not result.final and not result.adjusted


async def test_invoices_hand_computed_and_reconciled(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    w, ids = await _world(engine, workspace)
    async with w.sessions() as s, s.begin():
        for name, code in (("support", "SUP-H"), ("managed", "MGD-F"), ("block", "BLK-10")):
            contract = await s.get(exports.Contract, ids[name])
            assert contract is not None
            contract.product_code = code
            s.add(contract)
    async with w.sessions() as s:
        invoices = await exports.build_invoices(session=s, workspace_id=w.ws, month=JUNE)
        report = report_json(
            await exports.profit_report.build_report(session=s, workspace_id=w.ws, period=JUNE)
        )
    data = invoices_json(invoices)
    got = {
        inv["customer"]: [
            (ln["product_code"], ln["ticket"], ln["quantity"], ln["unit_price"], ln["amount"])
            for ln in inv["lines"]
        ]
        for inv in data["invoices"]
    }
    assert got == {
        "Acme": [
            ("SUP-H", 1, "2.50", "120.00", "300.00"),
            ("SUP-H", 2, "1.00", "150.00", "150.00"),
        ],
        "Beta": [("MGD-F", None, "1.00", "2000.00", "2000.00")],
        "Gamma": [
            ("BLK-10", None, "2.00", None, None),
            ("BLK-10", None, "1.00", "150.00", "150.00"),
        ],
    }
    gamma = data["invoices"][2]["lines"][0]["description"]
    assert "10.00 of 10.00 h used, 0.00 h left" in gamma
    assert "20 of 30 days" in data["invoices"][1]["lines"][0]["description"]
    assert [inv["total"] for inv in data["invoices"]] == ["450.00", "2000.00", "150.00"]
    # Invoiced = reported revenue minus the prepaid block used (sold up front).
    block_used = 20000
    assert set(data) == {"month", "invoices"}
    assert set(data["invoices"][0]) == {"customer", "lines", "total"}
    invoiced = sum(_cents(inv["total"]) for inv in data["invoices"])
    assert invoiced == invoices.total_minor == _cents(report["totals"]["revenue"]) - block_used


async def test_final_then_a_change_adjusts_exactly_once(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    w, ids = await _world(engine, workspace)
    w.at = AT + timedelta(days=70)
    w.today = date(2025, 8, 29)
    await w.horizon(w.today)
    await w.refresh()
    async with w.sessions() as s, s.begin():
        june = await exports.export_journal(
            session=s, workspace_id=w.ws, month=JUNE, final=True, at=w.at
        )
    assert june.final and not june.adjusted
    async with w.sessions() as s, s.begin():
        with pytest.raises(exports.AlreadyFinal):
            await exports.export_journal(
                session=s, workspace_id=w.ws, month=JUNE, final=True, at=w.at
            )
    # A late entry on a June date: 30 min at 120.00 = 60.00 more revenue.
    await w.log(
        ids["alice"], 30, date(2025, 6, 10), contract_id=ids["support"], customer_id=ids["acme"]
    )
    await w.refresh()

    async def journal(month: Period, *, final: bool) -> exports.JournalResult:
        async with w.sessions() as s, s.begin():
            return await exports.export_journal(
                session=s, workspace_id=w.ws, month=month, final=final, at=w.at
            )

    def adjustments(result: exports.JournalResult) -> list[tuple[str, str, str, str, int, int]]:
        return _lines(result.journal, "2025-06")

    expected = [
        ("Acme", "Support", "receivable", "2025-07-31", 6000, 0),
        ("Acme", "Support", "revenue_hourly", "2025-07-31", 0, 6000),
    ]
    preview = await journal(JULY, final=False)
    assert adjustments(preview) == expected  # a preview records nothing
    july = await journal(JULY, final=True)
    assert adjustments(july) == expected and july.adjusted == ("2025-06",)
    assert july.journal.total_debit == july.journal.total_credit
    assert all("Adjustment to 2025-06" in ln.description for ln in july.journal.lines if ln.adjusts)
    august = await journal(AUGUST, final=True)
    assert adjustments(august) == [] and august.adjusted == ()
    # The June preview still shows what June is now, and says it was final.
    again = await journal(JUNE, final=False)
    assert again.already_final
    async with w.sessions() as s:
        rows = (await s.exec(select(JournalExport).where(JournalExport.workspace_id == w.ws))).all()
    assert sorted((r.month, r.exported_in, r.kind) for r in rows) == [
        ("2025-06", "2025-06", "final"),
        ("2025-06", "2025-07", "adjustment"),
        ("2025-07", "2025-07", "final"),
        ("2025-08", "2025-08", "final"),
    ]


async def test_missing_account_code_records_nothing(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    w, _ids = await _world(engine, workspace)
    codes = {str(k): v for k, v in DEFAULT_ACCOUNTS.items() if k != LineKind.REVENUE_BLOCK}
    async with w.sessions() as s, s.begin():
        assert await exports.replace_account_codes(session=s, workspace_id=w.ws, codes=codes) == (
            9,
            0,
        )
    with pytest.raises(MissingAccount, match="revenue_block"):
        async with w.sessions() as s, s.begin():
            await exports.export_journal(
                session=s, workspace_id=w.ws, month=JUNE, final=True, at=AT
            )
    async with w.sessions() as s:
        assert (await s.exec(select(JournalExport))).all() == []
        accounts = await exports.load_accounts(session=s, workspace_id=w.ws)
    assert "revenue_block" not in accounts and accounts["receivable"] == (
        "1200",
        "Accounts receivable",
    )
