"""`docket export journal|invoices` and `docket import account-codes` through the real CLI."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli import main
from tests.bot.test_reports_cli import _edit_first_entry, _seed


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DOCKET_LOG_LEVEL", "WARNING")
    yield database_url


def _cents(text: str) -> int:
    return int(Decimal(text) * 100)


def test_journal_and_invoices_equal_the_report(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(url))
    assert main(["report", "profitability", "--period", "2025-06", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["export", "journal", "--month", "2025-06", "--format", "json"]) == 0
    journal = json.loads(capsys.readouterr().out)
    assert journal["month"] == "2025-06"
    assert journal["report_run"].startswith("profitability 2025-06 computed ")
    assert journal["totals"]["debit"] == journal["totals"]["credit"] == report["totals"]["revenue"]
    revenue = sum(
        _cents(ln["credit"]) for ln in journal["lines"] if ln["line_kind"] == "revenue_hourly"
    )
    assert revenue == _cents(report["totals"]["revenue"]) == 18000
    assert main(["export", "invoices", "--month", "2025-06", "--format", "json"]) == 0
    invoices = json.loads(capsys.readouterr().out)
    assert invoices["invoices"][0]["customer"] == "Acme"
    assert invoices["invoices"][0]["total"] == report["totals"]["revenue"] == "180.00"
    assert main(["export", "journal", "--month", "2025-W23"]) == 2
    assert "give a month" in capsys.readouterr().err


def test_account_codes_final_and_adjustment(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(url))
    codes = tmp_path / "codes.csv"
    codes.write_text("line_kind,account_code,name\nreceivable,610,Trade debtors\n")
    assert main(["import", "account-codes", str(codes)]) == 0
    capsys.readouterr()
    out = tmp_path / "june.csv"
    assert main(["export", "journal", "--month", "2025-06", "--final", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "revenue_hourly" in err and "nothing was written" in err
    assert not out.exists()
    codes.write_text(
        "line_kind,account_code,name\nreceivable,610,Trade debtors\nrevenue_hourly,200,Sales\n"
    )
    assert main(["import", "account-codes", str(codes)]) == 0
    assert (
        main(
            [
                "export",
                "journal",
                "--month",
                "2025-06",
                "--final",
                "--format",
                "xero",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["AccountCode"], r["Amount"], r["Date"]) for r in rows] == [
        ("610", "180.00", "30/06/2025"),
        ("200", "-180.00", "30/06/2025"),
    ]
    capsys.readouterr()
    assert main(["export", "journal", "--month", "2025-06", "--final"]) == 1
    assert "exported as final already" in capsys.readouterr().err
    # 90 min becomes 120 min: 60.00 more, adjusted once in July.
    asyncio.run(_edit_first_entry(url, 120))
    assert main(["export", "journal", "--month", "2025-07", "--final", "--format", "json"]) == 0
    july = json.loads(capsys.readouterr().out)
    adjusting = [
        ln for ln in july["lines"] if ln["description"].startswith("Adjustment to 2025-06")
    ]
    assert [(ln["date"], ln["debit"], ln["credit"]) for ln in adjusting] == [
        ("2025-07-31", "60.00", "0.00"),
        ("2025-07-31", "0.00", "60.00"),
    ]
    assert main(["export", "journal", "--month", "2025-08", "--final", "--format", "json"]) == 0
    august = json.loads(capsys.readouterr().out)
    assert not [ln for ln in august["lines"] if ln["description"].startswith("Adjustment")]
    bad = tmp_path / "bad.csv"
    bad.write_text("line_kind,account_code,name\nsales,1,x\n")
    assert main(["import", "account-codes", str(bad)]) == 1
    assert "line 2" in capsys.readouterr().err


def test_import_full_dry_run_then_for_real(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(url))  # customers Acme and Acme Labs
    path = tmp_path / "customers.csv"
    path.write_text("name,external_id\nAcme,CRM-1\nGlobex,CRM-2\n")
    assert main(["import", "customers", str(path), "--full", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Would import 2 customers row(s)" in out
    assert "1 added, 1 updated, 1 retired, 0 unchanged" in out
    assert "would retire: Acme Labs" in out and "nothing was written" in out
    assert main(["import", "customers", str(path), "--full"]) == 0
    out = capsys.readouterr().out
    assert "1 added, 1 updated, 1 retired, 0 unchanged" in out and "retired: Acme Labs" in out
    assert main(["import", "customers", str(path), "--full"]) == 0
    assert "0 added, 0 updated, 0 retired, 2 unchanged" in capsys.readouterr().out
    assert main(["import", "time", str(path), "--full"]) == 1
    assert "--full is for" in capsys.readouterr().err
