"""`docket report`, `docket rebuild` and `docket import` through the real command line entry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.cli import main
from bot.db import make_engine
from models.tables import ContractKind, ReportRun, TimeEntry, Workspace
from tests.models.profit_world import World


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _seed(url: str, *, with_time: bool = True) -> None:
    engine = make_engine(url)
    try:
        w = World(engine, 0)
        async with w.sessions() as s, s.begin():
            ws = Workspace(team_id="T0001", name="Acme IT", timezone="Europe/Berlin")
            s.add(ws)
            await s.flush()
            assert ws.id is not None
            w.ws = ws.id
        alice = await w.member("Alice")
        await w.cost_rate(5000, date(2025, 1, 1), member_id=alice)
        acme = await w.customer("Acme")
        await w.customer("Acme Labs")
        support = await w.contract(
            acme, "Support", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=12000
        )
        if with_time:
            await w.log(alice, 90, date(2025, 6, 3), contract_id=support)
    finally:
        await engine.dispose()


async def _edit_first_entry(url: str, minutes: int) -> None:
    engine = make_engine(url)
    try:
        w = World(engine, 0)
        async with w.sessions() as s:
            ws = (await s.exec(select(Workspace))).one()
            entry = (await s.exec(select(TimeEntry))).one()
        assert ws.id is not None and entry.id is not None
        w.ws = ws.id
        await w.edit(entry.member_id, entry.id, minutes=minutes)
    finally:
        await engine.dispose()


@pytest.fixture
def url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DOCKET_LOG_LEVEL", "WARNING")
    yield database_url


def test_report_formats(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run(_seed(url))
    assert main(["report", "profitability", "--period", "2025-W23", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["period"] == "2025-W23" and data["start"] == "2025-06-02"
    assert data["customers"] == [
        {
            "customer": "Acme",
            "hours": "1.50",
            "billable_hours": "1.50",
            "revenue": "180.00",
            "labour_cost": "75.00",
            "direct_cost": "0.00",
            "contribution": "105.00",
            "margin_pct": "58.33",
            "effective_rate": "120.00",
            "contribution_per_hour": "70.00",
        }
    ]
    assert main(["report", "profitability", "--period", "2025-06", "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("period,currency,level,customer")
    assert rows[1].startswith("2025-06,EUR,customer,Acme,,,1.50,1.50,180.00,75.00")
    assert main(["report", "profitability", "--period", "2025-W23"]) == 0
    table = capsys.readouterr().out
    assert "Profitability 2025-W23" in table and "180.00" in table


def test_customer_filter_and_its_errors(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run(_seed(url))
    assert main(["report", "profitability", "--period", "2025-06", "--customer", "acme"]) == 0
    assert "Profitability 2025-06 — Acme" in capsys.readouterr().out
    assert main(["report", "profitability", "--period", "2025-06", "--customer", "zz"]) == 1
    assert "No customer matches" in capsys.readouterr().err
    assert main(["report", "profitability", "--period", "2025-06", "--customer", "ac"]) == 1
    assert "several customers: Acme, Acme Labs" in capsys.readouterr().err
    assert main(["report", "profitability", "--period", "2025-13"]) == 2


def test_a_late_edit_after_final_shows_in_the_next_report(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_seed(url))
    assert main(["report", "profitability", "--period", "2025-W23", "--final"]) == 0
    assert "Recorded 2025-W23 as final" in capsys.readouterr().err
    _run(_edit_first_entry(url, 120))
    assert main(["report", "profitability", "--period", "2025-W24", "--format", "json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["restatements"]
    assert (item["period"], item["customer"]) == ("2025-W23", "Acme")
    assert (item["before"]["revenue"], item["after"]["revenue"]) == ("180.00", "240.00")
    assert main(["report", "profitability", "--period", "2025-W24", "--final"]) == 0
    assert "Restated since last reported" in capsys.readouterr().out
    assert main(["report", "profitability", "--period", "2025-W25", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["restatements"] == []

    async def runs() -> list[tuple[str, str]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                t: Any = ReportRun.__table__  # type: ignore[attr-defined]
                rows = await conn.execute(sa.select(t.c.kind, t.c.period_key).order_by(t.c.id))
                return [(k, p) for k, p in rows.all()]
        finally:
            await engine.dispose()

    assert _run(runs()) == [("final", "2025-W23"), ("final", "2025-W24")]


def test_rebuild(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run(_seed(url))
    assert main(["rebuild"]) == 0
    assert "Rebuilt profitability" in capsys.readouterr().out
    assert main(["report", "profitability", "--period", "2025-W23", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["revenue"] == "180.00"


def test_no_workspace_yet(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "profitability", "--period", "2025-W23"]) == 2
    assert "no workspace in this database yet" in capsys.readouterr().err


def test_import_all_or_nothing_from_the_shell(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_seed(url, with_time=False))
    good = tmp_path / "time.csv"
    good.write_text(
        "member,customer,contract,work_date,hours,billable,note\n"
        "alice@provider.test,Acme,Support,2025-06-03,1.5,true,VPN\n"
        "alice@provider.test,Acme,Support,2025-06-04,2,false,\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text() + "alice@provider.test,Acme,Support,2025-06-05,lots,,\n")

    assert main(["import", "time", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4: hours 'lots' is not a number of hours" in err
    assert "Nothing was imported" in err
    assert main(["report", "profitability", "--period", "2025-W23", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["customers"] == []

    assert main(["import", "time", str(good)]) == 0
    assert "Imported 2 time row(s)" in capsys.readouterr().out
    assert main(["import", "time", str(good)]) == 0
    assert "0 written" in capsys.readouterr().out
    assert main(["report", "profitability", "--period", "2025-W23", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["hours"] == "3.50"
    assert main(["import", "time", str(tmp_path / "missing.csv")]) == 1


def test_import_creates_the_workspace_only_when_asked(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("name,email_domains\nAcme,acme.com\n")
    assert main(["import", "customers", str(customers)]) == 2
    assert main(["import", "customers", str(customers), "--team", "T0NEW"]) == 0
    assert "Imported 1 customers row(s)" in capsys.readouterr().out
