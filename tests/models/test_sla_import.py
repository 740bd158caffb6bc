"""CSV imports of business hours, holidays, SLA policies and a contract's policy."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.db import make_sessionmaker
from models.importer import ImportFailed, ImportResult, import_csv
from models.sla import PriorityTargets
from models.sla_store import workspace_calendar, workspace_policies
from models.tables import Contract, Workspace

AT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
P = "policy,calendar,priority,first_response,resolution\n"
H = "weekday,start,end\n"


def _opener(text: str) -> Callable[[], io.StringIO]:
    return lambda: io.StringIO(text)


async def _import(engine: AsyncEngine, ws: Workspace, kind: str, text: str) -> ImportResult:
    assert ws.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        return await import_csv(
            session=session,
            workspace_id=ws.id,
            kind=kind,
            opener=_opener(text),
            at=AT,
            today=AT.date(),
        )


HOURS = H + "Monday,08:00,16:00\ntue,8:00,16:00\n3,08:00,12:30\n"
POLICIES = (
    P + "default,business,urgent,30m,4h\ndefault,business,normal,4h,2d\ngold,24x7,urgent,15m,2h\n"
)


async def test_imports_set_the_calendar_and_policies(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    ws_id = workspace.id
    for _ in range(2):  # importing again changes nothing
        assert (await _import(engine, workspace, "business-hours", HOURS)).rows == 3
        await _import(engine, workspace, "holidays", "date,name\n2025-12-25,Christmas\n")
        await _import(engine, workspace, "sla-policies", POLICIES)
    async with make_sessionmaker(engine)() as session:
        cal = await workspace_calendar(session=session, workspace_id=ws_id)
        policies = await workspace_policies(session=session, workspace_id=ws_id)
    assert cal.hours == {0: (time(8), time(16)), 1: (time(8), time(16)), 2: (time(8), time(12, 30))}
    assert cal.holidays == frozenset({date(2025, 12, 25)})
    assert policies["default"][1].targets["normal"] == PriorityTargets("4h", "2d")
    assert policies["gold"][1].calendar == "24x7"

    await _import(engine, workspace, "customers", "name\nAcme\n")
    contracts = (
        "customer,name,kind,start_date,sla_policy\n"
        "Acme,Gold,hourly,2025-01-01,gold\n"
        "Acme,Std,hourly,2025-01-01,\n"
    )
    await _import(engine, workspace, "contracts", contracts)
    async with make_sessionmaker(engine)() as session:
        rows = (await session.exec(select(Contract).order_by(Contract.name))).all()
    assert [(c.name, c.sla_policy) for c in rows] == [("Gold", "gold"), ("Std", None)]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("business-hours", H + "funday,09:00,17:00\n", "line 2: weekday 'funday'"),
        ("business-hours", H + "mon,17:00,09:00\n", "line 2: end (09:00) must be after"),
        ("business-hours", H + "mon,09:00,17:00\nMonday,10:00,11:00\n", "line 3: repeats line 2"),
        ("holidays", "date,name\n25/12/2025,Xmas\n", "line 2: date '25/12/2025'"),
        ("sla-policies", P + "x,weekly,urgent,1h,\n", "line 2: calendar 'weekly'"),
        ("sla-policies", P + "x,business,asap,1h,\n", "line 2: priority 'asap'"),
        ("sla-policies", P + "x,business,urgent,1 hour,\n", "line 2: '1 hour' is not"),
        (
            "sla-policies",
            P + "x,business,urgent,1h,\nx,24x7,high,1h,\n",
            "line 3: policy 'x' has another calendar",
        ),
    ],
)
async def test_bad_rows_are_named_and_nothing_is_imported(
    engine: AsyncEngine, workspace: Workspace, kind: str, text: str, message: str
) -> None:
    await _import(engine, workspace, "business-hours", H + "sat,10:00,12:00\n")
    with pytest.raises(ImportFailed) as failed:
        await _import(engine, workspace, kind, text)
    assert any(str(e).startswith(message) for e in failed.value.errors), failed.value.errors
    assert workspace.id is not None
    async with make_sessionmaker(engine)() as session:
        cal = await workspace_calendar(session=session, workspace_id=workspace.id)
        policies = await workspace_policies(session=session, workspace_id=workspace.id)
    assert cal.hours == {5: (time(10), time(12))}  # untouched
    assert policies == {}


async def test_a_contract_naming_an_unknown_policy_is_refused(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    await _import(engine, workspace, "customers", "name\nAcme\n")
    with pytest.raises(ImportFailed) as failed:
        await _import(
            engine,
            workspace,
            "contracts",
            "customer,name,kind,start_date,sla_policy\nAcme,Gold,hourly,2025-01-01,platinum\n",
        )
    assert "no SLA policy named 'platinum'" in str(failed.value.errors[0])
