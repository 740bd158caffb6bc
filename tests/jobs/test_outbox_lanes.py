"""Delivery lanes: a person's DM never waits behind card updates or channel copies; a card
update superseded by a newer one is not sent; thread copies queued together go as one.

Pure rules first, then the queue on SQLite and PostgreSQL, then the worker with the real rate
limiter (on a fast clock) against the emulator.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_sessionmaker
from bot.services import Services
from jobs.ratelimit import RateLimiter
from models.outbox import (
    LANE_BULK,
    LANE_DM,
    THREAD_MERGE_SECONDS,
    EmailSend,
    SlackCall,
    claim_due,
    coalesce_key_of,
    delivery_order,
    enqueue,
    lane_of,
    merged_payload,
    payload_json,
    slack_call,
)
from models.tables import OutboxStatus, Workspace
from tests.jobs.outbox_support import (
    START,
    ScaledTime,
    all_settled,
    make_ticket,
    point_at,
    rows,
    running_worker,
    wait_until,
)
from tests.slack_emulator import SlackEmulator

DM = slack_call("chat.postMessage", channel="UAGNES", text="hi")
CARD_UPDATE = replace(slack_call("chat.update", text="card"), updates_card_of=7)
THREAD = replace(slack_call("chat.postMessage", text="copy"), in_thread_of=7)
CHANNEL = slack_call("chat.postMessage", channel="CTRIAGE", text="hi")

# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "lane", "order", "coalesce"),
    [
        (DM, LANE_DM, "dm:UAGNES", None),
        (slack_call("chat.postMessage", channel="DABC", text="x"), LANE_DM, "dm:DABC", None),
        (CARD_UPDATE, LANE_BULK, "ticket:7", "card:7"),
        (THREAD, LANE_BULK, "ticket:7", "thread:7"),
        (CHANNEL, LANE_BULK, "ticket:7", None),
        (slack_call("views.publish", user_id="UAGNES", view={}), LANE_BULK, "ticket:7", None),
        (replace(DM, in_thread_of=7), LANE_BULK, "ticket:7", "thread:7"),
        (replace(DM, posts_card_of=7), LANE_BULK, "ticket:7", None),
    ],
)
def test_lanes_orders_and_coalescing(
    payload: SlackCall, lane: int, order: str, coalesce: str | None
) -> None:
    assert lane_of(payload) == lane
    assert delivery_order(payload, "ticket:7") == order
    assert coalesce_key_of(payload) == coalesce


def test_a_delayed_dm_keeps_its_own_line_and_email_is_bulk() -> None:
    assert delivery_order(DM, "ticket:7:digest", delayed=True) == "ticket:7:digest"
    mail = EmailSend(to=("a@b.test",), raw="x")
    assert lane_of(mail) == LANE_BULK and coalesce_key_of(mail) is None


def test_merged_payload() -> None:
    divider = {"type": "divider"}
    one = payload_json(
        replace(slack_call("chat.postMessage", text="a", blocks=[divider]), in_thread_of=7)
    )
    two = payload_json(slack_call("chat.postMessage", text="b", blocks=[divider] * 2))
    merged = merged_payload(one, two)
    assert merged is not None
    assert merged["args"]["text"] == "a\nb" and len(merged["args"]["blocks"]) == 3
    assert merged["thread_of_ticket"] == 7
    assert one["args"]["text"] == "a"  # the inputs are left alone
    too_many = payload_json(slack_call("chat.postMessage", text="c", blocks=[divider] * 48))
    assert merged_payload(merged, too_many) is None


def test_urgent_calls_keep_room_in_a_busy_method() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    call = [("chat.postMessage", "CTRIAGE")]
    # Bulk calls to many channels use the method's burst but leave a third of it.
    taken = 0
    for n in range(40):
        if limiter.try_take([("chat.postMessage", f"C{n}")], urgent=False) == 0:
            taken += 1
    assert 19 <= taken <= 20  # 30 at once, a third kept for urgent calls
    assert limiter.try_take([("chat.postMessage", "UAGNES")], urgent=True) == 0
    # A call waiting for its channel books nothing ahead.
    now[0] = 60.0
    assert limiter.try_take(call, urgent=False) == 0
    assert limiter.try_take(call, urgent=False) > 0
    assert limiter.wait_for([("chat.postMessage", "UBOB")], urgent=True) == 0
    # A call that left late: the channel's next message waits a full interval from its answer.
    now[0] = 70.0
    assert limiter.try_take(call, urgent=True) == 0
    now[0] = 70.9
    limiter.settle(call)
    assert limiter.wait_for(call) == pytest.approx(1.1)


# -- the queue (both backends) ------------------------------------------------------------------


async def _enqueue(session: Any, ws: int, key: str, payload: SlackCall, **kw: Any) -> Any:
    return await enqueue(
        session=session,
        workspace_id=ws,
        key=key,
        payload=payload,
        at=kw.pop("at", START),
        ordering_key=kw.pop("ordering_key", "ticket:7"),
        **kw,
    )


async def test_superseded_card_updates_and_merged_copies(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        first = await _enqueue(session, workspace.id, "card:v2", CARD_UPDATE)
        second = await _enqueue(session, workspace.id, "card:v3", CARD_UPDATE)
        dm = await _enqueue(session, workspace.id, "dm", DM)
        copy1 = await _enqueue(session, workspace.id, "copy1", THREAD)
        copy2 = await _enqueue(
            session,
            workspace.id,
            "copy2",
            replace(slack_call("chat.postMessage", text="two"), in_thread_of=7),
        )
        # The same copy queued again (a retried change) adds nothing.
        assert await _enqueue(session, workspace.id, "copy2", THREAD) is None
    async with sessions() as session, session.begin():
        # A copy queued after the window starts a message of its own.
        copy3 = await _enqueue(
            session,
            workspace.id,
            "copy3",
            THREAD,
            at=START + timedelta(seconds=THREAD_MERGE_SECONDS + 1),
        )
    by_id = {r.id: r for r in await _all(engine)}
    assert by_id[first].status == OutboxStatus.DELIVERED
    assert by_id[first].result == {"superseded_by": second}
    assert by_id[second].status == OutboxStatus.PENDING
    assert by_id[copy2].status == OutboxStatus.DELIVERED
    assert by_id[copy2].result == {"merged_into": copy1}
    assert by_id[copy1].payload["args"]["text"] == "copy\ntwo"
    assert by_id[copy3].status == OutboxStatus.PENDING
    assert by_id[dm].ordering_key == "dm:UAGNES"

    # The DM is claimed first, ahead of older bulk rows; the ticket's line is one at a time.
    async with sessions() as session, session.begin():
        claimed = await claim_due(
            session=session, workspace_id=workspace.id, now=START + timedelta(minutes=5), owner="w"
        )
    assert [r.id for r in claimed] == [dm, second]


async def test_a_held_copy_is_never_rewritten(engine: AsyncEngine, workspace: Workspace) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        held = await _enqueue(session, workspace.id, "c1", THREAD, ordering_key=None)
        await _enqueue(session, workspace.id, "u1", CARD_UPDATE, ordering_key=None)
    async with sessions() as session, session.begin():
        claimed = await claim_due(session=session, workspace_id=workspace.id, now=START, owner="w")
        assert {r.id for r in claimed} >= {held}
    async with sessions() as session, session.begin():
        again = await _enqueue(session, workspace.id, "c2", THREAD, ordering_key=None)
        newer = await _enqueue(session, workspace.id, "u2", CARD_UPDATE, ordering_key=None)
    by_id = {r.id: r for r in await _all(engine)}
    assert by_id[held].payload["args"]["text"] == "copy"  # in a worker's hands: untouched
    assert by_id[again].status == OutboxStatus.PENDING
    assert by_id[newer].status == OutboxStatus.PENDING
    assert all(r.status != OutboxStatus.DELIVERED for r in by_id.values())


async def _all(engine: AsyncEngine) -> list[Any]:
    from sqlmodel import col, select

    from models.tables import OutboxMessage

    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        result = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(result.all())


# -- the worker ---------------------------------------------------------------------------------


@pytest.fixture
async def svc(services: Services, emulator: SlackEmulator) -> Services:
    return point_at(services, emulator)


async def test_dms_overtake_paced_card_updates(svc: Services, emulator: SlackEmulator) -> None:
    """Twenty tickets each get a card update, a thread copy and a DM at once: with Slack's real
    paces (chat.update about 50 a minute), every DM still goes out at once."""
    clock = ScaledTime(speed=2)
    emulator.enforce_channel_rate(2.0)  # Slack's one a second per channel, at 2 x speed
    async with svc.transaction() as session:
        tickets = [
            await make_ticket(
                session,
                svc.workspace_id,
                n,
                card=("CTRIAGE", emulator.add_message("CTRIAGE")["ts"]),
            )
            for n in range(1, 21)
        ]
        for ticket in tickets:
            assert ticket.id is not None
            key, order = f"t{ticket.id}", f"ticket:{ticket.id}"
            for suffix, payload in (
                ("card", replace(CARD_UPDATE, updates_card_of=ticket.id)),
                ("copy", replace(THREAD, in_thread_of=ticket.id)),
                ("dm", slack_call("chat.postMessage", channel=f"UA{ticket.id}", text="dm")),
            ):
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    key=f"{key}:{suffix}",
                    payload=payload,
                    at=clock.now(),
                    ordering_key=order,
                )
    started = clock.monotonic()
    async with running_worker(
        svc, clock=clock, limiter=RateLimiter(clock=clock.monotonic)
    ) as worker:

        async def dms_sent() -> bool:
            sent = [c for c in emulator.calls_to("chat.postMessage") if c.ok]
            return sum(1 for c in sent if c.args["channel"].startswith("UA")) == 20

        await wait_until(dms_sent, timeout=10)
        dm_seconds = clock.monotonic() - started
        await wait_until(lambda: all_settled(svc), timeout=60)
    # 20 card updates at Tier 3 need about 20 simulated seconds; the DMs far less, and every
    # DM went out before most card updates.
    assert dm_seconds < 10, dm_seconds
    methods = [c.method for c in emulator.calls if c.method in ("chat.update", "chat.postMessage")]
    last_dm = max(
        i
        for i, c in enumerate(emulator.calls)
        if c.method == "chat.postMessage" and c.args["channel"].startswith("UA")
    )
    updates_before = sum(1 for c in emulator.calls[:last_dm] if c.method == "chat.update")
    assert updates_before <= 10, methods
    assert emulator.ratelimited_count == 0
    assert worker.counts["dead"] == 0
    assert len(emulator.calls_to("chat.update")) == 20
    assert {r.status for r in await rows(svc)} == {OutboxStatus.DELIVERED}
