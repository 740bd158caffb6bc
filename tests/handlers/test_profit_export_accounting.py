"""`/profit export journal|invoices 2025-06`: the month's file in the requester's DM."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from handlers.profit_cmd import REFUSAL, AccountingExport, parse_accounting_export
from models.periods import month_of
from tests.handlers.test_profit_cmd import _manager, _profit, _seed

TODAY = date(2025, 6, 20)
JUNE = month_of(date(2025, 6, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("export journal 2025-06", AccountingExport("journal", JUNE)),
        ("Export Invoices 2025-06 xero", AccountingExport("invoices", JUNE, "xero")),
        ("export journal month", AccountingExport("journal", month_of(TODAY))),
        ("export 2025-06", None),
        ("export Acme 2025-06", None),
        ("", None),
    ],
)
def test_parse_accounting_export(text: str, expected: AccountingExport | None) -> None:
    assert parse_accounting_export(text, today=TODAY) == expected


@pytest.mark.parametrize(
    "text", ["export journal", "export journal 2025-W23", "export invoices 2025-06 pdf"]
)
def test_parse_accounting_export_usage(text: str) -> None:
    with pytest.raises(ValueError, match="Usage"):
        parse_accounting_export(text, today=TODAY)


@pytest.mark.e2e
async def test_journal_and_invoices_reach_the_managers_dm(docket: Any) -> None:
    await _seed(docket)
    refused = await _profit(docket, "export journal 2025-06", "U1")
    assert refused["text"] == REFUSAL
    await _manager(docket)
    answer = await _profit(docket, "export journal 2025-06 json", "UMGR")
    assert "direct messages" in answer["text"]
    answer = await _profit(docket, "export invoices 2025-06", "UMGR")
    assert "direct messages" in answer["text"]
    journal, invoices = docket.emulator.files("DUMGR")
    assert journal.filename == "docket-journal-2025-06.json"
    data = json.loads(journal.data)
    # 180.00 hourly (Acme) and 3,000.00 of June's fee (Globex, from 1 June).
    assert data["totals"] == {"debit": "3180.00", "credit": "3180.00"}
    assert invoices.filename == "docket-invoices-2025-06.csv"
    text = invoices.data.decode()
    assert text.splitlines()[0].startswith("month,customer,contract,product_code")
    assert ",180.00" in text and ",3000.00" in text
    bad = await _profit(docket, "export journal 2025-W23", "UMGR")
    assert bad["text"].startswith("Usage")
    assert len(docket.emulator.files("DUMGR")) == 2
