"""A member's role and group: one operation for every path (Slack, directory, CSV import).

Docket always keeps at least one active admin, and moving a member to another group restates
the cost of their time (their group's cost rate applies).
"""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models import cost_changes, directory
from models.directory import LastAdminError, change_member_access
from models.importer import ImportFailed, import_csv
from models.people import ensure_group
from models.tables import Member, Role, Workspace
from tests.models.profit_world import AT, TODAY, World


async def _member(w: World, member_id: int) -> Member:
    async with w.sessions() as s:
        found = await s.get(Member, member_id)
        assert found is not None
        return found


async def _labour_cost_60(w: World) -> dict[str, int]:
    """Stored labour cost per period kind, in sixtieths of a minor unit."""
    totals: dict[str, int] = {}
    for (kind, *_rest), values in (await w.stored()).items():
        totals[kind] = totals.get(kind, 0) + values[6]
    return totals


async def test_a_group_change_changes_the_members_labour_cost(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    bob = await w.member("Bob", group="techs")
    async with w.sessions() as s, s.begin():
        await ensure_group(session=s, workspace_id=workspace.id, name="seniors")
    await w.cost_rate(4000, date(2025, 1, 1), group_id=await w.group_id("techs"))
    await w.cost_rate(8000, date(2025, 1, 1), group_id=await w.group_id("seniors"))
    acme = await w.customer("Acme")
    await w.log(bob, 60, date(2025, 6, 3), customer_id=acme)
    await w.refresh()
    assert await _labour_cost_60(w) == {"week": 4000 * 60, "month": 4000 * 60}

    async with w.sessions() as s, s.begin():
        await change_member_access(
            session=s,
            workspace_id=workspace.id,
            member_id=bob,
            role=Role.AGENT,
            active=True,
            group_name="seniors",
            at=AT,
        )
    # Only labour cost moves: kept as a difference for the refresh, nothing marked stale.
    assert await w.stale() == 0
    async with w.sessions() as s:
        assert await cost_changes.has_pending(s, workspace.id)
    await w.refresh()
    assert await _labour_cost_60(w) == {"week": 8000 * 60, "month": 8000 * 60}

    # The same group again changes nothing, so nothing is marked.
    async with w.sessions() as s, s.begin():
        await change_member_access(
            session=s,
            workspace_id=workspace.id,
            member_id=bob,
            role=Role.MANAGER,
            active=True,
            group_name="seniors",
            at=AT,
        )
    assert await w.stale() == 0
    async with w.sessions() as s:
        assert not await cost_changes.has_pending(s, workspace.id)


@pytest.mark.parametrize(
    ("role", "active"),
    [(Role.AGENT, True), (Role.MANAGER, True), (Role.ADMIN, False)],
    ids=["to agent", "to manager", "deactivated"],
)
async def test_the_last_admin_stays_an_admin(
    engine: AsyncEngine, workspace: Workspace, role: Role, active: bool
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ada = await w.member("Ada", role=Role.ADMIN)
    with pytest.raises(LastAdminError, match="at least one admin"):
        async with w.sessions() as s, s.begin():
            await change_member_access(
                session=s,
                workspace_id=workspace.id,
                member_id=ada,
                role=role,
                active=active,
                group_name="techs",
                at=AT,
            )
    kept = await _member(w, ada)
    assert kept.role == Role.ADMIN and kept.active and kept.group_id is None

    # With a second admin, the first may step down.
    await w.member("Bea", role=Role.ADMIN)
    async with w.sessions() as s, s.begin():
        await change_member_access(
            session=s,
            workspace_id=workspace.id,
            member_id=ada,
            role=role,
            active=active,
            group_name=None,
            at=AT,
        )
    changed = await _member(w, ada)
    assert (changed.role, changed.active) == (role, active)


async def test_the_directory_cannot_remove_the_last_admin(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ada = await w.member("Ada", role=Role.ADMIN)
    with pytest.raises(LastAdminError, match="at least one admin"):
        async with w.sessions() as s, s.begin():
            await directory.save_member(
                session=s,
                workspace_id=workspace.id,
                email="ada@provider.test",
                name="Ada Renamed",
                role=Role.AGENT,
                at=AT,
            )
    kept = await _member(w, ada)
    assert kept.role == Role.ADMIN and kept.name == "Ada"


async def _import_members(w: World, text: str) -> None:
    async with w.sessions() as s, s.begin():
        await import_csv(
            session=s,
            workspace_id=w.ws,
            kind="members",
            opener=lambda: io.StringIO(text),
            at=AT,
            today=TODAY,
        )


async def test_a_csv_import_cannot_remove_the_last_admin_and_writes_nothing(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    w = World(engine, workspace.id)
    ada = await w.member("Ada", role=Role.ADMIN)
    text = (
        "email,name,slack_user_id,group,role\n"
        "zed@provider.test,Zed,,,agent\n"
        "ada@provider.test,Ada,UADA,,agent\n"
    )
    with pytest.raises(ImportFailed) as failed:
        await _import_members(w, text)
    assert [str(e) for e in failed.value.errors] == [
        "line 3: Docket needs at least one admin: make someone else an admin first."
    ]
    assert (await _member(w, ada)).role == Role.ADMIN
    async with w.sessions() as s:
        assert (
            await directory.member_by_email(
                session=s, workspace_id=workspace.id, email="zed@provider.test"
            )
            is None
        )

    # Naming the new admin first hands the role over in one file.
    await _import_members(
        w,
        "email,name,slack_user_id,group,role\n"
        "zed@provider.test,Zed,,,admin\n"
        "ada@provider.test,Ada,UADA,,agent\n",
    )
    assert (await _member(w, ada)).role == Role.AGENT
