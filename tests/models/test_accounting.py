"""Journal postings and invoice lines: pure rules, table-driven, hand-computed."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest

from models.accounting import (
    DEFAULT_ACCOUNTS,
    BillableTime,
    BlockUsage,
    ContractMonth,
    Invoice,
    Invoices,
    Journal,
    LineKind,
    MissingAccount,
    Names,
    active_days,
    add_amounts,
    amounts_from_json,
    amounts_to_json,
    balances,
    block_lines,
    difference,
    fixed_fee_line,
    hourly_lines,
    journal_amounts,
    journal_lines,
    parse_account_codes,
    render_invoices,
    render_journal,
)
from models.periods import month_of

JUNE = month_of(date(2025, 6, 1))
NAMES = Names(customers={1: "Acme", 2: "Beta"}, contracts={10: "Support", 20: "Block"})
ACCOUNTS = {str(k): v for k, v in DEFAULT_ACCOUNTS.items()}

R, D = LineKind.RECEIVABLE, LineKind.DEFERRED_REVENUE


@pytest.mark.parametrize(
    ("row", "labour", "expected"),
    [
        (
            ContractMonth(1, 10, "hourly", 45000, 20000, 0),
            False,
            {(1, 10, R): 45000, (1, 10, LineKind.REVENUE_HOURLY): -45000},
        ),
        (
            ContractMonth(1, 10, "hourly", 45000, 20000, 0),
            True,
            {
                (1, 10, R): 45000,
                (1, 10, LineKind.REVENUE_HOURLY): -45000,
                (1, 10, LineKind.LABOUR_COST): 20000,
                (1, 10, LineKind.LABOUR_ALLOCATION): -20000,
            },
        ),
        (
            ContractMonth(2, 20, "fixed", 200000, 0, 20000),
            False,
            {
                (2, 20, R): 200000,
                (2, 20, LineKind.REVENUE_FIXED): -200000,
                (2, 20, LineKind.DIRECT_COST): 20000,
                (2, 20, LineKind.ACCRUED_COSTS): -20000,
            },
        ),
        (
            # 350.00 of block revenue: 150.00 overage, 200.00 of the block used.
            ContractMonth(2, 20, "block", 35000, 15000, 0, overage_minor=15000),
            False,
            {
                (2, 20, R): 15000,
                (2, 20, LineKind.REVENUE_OVERAGE): -15000,
                (2, 20, D): 20000,
                (2, 20, LineKind.REVENUE_BLOCK): -20000,
            },
        ),
        (
            # Unattributed time and internal work: cost only, no revenue.
            ContractMonth(None, None, None, 0, 5000, 0),
            True,
            {(None, 0, LineKind.LABOUR_COST): 5000, (None, 0, LineKind.LABOUR_ALLOCATION): -5000},
        ),
        (ContractMonth(None, None, None, 0, 5000, 0), False, {}),
    ],
)
def test_journal_amounts(row: ContractMonth, labour: bool, expected: dict) -> None:
    amounts = journal_amounts([row], labour=labour)
    assert amounts == expected
    assert sum(amounts.values()) == 0


def test_lines_balance_per_customer_and_name_accounts() -> None:
    amounts = journal_amounts(
        [
            ContractMonth(1, 10, "hourly", 45000, 20000, 0),
            ContractMonth(2, 20, "block", 35000, 15000, 1234, overage_minor=15000),
        ],
        labour=True,
    )
    lines = journal_lines(amounts, day=JUNE.end, accounts=ACCOUNTS, names=NAMES, month="2025-06")
    assert balances(lines) == {"Acme": (65000, 65000), "Beta": (51234, 51234)}
    first = lines[0]
    assert (first.customer, first.account_code, first.debit_minor, first.credit_minor) == (
        "Acme",
        "1200",
        45000,
        0,
    )
    assert first.description == "2025-06 receivable: Acme / Support"
    assert {line.day for line in lines} == {date(2025, 6, 30)}


def test_missing_account_names_the_line_kind() -> None:
    accounts = dict(ACCOUNTS)
    del accounts[LineKind.REVENUE_OVERAGE]
    amounts = journal_amounts([ContractMonth(2, 20, "block", 35000, 0, 0, 15000)], labour=False)
    with pytest.raises(MissingAccount, match="revenue_overage"):
        journal_lines(amounts, day=JUNE.end, accounts=accounts, names=NAMES, month="2025-06")


def test_adjustment_is_the_difference_and_balances() -> None:
    sent = journal_amounts([ContractMonth(1, 10, "hourly", 45000, 0, 0)], labour=False)
    now = journal_amounts([ContractMonth(1, 10, "hourly", 51000, 0, 0)], labour=False)
    change = difference(now, sent)
    assert change == {(1, 10, R): 6000, (1, 10, LineKind.REVENUE_HOURLY): -6000}
    assert difference(add_amounts(sent, change), now) == {}
    assert amounts_from_json(amounts_to_json(change)) == change
    assert amounts_from_json(amounts_to_json({(None, 0, "labour_cost"): 5})) == {
        (None, 0, "labour_cost"): 5
    }


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (date(2025, 6, 11), None, 20),
        (date(2025, 1, 1), None, 30),
        (date(2025, 6, 11), date(2025, 6, 20), 10),
        (date(2025, 7, 1), None, 0),
        (date(2025, 1, 1), date(2025, 5, 31), 0),
    ],
)
def test_active_days(start: date, end: date | None, days: int) -> None:
    assert active_days(JUNE, start, end) == days


def test_hourly_lines_by_ticket_and_rate_add_up_to_the_revenue() -> None:
    time = [
        BillableTime(1, "VPN", date(2025, 6, 3), 90, 12000),
        BillableTime(1, "VPN", date(2025, 6, 4), 60, 12000),
        BillableTime(2, "Mail", date(2025, 6, 17), 60, 15000),
        BillableTime(None, "", date(2025, 6, 18), 20, 15000),  # 50.00 exactly
        BillableTime(3, "Printer", date(2025, 6, 19), 30, None),  # unpriced: not invoiced
    ]
    lines = hourly_lines(contract="Support", product_code="SUP", revenue_minor=50000, time=time)
    got = [(ln.ticket, ln.quantity, ln.unit_price_minor, ln.amount_minor) for ln in lines]
    assert got == [
        (1, Decimal("2.50"), 12000, 30000),
        (2, Decimal("1.00"), 15000, 15000),
        (None, Decimal("0.33"), 15000, 5000),
    ]
    assert lines[0].description == "#1 VPN (2025-06-03 to 2025-06-04)"
    assert {ln.product_code for ln in lines} == {"SUP"}


def test_hourly_shares_keep_the_reported_total_when_cents_do_not_divide() -> None:
    # 10 minutes at 100.00/h three times on three tickets: 16.666... each, 50.00 reported.
    time = [BillableTime(n, "", date(2025, 6, n), 10, 10000) for n in (1, 2, 3)]
    lines = hourly_lines(contract="S", product_code="", revenue_minor=5000, time=time)
    assert [ln.amount_minor for ln in lines] == [1667, 1667, 1666]


@pytest.mark.parametrize(
    ("usage", "overage_minutes", "overage_minor", "left"),
    [
        (BlockUsage(600, 15000, 480, 180), 60, 15000, "0.00"),
        (BlockUsage(600, 15000, 0, 180), 0, 0, "7.00"),
        (BlockUsage(600, 15000, 700, 30), 30, 7500, "0.00"),
        (BlockUsage(600, 10000, 590, 11), 1, 167, "0.00"),  # 100.00/h for a minute: 1.67
    ],
)
def test_block_usage(
    usage: BlockUsage, overage_minutes: int, overage_minor: int, left: str
) -> None:
    assert usage.overage_minutes == overage_minutes
    assert usage.overage_minor == overage_minor
    lines = block_lines(contract="Block", product_code="BLK", usage=usage)
    assert lines[0].amount_minor is None and f"{left} h left" in lines[0].description
    assert (len(lines) == 2) == bool(overage_minutes)


def test_fixed_fee_line_says_the_days() -> None:
    line = fixed_fee_line(
        contract="Managed", product_code="MGD", month=JUNE, days=20, revenue_minor=200000
    )
    assert line is not None and line.amount_minor == 200000
    assert line.description == "Managed: monthly fee 2025-06, 20 of 30 days"
    assert (
        fixed_fee_line(contract="M", product_code="", month=JUNE, days=0, revenue_minor=0) is None
    )


def _journal() -> Journal:
    amounts = journal_amounts([ContractMonth(1, 10, "hourly", 45000, 0, 0)], labour=False)
    lines = journal_lines(amounts, day=JUNE.end, accounts=ACCOUNTS, names=NAMES, month="2025-06")
    adj = journal_lines(
        {(1, 10, R): 6000, (1, 10, LineKind.REVENUE_HOURLY): -6000},
        day=date(2025, 7, 31),
        accounts=ACCOUNTS,
        names=NAMES,
        month="2025-06",
        adjusts="2025-06",
    )
    return Journal("2025-07", "run 1", "EUR", tuple(lines + adj))


def test_journal_formats() -> None:
    journal = _journal()
    data = json.loads(render_journal(journal, "json"))
    assert set(data) == {"month", "report_run", "lines", "totals"}
    assert data["totals"] == {"debit": "510.00", "credit": "510.00"}
    assert data["report_run"] == "run 1"
    assert data["lines"][0] == {
        "date": "2025-06-30",
        "account_code": "1200",
        "account_name": "Accounts receivable",
        "customer": "Acme",
        "contract": "Support",
        "line_kind": "receivable",
        "description": "2025-06 receivable: Acme / Support",
        "debit": "450.00",
        "credit": "0.00",
    }
    xero = list(csv.reader(io.StringIO(render_journal(journal, "xero"))))
    assert xero[0] == ["Narration", "Date", "Description", "AccountCode", "TaxRate", "Amount"]
    assert [r[5] for r in xero[1:]] == ["450.00", "-450.00", "60.00", "-60.00"]
    assert xero[3][0].startswith("Docket adjustment to 2025-06") and xero[3][1] == "31/07/2025"
    qb = list(csv.reader(io.StringIO(render_journal(journal, "quickbooks"))))
    assert qb[0][:5] == ["Journal No.", "Journal Date", "Account Name", "Debits", "Credits"]
    assert [r[0] for r in qb[1:]] == ["DK-2025-07"] * 2 + ["DK-2025-07-ADJ-2025-06"] * 2
    assert qb[1][3:5] == ["450.00", ""] and qb[2][3:5] == ["", "450.00"]


def test_invoice_formats() -> None:
    lines = hourly_lines(
        contract="Support",
        product_code="SUP",
        revenue_minor=5000,
        time=[BillableTime(7, "Mail", date(2025, 6, 2), 20, 15000)],
    ) + block_lines(contract="Block", product_code="BLK", usage=BlockUsage(600, 15000, 0, 60))
    invoices = Invoices(JUNE, "EUR", (Invoice("Acme", tuple(lines), "it@acme.test"),))
    data = json.loads(render_invoices(invoices, "json", accounts=ACCOUNTS))
    assert data["invoices"][0]["lines"][0] == {
        "contract": "Support",
        "product_code": "SUP",
        "description": "#7 Mail (2025-06-02)",
        "ticket": 7,
        "quantity": "0.33",
        "unit_price": "150.00",
        "amount": "50.00",
    }
    assert data["invoices"][0]["lines"][1]["amount"] is None
    assert data["invoices"][0]["total"] == "50.00"
    xero = list(csv.DictReader(io.StringIO(render_invoices(invoices, "xero", accounts=ACCOUNTS))))
    # 0.33 h x 150.00 is not 50.00: the line goes as 1 x 50.00 (the text keeps the hours).
    assert (xero[0]["*Quantity"], xero[0]["*UnitAmount"], xero[0]["*AccountCode"]) == (
        "1.00",
        "50.00",
        "4000",
    )
    assert xero[0]["InventoryItemCode"] == "SUP" and xero[0]["*InvoiceDate"] == "30/06/2025"
    assert xero[1]["*UnitAmount"] == "" and xero[1]["*AccountCode"] == ""
    qb = list(
        csv.DictReader(io.StringIO(render_invoices(invoices, "quickbooks", accounts=ACCOUNTS)))
    )
    assert qb[0]["Item Amount"] == "50.00" and qb[0]["Item(Product/Service)"] == "SUP"
    without = {k: v for k, v in ACCOUNTS.items() if k != "revenue_hourly"}
    with pytest.raises(MissingAccount, match="revenue_hourly"):
        render_invoices(invoices, "xero", accounts=without)


def test_parse_account_codes() -> None:
    rows = [
        (2, {"line_kind": "receivable", "account_code": "610", "name": "AR"}),
        (3, {"line_kind": "Revenue_Hourly", "account_code": "200", "name": " Sales "}),
    ]
    assert parse_account_codes(rows) == {
        "receivable": ("610", "AR"),
        "revenue_hourly": ("200", "Sales"),
    }
    bad = [
        (2, {"line_kind": "sales", "account_code": "1"}),
        (3, {"line_kind": "receivable", "account_code": ""}),
        (4, {"line_kind": "receivable", "account_code": "1"}),
        (5, {"line_kind": "receivable", "account_code": "2"}),
    ]
    with pytest.raises(ValueError) as info:
        parse_account_codes(bad)
    text = str(info.value)
    assert "line 2" in text and "line 3" in text and "line 5: receivable repeats line 4" in text
