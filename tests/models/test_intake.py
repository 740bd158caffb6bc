"""Stored Slack requests: keys from Slack's identifiers, one row per delivery, leased claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from models.intake import (
    IntakeClaim,
    IntakeLost,
    IntakeRequest,
    claim_requests,
    current_claims,
    finish_claimed,
    intake_key,
    settle_failure,
    store_request,
    store_requests,
)
from models.tables import SlackIntake, Workspace

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "payload", "raw", "expected"),
    [
        ("slash_command", {"trigger_id": "13.4.ab"}, "x", "slash_command:13.4.ab"),
        (
            "block_actions",
            {"trigger_id": "13.4.ab", "actions": [{"action_ts": "1700.1"}]},
            "x",
            "block_actions:13.4.ab:1700.1",
        ),
        ("view_submission", {"trigger_id": "t9"}, "x", "view_submission:t9"),
    ],
)
def test_the_key_comes_from_slacks_identifiers(
    kind: str, payload: dict[str, object], raw: str, expected: str
) -> None:
    assert intake_key(kind, payload, raw) == expected


def test_without_identifiers_the_body_is_the_key() -> None:
    same = intake_key("shortcut", {}, "payload=a")
    assert same == intake_key("shortcut", {}, "payload=a")
    assert same != intake_key("shortcut", {}, "payload=b")
    assert len(same) <= 128


def _request(n: int) -> IntakeRequest:
    return IntakeRequest(
        team_id="T1",
        kind="slash_command",
        name="/ticket",
        user_id="U1",
        response_url="http://127.0.0.1:9/r",
        trigger_id=f"t{n}",
        content_type="application/x-www-form-urlencoded",
        body=f"command=%2Fticket&text=n{n}",
    )


async def _store(services: Services, n: int, key: str | None = None) -> int | None:
    async with services.transaction() as session:
        return await store_request(
            session=session,
            workspace_id=services.workspace_id,
            request=_request(n),
            key=key or f"k{n}",
            at=AT,
        )


async def test_a_retried_delivery_stores_nothing_new(services: Services) -> None:
    first = await _store(services, 1)
    assert first is not None
    assert await _store(services, 1) is None
    assert await _store(services, 2) is not None


async def test_claims_are_per_workspace_and_leased(
    services: Services, workspace: Workspace
) -> None:
    for n in range(3):
        await _store(services, n)
    async with services.transaction() as session:
        other = Workspace(team_id="T2")
        session.add(other)
        await session.flush()
        assert other.id is not None
        other_id = other.id
    async with services.transaction() as session:
        assert (
            await claim_requests(
                session=session, workspace_id=other_id, owner="b", now=AT, limit=10
            )
            == []
        )
    async with services.transaction() as session:
        mine = await claim_requests(
            session=session, workspace_id=services.workspace_id, owner="a", now=AT, limit=2
        )
        ids = [r.id for r in mine]
    assert len(ids) == 2
    async with services.transaction() as session:
        rest = await claim_requests(
            session=session, workspace_id=services.workspace_id, owner="b", now=AT, limit=10
        )
        assert [r.id for r in rest] not in ([], ids) and len(rest) == 1
    # Owner "a" dies: after its lease, "b" takes its rows.
    later = AT + timedelta(seconds=31)
    async with services.transaction() as session:
        taken = await claim_requests(
            session=session, workspace_id=services.workspace_id, owner="b", now=later, limit=10
        )
        assert sorted(r.id for r in taken) == sorted([*ids, rest[0].id])


async def test_the_first_state_change_commits_with_the_done_mark(services: Services) -> None:
    row_id = await _store(services, 1)
    assert row_id is not None
    async with services.transaction() as session:
        await claim_requests(
            session=session, workspace_id=services.workspace_id, owner="a", now=AT, limit=1
        )
    claim = IntakeClaim(row_id, "a")
    token = current_claims.set((claim,))
    try:
        async with services.transaction() as session:
            session.info["intake_effect"] = True
        assert claim.finished
        # A second run of the same row (its lease taken over) cannot commit its effect.
        stale = IntakeClaim(row_id, "a")
        current_claims.set((stale,))
        with pytest.raises(IntakeLost):
            async with services.transaction() as session:
                session.info["intake_effect"] = True
        assert not stale.finished
    finally:
        current_claims.reset(token)
    async with services.read() as session:
        row = await session.get(SlackIntake, row_id)
        assert row is not None and row.status == "done"


async def test_a_row_failing_for_good_is_reported_once(services: Services) -> None:
    row_id = await _store(services, 1)
    assert row_id is not None
    told = []
    now = AT
    for _ in range(6):
        async with services.transaction() as session:
            rows = await claim_requests(
                session=session, workspace_id=services.workspace_id, owner="a", now=now, limit=1
            )
        if not rows:
            break
        async with services.transaction() as session:
            failed = await settle_failure(
                session=session, claim=IntakeClaim(row_id, "a"), at=now, error="Boom: x"
            )
            told.append(failed is not None)
        now += timedelta(minutes=5)
    assert told == [False, False, False, False, True]
    async with services.read() as session:
        row = await session.get(SlackIntake, row_id)
        assert row is not None and row.status == "failed" and row.notified_at is not None


async def test_finishing_someone_elses_row_is_refused(services: Services) -> None:
    row_id = await _store(services, 1)
    assert row_id is not None
    async with services.sessions() as session, session.begin():
        assert isinstance(session, AsyncSession)
        with pytest.raises(IntakeLost):
            await finish_claimed(session=session, claim=IntakeClaim(row_id, "nobody"), at=AT)


async def test_a_batch_stores_each_delivery_once(services: Services) -> None:
    await _store(services, 1)
    async with services.transaction() as session:
        ids = await store_requests(
            session=session,
            workspace_id=services.workspace_id,
            items=[
                (_request(1), "k1", None, 30),  # stored before
                (_request(2), "k2", None, 30),
                (_request(2), "k2", None, 30),  # the same delivery twice in one batch
                (_request(3), "k3", "me", 30),
            ],
            at=AT,
        )
    assert ids[0] is None and ids[2] is None
    assert ids[1] is not None and ids[3] is not None and ids[1] != ids[3]
    async with services.read() as session:
        leased = await session.get(SlackIntake, ids[3])
        assert leased is not None and leased.owner == "me" and leased.lease_until is not None
