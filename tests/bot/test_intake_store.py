"""The ingress's store: requests are committed before their ack, or answered "busy" and
never written; on both databases."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from bot.db import make_engine
from bot.intake import FORM, IntakeStore, _Pending
from bot.services import QUIET_SECONDS, Bursts, Services
from models.intake import IntakeRequest


def _pending(key: str, *, team: str) -> _Pending:
    request = IntakeRequest(
        team_id=team,
        kind="slash_command",
        name="/ticket",
        user_id="U1",
        response_url="https://hooks.slack.test/commands/1",
        trigger_id="1.2.3",
        content_type=FORM,
        body=f"command=%2Fticket&text={key}",
    )
    return _Pending(request, key, None, 30)


async def _stored_keys(services: Services) -> list[str]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT intake_key FROM slack_intake ORDER BY id"))
        return [str(r[0]) for r in rows]


async def test_a_request_right_after_a_batch_is_stored_and_a_repeat_is_not(
    services: Services,
) -> None:
    """The second request arrives just as the writer finishes the first batch (its caller
    resumes before the writer's callbacks run): it must start a new write, not wait for a
    writer that is already done until its budget runs out."""
    store = IntakeStore(services)
    try:
        first = _pending("k1", team=services.team_id)
        assert await store.store(first, budget=2.0)
        second = _pending("k2", team=services.team_id)
        assert await store.store(second, budget=2.0)
        again = _pending("k1", team=services.team_id)  # Slack's retry of the first
        assert await store.store(again, budget=2.0)
    finally:
        await store.close()
    assert isinstance(first.done.result(), int)
    assert isinstance(second.done.result(), int)
    assert again.done.result() is None
    assert await _stored_keys(services) == ["k1", "k2"]


async def test_a_request_that_cannot_be_written_in_time_is_answered_busy_and_never_written(
    services: Services, database_url: str
) -> None:
    """Another connection holds the write lock past the budget: the request is refused and,
    once the lock is gone, nothing of it appears."""
    store = IntakeStore(services)
    blocker = make_engine(database_url)
    try:
        async with blocker.connect() as conn:
            await conn.begin()  # SQLite: BEGIN IMMEDIATE, the database's write lock
            if blocker.dialect.name == "postgresql":
                await conn.execute(sa.text("LOCK TABLE slack_intake IN EXCLUSIVE MODE"))
            refused = _pending("late", team=services.team_id)
            assert not await store.store(refused, budget=0.3)
            await conn.rollback()
        stored = _pending("after", team=services.team_id)
        assert await store.store(stored, budget=2.0)
    finally:
        await store.close()
        await blocker.dispose()
    assert await _stored_keys(services) == ["after"]


async def test_a_burst_is_four_requests_within_half_a_second_and_work_rests_during_it() -> None:
    """A person's lone commands are no burst (their work runs at once); four within half a
    second are, and background work then rests nine times as long as it worked (capped)."""
    with freeze_time("2026-12-05 10:00:00", real_asyncio=True) as clock:
        bursts = Bursts()
        loop = asyncio.get_running_loop()  # real time: the event loop's clock is not frozen
        for _ in range(5):
            bursts.note_ingress()
            clock.tick(0.2)
        assert bursts.remaining() == 0  # one every 0.2 s: at most three within 0.5 s
        clock.tick(1)
        for _ in range(3):
            bursts.note_ingress()
            clock.tick(0.1)
        assert bursts.remaining() == 0  # the 4th within 0.5 s is yet to come
        bursts.note_ingress()
        assert bursts.remaining() == pytest.approx(QUIET_SECONDS)
        started = loop.time()
        await bursts.rest_after(0.01)
        assert 0.08 <= loop.time() - started < 1.0  # 9 x 10 ms
        clock.tick(QUIET_SECONDS)
        assert bursts.remaining() == 0
        started = loop.time()
        await bursts.rest_after(10.0)  # the burst is over: no rest at all
        assert loop.time() - started < 0.5
