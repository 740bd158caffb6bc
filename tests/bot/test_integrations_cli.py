"""`docket integrations add|list|map` against a real SQLite file."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from bot.cli import main
from bot.db import make_engine, make_sessionmaker
from models.alert_formats import secret_hash
from models.tables import AlertCustomerMap, AlertSource, Customer, Workspace


def _seed(url: str, *, workspace: bool = True) -> None:
    async def go() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session, session.begin():
            if workspace:
                ws = Workspace(team_id="T1", name="Acme IT")
                session.add(ws)
                await session.flush()
                session.add(Customer(workspace_id=ws.id or 0, name="Acme Ltd"))
        await engine.dispose()

    asyncio.run(go())


def _read(url: str, model: type) -> list:  # type: ignore[type-arg]
    async def go() -> list:  # type: ignore[type-arg]
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            rows = list((await session.exec(select(model))).all())
        await engine.dispose()
        return rows

    return asyncio.run(go())


def test_add_prints_the_secret_last_and_list_and_map_work(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(sqlite_url)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert (
        main(["integrations", "add", "Prom", "--auto-resolve", "--customer-label", "tenant"]) == 0
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    [source] = _read(sqlite_url, AlertSource)
    assert (source.name, source.auto_resolve, source.customer_label) == ("prom", True, "tenant")
    assert source.secret == secret and source.secret_hash == secret_hash(secret)
    assert len(secret) >= 32

    assert main(["integrations", "add", "prom"]) == 1
    assert "already a source called prom" in capsys.readouterr().err
    assert main(["integrations", "add", "bad name!"]) == 1
    assert main(["integrations", "add", "grafana", "--secret", "short"]) == 1
    assert main(["integrations", "add", "zbx", "--severity", "disaster=nonsense"]) == 1
    grafana_args = ["add", "grafana", "--secret", "a-long-enough-secret"]
    severities = ["--severity", "Disaster=urgent", "--severity", "average=high"]
    assert main(["integrations", *grafana_args, *severities]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "a-long-enough-secret"

    grafana = next(s for s in _read(sqlite_url, AlertSource) if s.name == "grafana")
    assert grafana.severity_map == {"disaster": "urgent", "average": "high"}
    assert main(["integrations", "list"]) == 0
    listing = capsys.readouterr().out
    assert "/integrations/alerts/prom" in listing and "auto-resolve" in listing

    assert main(["integrations", "map", "prom", "acme-prod", "acme ltd"]) == 0
    [mapping] = _read(sqlite_url, AlertCustomerMap)
    assert mapping.value == "acme-prod"
    assert main(["integrations", "map", "prom", "x", "Nobody"]) == 1


def test_without_a_workspace_it_says_what_to_do(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert main(["integrations", "add", "prom"]) == 2
    assert "docket serve" in capsys.readouterr().err
    assert _read(sqlite_url, AlertSource) == []
