"""Directory imports that stay in sync: external ids first, full files retire, twice is a no-op."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from models.importer import ImportFailed, ImportResult, import_csv
from models.tables import Contact, Contract, Customer, Member, StalePeriod, TimeEntry, Workspace
from tests.models.profit_world import AT, TODAY, World

CUSTOMERS = """name,email_domains,external_id
Acme,acme.com,CRM-1
Globex,globex.com,CRM-2
Initech,initech.com,CRM-3
"""
CONTRACTS = (
    "customer,name,kind,start_date,hourly_rate,monthly_fee,external_id,product_code\n"
    "Acme,Support,hourly,2025-01-01,120,,K-1,SUP-H\n"
    "Globex,Managed,fixed,2025-06-01,,3000,K-2,MGD-F\n"
)
MEMBERS = """email,name,external_id
alice@provider.test,Alice,HR-1
bob@provider.test,Bob,HR-2
"""
CONTACTS = """customer,email,name,external_id
Acme,jane@acme.com,Jane,P-1
Globex,hank@globex.com,Hank,P-2
"""


class Sync:
    def __init__(self, engine: AsyncEngine, workspace_id: int) -> None:
        self.w = World(engine, workspace_id)

    async def run(self, kind: str, text: str, *, full: bool = False) -> ImportResult:
        async with self.w.sessions() as s, s.begin():
            return await import_csv(
                session=s,
                workspace_id=self.w.ws,
                kind=kind,
                opener=lambda: io.StringIO(text),
                at=AT,
                today=TODAY,
                full=full,
            )

    async def all(self, model: type) -> list:  # type: ignore[type-arg]
        async with self.w.sessions() as s:
            rows = await s.exec(select(model).where(model.workspace_id == self.w.ws))  # type: ignore[attr-defined]
            return sorted(rows.all(), key=lambda r: r.id)


def _counts(result: ImportResult) -> tuple[int, int, int, int]:
    return result.added, result.updated, len(result.retired), result.unchanged


@pytest.fixture
async def sync(engine: AsyncEngine, workspace: Workspace) -> Sync:
    assert workspace.id is not None
    return Sync(engine, workspace.id)


@pytest.mark.parametrize(
    ("kind", "text"),
    [("customers", CUSTOMERS), ("members", MEMBERS)],
)
async def test_importing_the_same_file_twice_changes_nothing(
    sync: Sync, kind: str, text: str
) -> None:
    first = await sync.run(kind, text, full=True)
    assert _counts(first) == (text.count("\n") - 1, 0, 0, 0)
    again = await sync.run(kind, text, full=True)
    assert _counts(again) == (0, 0, 0, text.count("\n") - 1)


async def test_contracts_and_contacts_twice_change_nothing_not_even_stale_marks(
    sync: Sync,
) -> None:
    await sync.run("customers", CUSTOMERS)
    assert _counts(await sync.run("contracts", CONTRACTS)) == (2, 0, 0, 0)
    assert _counts(await sync.run("contacts", CONTACTS)) == (2, 0, 0, 0)
    stale = [(s.period_kind, s.period_start, s.customer_id) for s in await sync.all(StalePeriod)]
    assert _counts(await sync.run("contracts", CONTRACTS, full=True)) == (0, 0, 0, 2)
    assert _counts(await sync.run("contacts", CONTACTS, full=True)) == (0, 0, 0, 2)
    assert [
        (s.period_kind, s.period_start, s.customer_id) for s in await sync.all(StalePeriod)
    ] == stale
    contracts = await sync.all(Contract)
    assert [(c.name, c.external_id, c.product_code) for c in contracts] == [
        ("Support", "K-1", "SUP-H"),
        ("Managed", "K-2", "MGD-F"),
    ]


async def test_a_renamed_customer_with_the_same_external_id_is_updated(sync: Sync) -> None:
    await sync.run("customers", CUSTOMERS)
    renamed = CUSTOMERS.replace("Acme,acme.com", "Acme Corporation,acme.com")
    result = await sync.run("customers", renamed)
    assert _counts(result) == (0, 1, 0, 2)
    names = [(c.name, c.external_id) for c in await sync.all(Customer)]
    assert names == [("Acme Corporation", "CRM-1"), ("Globex", "CRM-2"), ("Initech", "CRM-3")]
    # A member whose address changed at the source keeps their record.
    await sync.run("members", MEMBERS)
    await sync.run("members", MEMBERS.replace("alice@provider.test", "alice.b@provider.test"))
    assert [(m.email, m.external_id) for m in await sync.all(Member)] == [
        ("alice.b@provider.test", "HR-1"),
        ("bob@provider.test", "HR-2"),
    ]


async def test_full_retires_exactly_the_missing_rows_and_history_stays(sync: Sync) -> None:
    await sync.run("customers", CUSTOMERS)
    await sync.run("contracts", CONTRACTS)
    await sync.run("members", MEMBERS)
    alice = (await sync.all(Member))[0]
    support = (await sync.all(Contract))[0]
    assert alice.id is not None and support.id is not None
    await sync.w.log(alice.id, 60, date(2025, 6, 3), contract_id=support.id)
    without_acme = "\n".join(line for line in CUSTOMERS.splitlines() if not line.startswith("Acme"))
    result = await sync.run("customers", without_acme + "\n", full=True)
    assert _counts(result) == (0, 0, 1, 2) and result.retired == ["Acme"]
    customers = {c.name: c.active for c in await sync.all(Customer)}
    assert customers == {"Acme": False, "Globex": True, "Initech": True}
    assert len(await sync.all(TimeEntry)) == 1  # history stays
    assert len(await sync.all(Contract)) == 2
    # The file is the whole list: retiring again retires nothing more; listing it revives it.
    assert (await sync.run("customers", without_acme + "\n", full=True)).retired == []
    back = await sync.run("customers", CUSTOMERS, full=True)
    assert _counts(back) == (0, 1, 0, 2)
    only_k1 = CONTRACTS.splitlines()[0] + "\n" + CONTRACTS.splitlines()[1] + "\n"
    assert (await sync.run("contracts", only_k1, full=True)).retired == ["Managed"]


async def test_dry_run_and_sequencing(sync: Sync) -> None:
    with pytest.raises(ImportFailed) as caught:
        await sync.run("contracts", CONTRACTS)
    assert [(e.line, "no customer named" in e.message) for e in caught.value.errors] == [
        (2, True),
        (3, True),
    ]
    assert await sync.all(Customer) == []  # no customer was invented
    with pytest.raises(ImportFailed) as caught:
        await sync.run("customers", CUSTOMERS + "Hooli,hooli.com,CRM-1\n")
    assert caught.value.errors[0].line == 5 and "external_id repeats line 2" in str(
        caught.value.errors[0]
    )
    with pytest.raises(ImportFailed):
        await sync.run("time", "member,work_date,hours\n", full=True)


async def test_external_id_conflict_is_refused(sync: Sync) -> None:
    await sync.run("customers", CUSTOMERS)
    with pytest.raises(ImportFailed) as caught:
        await sync.run("customers", "name,external_id\nAcme,CRM-9\n")
    assert "differs from the record's ('CRM-1')" in caught.value.errors[0].message


async def test_contact_moves_with_its_external_id(sync: Sync) -> None:
    await sync.run("customers", CUSTOMERS)
    await sync.run("contacts", CONTACTS)
    moved = CONTACTS.replace("Acme,jane@acme.com", "Globex,jane@globex.com")
    assert _counts(await sync.run("contacts", moved)) == (0, 1, 0, 1)
    contacts = await sync.all(Contact)
    assert [(c.email, c.external_id) for c in contacts] == [
        ("jane@globex.com", "P-1"),
        ("hank@globex.com", "P-2"),
    ]
