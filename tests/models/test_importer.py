"""CSV import: all or nothing, every bad line named, idempotent on re-import."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from models.importer import ImportFailed, ImportResult, import_csv, parse_minutes
from models.tables import (
    ChargeRate,
    Contact,
    Contract,
    CostRate,
    Customer,
    Member,
    MemberGroup,
    TimeEntry,
    Workspace,
)
from tests.models.profit_world import AT, TODAY, World

MEMBERS = """email,name,slack_user_id,group,role
alice@provider.test,Alice,UALICE,techs,manager
Bob@Provider.test,Bob,,techs,
carol@provider.test,Carol,UCAROL,,agent
"""
CUSTOMERS = """name,email_domains,slack_channel,internal_channel
Acme,"acme.com, acme.de",C0ACME,C0ACMEINT
Globex,globex.com,,
"""
CONTACTS = """customer,email,name
Acme,jane@acme.com,Jane Doe
globex,hank@globex.com,Hank
"""
CONTRACTS = (
    "customer,name,kind,start_date,end_date,hourly_rate,monthly_fee,block_hours,block_price,"
    "overage_rate,monthly_direct_cost\n"
    "Acme,Support,hourly,2025-01-01,,120.00,,,,,\n"
    'Globex,Managed,fixed,2025-06-01,,,"3,000.00",,,,300\n'
    "Globex,Prepaid,block,2025-05-01,2025-12-31,,,10,1000,150,\n"
)
COST_RATES = """subject,effective_from,hourly_cost
alice@provider.test,2025-01-01,50.00
group:techs,2025-01-01,40
default,2025-01-01,35.5
"""
CHARGE_RATES = """contract,effective_from,hourly_rate
Support,2025-06-16,150
"""
TIME = """member,customer,contract,ticket,work_date,hours,billable,note
alice@provider.test,Acme,Support,,2025-06-03,1.5,true,VPN
alice@provider.test,Acme,Support,,2025-06-03,1.5,true,VPN
bob@provider.test,Globex,Managed,,2025-06-05,5,yes,
carol@provider.test,,,,2025-06-06,0.5,no,internal
"""


class Importer:
    def __init__(self, engine: AsyncEngine, workspace_id: int) -> None:
        self.w = World(engine, workspace_id)

    async def run(self, kind: str, text: str) -> ImportResult:
        async with self.w.sessions() as s, s.begin():
            return await import_csv(
                session=s,
                workspace_id=self.w.ws,
                kind=kind,
                opener=lambda: io.StringIO(text),
                at=AT,
                today=TODAY,
            )

    async def fails(self, kind: str, text: str) -> list[str]:
        with pytest.raises(ImportFailed) as caught:
            await self.run(kind, text)
        return [str(e) for e in caught.value.errors]

    async def count(self, model: Any) -> int:
        async with self.w.sessions() as s:
            return int(
                (await s.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()
            )

    async def everything(self) -> None:
        for kind, text in (
            ("members", MEMBERS),
            ("customers", CUSTOMERS),
            ("contacts", CONTACTS),
            ("contracts", CONTRACTS),
            ("cost-rates", COST_RATES),
            ("charge-rates", CHARGE_RATES),
        ):
            await self.run(kind, text)


@pytest.fixture
async def imp(engine: AsyncEngine, workspace: Workspace) -> Importer:
    assert workspace.id is not None
    return Importer(engine, workspace.id)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("1.5", 90), ("0,25", 15), ("8", 480), ("1.3333", 80), ("0.0083", 0), ("24", 1440)],
)
def test_hours(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "1.5h", "-1", "one", "1e3"])
def test_bad_hours(text: str) -> None:
    with pytest.raises(ValueError):
        parse_minutes(text)


async def test_directory_files_import_and_reimport_changes_nothing(imp: Importer) -> None:
    await imp.everything()
    async with imp.w.sessions() as s:
        members = {m.email: m for m in (await s.exec(select(Member))).all()}
        assert set(members) == {"alice@provider.test", "bob@provider.test", "carol@provider.test"}
        assert members["alice@provider.test"].role == "manager"
        assert members["bob@provider.test"].slack_user_id is None
        acme = (await s.exec(select(Customer).where(Customer.name == "Acme"))).one()
        assert (acme.email_domains, acme.slack_channel) == ("acme.com,acme.de", "C0ACME")
        assert acme.internal_channel == "C0ACMEINT" and acme.notify_ack
        contracts = {c.name: c for c in (await s.exec(select(Contract))).all()}
        assert contracts["Managed"].monthly_fee_minor == 300000
        assert contracts["Managed"].monthly_direct_cost_minor == 30000
        assert contracts["Prepaid"].block_minutes == 600
        assert contracts["Prepaid"].end_date == date(2025, 12, 31)
        rates = sorted(
            (r.effective_from, r.minor_per_hour) for r in (await s.exec(select(ChargeRate))).all()
        )
        assert rates == [(date(2025, 1, 1), 12000), (date(2025, 6, 16), 15000)]
        subjects = {
            r.subject.split(":")[0]: r.minor_per_hour
            for r in (await s.exec(select(CostRate))).all()
        }
        assert subjects == {"member": 5000, "group": 4000, "default": 3550}
    counts = [
        await imp.count(m) for m in (Member, MemberGroup, Customer, Contact, Contract, CostRate)
    ]
    await imp.everything()
    assert [
        await imp.count(m) for m in (Member, MemberGroup, Customer, Contact, Contract, CostRate)
    ] == counts


async def test_one_bad_row_names_its_line_and_imports_nothing(imp: Importer) -> None:
    await imp.run("members", MEMBERS)
    await imp.run("customers", CUSTOMERS)
    bad = CONTRACTS + "Acme,Broken,fixed,2025-01-01,,,,,,,\nNobody,X,hourly,2025-01-01,,,,,,,\n"
    errors = await imp.fails("contracts", bad)
    assert errors == [
        "line 5: A fixed-fee contract needs its monthly fee.",
        "line 6: no customer named 'Nobody' (import customers first)",
    ]
    assert await imp.count(Contract) == 0


async def test_a_bad_time_row_stops_the_whole_file(imp: Importer) -> None:
    await imp.everything()
    bad = TIME + (
        "dave@provider.test,Acme,,,2025-06-03,1,,\n"
        "alice@provider.test,Acme,Nope,,2025-06-03,1,,\n"
        "alice@provider.test,Acme,,,2025-06-31,1,,\n"
        "alice@provider.test,Acme,,,2030-01-01,1,,\n"
        "alice@provider.test,Acme,,,2025-06-03,0,,\n"
        "alice@provider.test,Acme,,,2025-06-03,1,maybe,\n"
        "alice@provider.test,Acme,,,2025-06-03,1\n"
    )
    errors = await imp.fails("time", bad)
    assert errors == [
        "line 6: no member with email 'dave@provider.test' (import members first)",
        "line 7: Acme has no contract 'Nope'",
        "line 8: work_date '2025-06-31' is not a date (use YYYY-MM-DD)",
        "line 9: work_date 2030-01-01 is in the future",
        "line 10: hours must be more than zero",
        "line 11: billable 'maybe' is not true or false",
        "line 12: expected 8 values, found 6",
    ]
    assert await imp.count(TimeEntry) == 0


async def test_a_wrong_header_is_refused(imp: Importer) -> None:
    errors = await imp.fails("customers", "name,domains\nAcme,acme.com\n")
    assert errors[0].startswith("line 1: unknown column(s) domains")


async def test_time_import_is_idempotent_and_marks_periods(imp: Importer) -> None:
    await imp.everything()
    first = await imp.run("time", TIME)
    assert (first.rows, first.written) == (4, 4)  # identical rows stay two entries
    assert first.stale_marked == 6  # Acme, Globex and no customer: week 23 and June each
    async with imp.w.sessions() as s:
        carol = (await s.exec(select(TimeEntry).where(TimeEntry.minutes == 30))).one()
        assert (carol.customer_id, carol.billable) == (None, False)
        globex = (await s.exec(select(TimeEntry).where(TimeEntry.minutes == 300))).one()
        assert globex.customer_id is not None and globex.contract_id is not None
    await imp.w.refresh()
    again = await imp.run("time", TIME)
    assert (again.rows, again.written, again.stale_marked) == (4, 0, 0)
    assert await imp.count(TimeEntry) == 4
    assert await imp.w.stale() == 0


async def test_rows_with_an_id_are_updated_in_place(imp: Importer) -> None:
    await imp.everything()
    head = "id,member,customer,contract,work_date,hours\n"
    await imp.run("time", head + "t1,alice@provider.test,Acme,Support,2025-05-30,1\n")
    await imp.w.refresh()
    moved = await imp.run("time", head + "t1,alice@provider.test,Acme,Support,2025-06-02,2\n")
    assert moved.written == 1
    async with imp.w.sessions() as s:
        (entry,) = (await s.exec(select(TimeEntry))).all()
        assert (entry.work_date, entry.minutes, entry.source_key) == (
            date(2025, 6, 2),
            120,
            "id:t1",
        )
    # Both the old and the new week and month are recomputed.
    await imp.w.refresh()
    assert (await imp.w.report("2025-05")).customers == ()
    assert (await imp.w.report("2025-W23")).customers[0].figures.minutes == 120
    errors = await imp.fails("time", head + "t2,alice@provider.test,,,2025-06-02,1\n" * 2)
    assert errors == ["line 3: id repeats line 2"]


async def test_imported_time_is_profitable(imp: Importer) -> None:
    await imp.everything()
    await imp.run("time", TIME)
    await imp.w.refresh()
    report = await imp.w.report("2025-W23")
    acme = next(line for line in report.customers if line.customer == "Acme")
    # 3 h at 120.00; Alice's own 50.00/h.
    assert (acme.presented.revenue_minor, acme.presented.labour_cost_minor) == (36000, 15000)
    internal = next(line for line in report.customers if line.customer_id is None)
    assert internal.presented.labour_cost_minor == 1775  # 30 min at the 35.50 default
