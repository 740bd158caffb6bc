"""The outbox end to end: outages, rate limits, Slack's retries, replicas, customer replies.

Everything goes over real HTTP to the Slack emulator. Simulated time (ScaledTime) stands in
for the ten-minute outage and the digest window; rate limits are measured in real time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, select

from bot.db import make_engine, make_sessionmaker
from bot.services import Services
from handlers.blocks.notify import (
    build_reply_digest,
    build_reply_dm,
    build_reply_thread,
    build_reply_triage,
)
from handlers.ticket_notifications import queue_customer_reply_notifications
from jobs.ratelimit import RateLimiter
from models.notify import ReplyNotice
from models.outbox import SLACK, enqueue, slack_call
from models.tables import (
    Customer,
    EventKind,
    Member,
    OutboxMessage,
    OutboxStatus,
    SlackEvent,
    Ticket,
    TicketEvent,
    Workspace,
)
from tests.conftest import (
    BOT_TOKEN,
    POSTGRES_URL,
    SIGNING_SECRET,
    TEAM_ID,
    make_settings,
    truncate_postgres,
)
from tests.jobs.outbox_support import (
    START,
    ScaledTime,
    all_settled,
    count_status,
    make_member,
    make_ticket,
    point_at,
    post,
    rows,
    running_worker,
    wait_until,
)
from tests.slack_emulator import SlackEmulator, validate_blocks

pytestmark = pytest.mark.e2e


@pytest.fixture
async def svc(services: Services, emulator: SlackEmulator) -> Services:
    return point_at(services, emulator, docket_admins=["UADMIN"])


def ok_posts(emulator: SlackEmulator, channel: str | None = None) -> list[Any]:
    return [
        c
        for c in emulator.calls_to("chat.postMessage")
        if c.ok and (channel is None or c.args.get("channel") == channel)
    ]


# -- an outage ------------------------------------------------------------------------------


async def test_500_notifications_survive_a_ten_minute_outage_in_order_and_once(
    svc: Services, emulator: SlackEmulator
) -> None:
    clock = ScaledTime(speed=600)  # ten simulated minutes pass in one real second
    svc.clock = clock.now
    tickets, per_ticket = 50, 10
    async with svc.transaction() as session:
        for t in range(tickets):
            ticket = await make_ticket(
                session, svc.workspace_id, t + 1, card=("CTRIAGE", f"1700000000.{t:06d}")
            )
            for i in range(per_ticket):
                text = f"T{t}#{i}"
                if i % 2:
                    payload = replace(
                        slack_call("chat.postMessage", text=text), in_thread_of=ticket.id
                    )
                else:
                    payload = slack_call("chat.postMessage", channel=f"U{t:03d}", text=text)
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    kind=SLACK,
                    key=f"n:{t}:{i}",
                    payload=payload,
                    at=clock.now(),
                    ordering_key=f"ticket:{ticket.id}",
                )
    await emulator.set_down(True)
    limiter = RateLimiter(clock=clock.monotonic)
    async with running_worker(svc, clock=clock, limiter=limiter):
        await clock.sleep(600)

        async def heads_tried() -> bool:
            heads = [r for r in await rows(svc) if r.idempotency_key.endswith(":0")]
            # Each was tried; some were retried with back-off, none was given up.
            return all(r.attempts >= 1 for r in heads) and max(r.attempts for r in heads) >= 3

        # Ten minutes (or more, on a busy machine) down: every ticket's first message was
        # tried (and retried), none lost.
        await wait_until(heads_tried, timeout=15)
        during = await rows(svc)
        # Nothing went out; only thread copies were folded into the copy before them.
        merged = [r for r in during if r.status != OutboxStatus.PENDING]
        assert all((r.result or {}).get("merged_into") for r in merged)
        heads = [r for r in during if r.idempotency_key.endswith(":0")]
        assert all(r.attempts >= 1 and "unreachable" in (r.last_error or "") for r in heads)
        assert max(r.attempts for r in heads) >= 3  # retried with back-off, not given up
        assert not emulator.calls
        await emulator.set_down(False)
        await wait_until(lambda: all_settled(svc), timeout=30)
    posts = ok_posts(emulator)
    # Thread copies queued together for one thread went as one message (lines in order).
    texts = [line for c in posts for line in c.args["text"].split("\n")]
    assert len(texts) == tickets * per_ticket
    assert len(set(texts)) == len(texts), "a notification was delivered twice"
    # Order is kept per person's DMs and per card thread (and nowhere else).
    arrival: dict[tuple[int, str], list[int]] = defaultdict(list)
    for message in posts:
        for line in message.args["text"].split("\n"):
            t, i = line[1:].split("#")
            arrival[(int(t), message.args["channel"])].append(int(i))
    for (_t, channel), order in arrival.items():
        parity = 1 if channel == "CTRIAGE" else 0
        assert order == list(range(parity, per_ticket, 2))
    assert all(r.status == OutboxStatus.DELIVERED for r in await rows(svc))
    threads = [c for c in posts if c.args["channel"] == "CTRIAGE"]
    assert all(c.args["thread_ts"].startswith("1700000000.") for c in threads)


# -- rate limits ----------------------------------------------------------------------------


async def test_429_retry_after_is_honoured_and_one_message_per_second_per_channel(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.enforce_channel_rate(1.0)
    emulator.rate_limit_next("chat.postMessage", retry_after=2)
    async with running_worker(svc, limiter=RateLimiter()):
        async with svc.transaction() as session:
            for i, channel in itertools.product(range(2), ("C1", "C2")):
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    kind=SLACK,
                    key=f"{channel}-{i}",
                    payload=slack_call("chat.postMessage", channel=channel, text=f"{channel}-{i}"),
                    at=svc.now(),
                    ordering_key=f"ticket:{channel}",
                )
        await wait_until(lambda: all_settled(svc), timeout=20)
    calls = emulator.calls_to("chat.postMessage")
    limited = calls[0]
    assert limited.status == 429 and limited.headers is not None
    retried = next(c for c in calls[1:] if c.args["channel"] == limited.args["channel"])
    waited = retried.at - limited.at
    assert 2.0 <= waited < 3.5, f"waited {waited:.2f}s after Retry-After: 2"
    # The other channel was not held up by that 429.
    other = next(c for c in calls[1:] if c.args["channel"] != limited.args["channel"])
    assert other.at - limited.at < 0.5
    # The enforcing emulator never had to refuse anything Docket sent.
    assert emulator.ratelimited_count == 0
    assert emulator.max_rate("C1") <= 1 and emulator.max_rate("C2") <= 1
    assert sorted(c.args["text"] for c in ok_posts(emulator)) == sorted(
        f"{ch}-{i}" for i, ch in itertools.product(range(2), ("C1", "C2"))
    )


async def test_a_backlog_for_one_channel_does_not_hold_up_the_others(
    svc: Services, emulator: SlackEmulator
) -> None:
    """A paced channel's backlog fills at most `per_target` of the worker's hands."""
    emulator.enforce_channel_rate(1.0)
    async with running_worker(svc, limiter=RateLimiter(), max_inflight=20, per_target=4):
        async with svc.transaction() as session:
            for i in range(40):
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    kind=SLACK,
                    key=f"busy-{i}",
                    payload=slack_call("chat.postMessage", channel="CBUSY", text=f"busy-{i}"),
                    at=svc.now(),
                )
            for i in range(3):
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    kind=SLACK,
                    key=f"dm-{i}",
                    payload=slack_call("chat.postMessage", channel=f"UAGENT{i}", text="reply"),
                    at=svc.now(),
                )
        started = time.monotonic()
        for i in range(3):
            await emulator.wait_for(
                lambda c, i=i: c.method == "chat.postMessage" and c.args["channel"] == f"UAGENT{i}",
                timeout=5,
            )
        assert time.monotonic() - started < 3.0
        assert len(ok_posts(emulator, "CBUSY")) < 10, "the DMs went out while the backlog waited"
    assert emulator.ratelimited_count == 0


# -- Slack's retries through the real server -------------------------------------------------


CUSTOMER_CHANNEL = "CACMESHARED"


async def on_customer_message(services: Services, body: dict[str, Any]) -> None:
    """Stand-in for customer-channel processing: a root message opens a ticket, a thread
    reply is a customer reply (a history entry plus notifications). Idempotent the way the
    real code must be: a message becomes at most one history entry (unique slack_ts)."""
    event = body.get("event") or {}
    if event.get("channel") != CUSTOMER_CHANNEL or event.get("bot_id") or event.get("subtype"):
        return
    ts, root = event["ts"], event.get("thread_ts") or event["ts"]
    async with services.transaction() as session:
        seen = await session.exec(
            select(TicketEvent).where(
                TicketEvent.workspace_id == services.workspace_id, TicketEvent.slack_ts == ts
            )
        )
        if seen.first() is not None:
            return
        at = services.now()
        if ts == root:
            count = (
                await session.execute(sa.select(sa.func.count()).select_from(Ticket))
            ).scalar_one()
            number = int(count) + 1
            agent = (
                await session.exec(select(Member).where(Member.slack_user_id == f"UAGENT{number}"))
            ).first()
            # Every other ticket is assigned; each card has its own channel, so Slack's
            # one-message-per-second-per-channel keeps this test short.
            ticket = Ticket(
                workspace_id=services.workspace_id,
                number=number,
                title=event["text"][:100],
                assignee_id=agent.id if agent and number % 2 else None,
                card_channel=f"CCARD{number:02d}",
                card_ts=ts,
            )
            session.add(ticket)
            await session.flush()
            session.add(
                TicketEvent(
                    workspace_id=services.workspace_id,
                    ticket_id=ticket.id,  # type: ignore[arg-type]
                    kind=EventKind.CREATED,
                    slack_ts=ts,
                    body=event["text"],
                )
            )
            return
        created = (
            await session.exec(select(TicketEvent).where(TicketEvent.slack_ts == root))
        ).one()
        ticket_row = await session.get(Ticket, created.ticket_id)
        assert ticket_row is not None
        reply = TicketEvent(
            workspace_id=services.workspace_id,
            ticket_id=created.ticket_id,
            kind=EventKind.CUSTOMER_REPLY,
            slack_ts=ts,
            body=event["text"],
            created_at=at,
        )
        session.add(reply)
        await session.flush()
        await queue_customer_reply_notifications(
            session=session,
            services=services,
            ticket=ticket_row,
            event=reply,
            text=event["text"],
            at=at,
        )


@pytest.fixture
async def docket_with_customers(
    monkeypatch: pytest.MonkeyPatch, database_url: str, emulator: SlackEmulator
) -> AsyncIterator[Any]:
    """The real server, with the customer-channel stand-in registered for message events."""
    from bot import app as app_factory
    from tests.harness import running_docket

    original = app_factory.register_listeners

    def register(app: Any) -> Any:
        router = original(app)
        router.on("message", on_customer_message)
        return router

    monkeypatch.setattr(app_factory, "register_listeners", register)
    settings = make_settings(
        slack_api_url=emulator.api_url,
        database_url=database_url,
        docket_triage_channel="CTRIAGE",
        docket_fold_updates=10,
    )
    async with running_docket(settings, emulator, SIGNING_SECRET) as harness:
        async with harness.services.transaction() as session:
            for n in range(1, 26):
                await make_member(session, harness.services.workspace_id, f"UAGENT{n}")
        yield harness


async def _count(services: Services, model: Any, *where: Any) -> int:
    async with services.read() as session:
        stmt = sa.select(sa.func.count()).select_from(model)
        for clause in where:
            stmt = stmt.where(clause)
        return int((await session.execute(stmt)).scalar_one())


async def test_1000_duplicate_event_deliveries_make_no_duplicate_tickets_notes_or_dms(
    docket_with_customers: Any,
) -> None:
    docket = docket_with_customers
    # One reply per ticket: each card and DM channel gets one message, so Slack's
    # one-per-second-per-channel pace does not stretch the test.
    roots, replies_per_root = 25, 1
    messages = []
    for r in range(roots):
        root_ts = f"1700001000.{r:06d}"
        messages.append({"ts": root_ts, "text": f"Problem {r}"})
        for k in range(replies_per_root):
            ts = f"1700002000.{r * 100 + k:06d}"
            messages.append({"ts": ts, "thread_ts": root_ts, "text": f"Reply {r}.{k}"})
    deliveries = []
    for m, message in enumerate(messages):
        event = docket.requests.message_event(
            message["text"],
            channel=CUSTOMER_CHANNEL,
            user="UCUSTOMER",
            ts=message["ts"],
            thread_ts=message.get("thread_ts"),
        )
        # Two event ids for one message (as Socket Mode or message + mention can), each
        # delivered ten times: once, then as Slack's retries.
        for copy, retry in itertools.product(("a", "b"), range(10)):
            deliveries.append((event, f"Ev{m:04d}{copy}", retry or None))
    assert len(deliveries) == 1000

    gate = asyncio.Semaphore(25)

    async def deliver(event: dict[str, Any], event_id: str, retry: int | None) -> int:
        body, headers = docket.requests.event(
            event, event_id=event_id, retry_num=None if retry is None else 1 + retry % 3
        )
        async with gate:
            return (await docket.send(body, headers)).status

    statuses = await asyncio.gather(*(deliver(*d) for d in deliveries))
    assert Counter(statuses) == {200: 1000}

    services = docket.services
    replies = roots * replies_per_root
    assigned_roots = (roots + 1) // 2
    dms_expected = assigned_roots * replies_per_root
    emulator = docket.emulator
    await emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and c.ok, timeout=30, count=replies + dms_expected
    )
    await asyncio.sleep(0.5)  # room for any (wrong) extra delivery
    assert await _count(services, SlackEvent) == len(messages) * 2
    assert await _count(services, Ticket) == roots
    assert await _count(services, TicketEvent, col(TicketEvent.kind) == EventKind.CREATED) == roots
    notes = await _count(services, TicketEvent, col(TicketEvent.kind) == EventKind.CUSTOMER_REPLY)
    assert notes == replies
    dms = [c for c in ok_posts(emulator) if c.args["channel"].startswith("UAGENT")]
    copies = [c for c in ok_posts(emulator) if c.args["channel"].startswith("CCARD")]
    assert len(dms) == dms_expected and len(copies) == replies
    assert len({c.args["text"] for c in dms}) == len(dms)
    assert len({c.args["text"] for c in copies}) == len(copies)

    # A stored body processed again (a crash before it was marked done) changes nothing.
    outbox_before = await _count(services, OutboxMessage)
    async with services.read() as session:
        bodies = [e.body for e in (await session.exec(select(SlackEvent))).all()]
    for body in bodies:
        await on_customer_message(services, body)
    assert await _count(services, OutboxMessage) == outbox_before
    assert await _count(services, TicketEvent) == roots + replies


# -- customer replies ------------------------------------------------------------------------


async def _ticket_with_card(
    svc: Services, emulator: SlackEmulator, *, assignee: str | None, active: bool = True
) -> tuple[int, str]:
    card = emulator.add_message("CTRIAGE", "card of #12")
    async with svc.transaction() as session:
        customer = Customer(workspace_id=svc.workspace_id, name="Acme <GmbH>")
        session.add(customer)
        await session.flush()
        member = None
        if assignee:
            member = await make_member(
                session, svc.workspace_id, assignee, name="Ann", active=active
            )
        ticket = await make_ticket(
            session,
            svc.workspace_id,
            12,
            assignee=member,
            customer=customer,
            card=("CTRIAGE", card["ts"]),
        )
        assert ticket.id is not None
        return ticket.id, str(card["ts"])


async def _customer_reply(svc: Services, ticket_id: int, new: str, *, history: str = "") -> None:
    """What the mail code does: keep the whole mail in the history, notify with the new text."""
    async with svc.transaction() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        at = svc.now()
        event = TicketEvent(
            workspace_id=svc.workspace_id,
            ticket_id=ticket_id,
            kind=EventKind.CUSTOMER_REPLY,
            body=new + history,
            created_at=at,
        )
        session.add(event)
        await session.flush()
        await queue_customer_reply_notifications(
            session=session, services=svc, ticket=ticket, event=event, text=new, at=at
        )


HISTORY = "\n\nOn Mon, Ann wrote:\n> Have you tried turning it off and on again?\n"


async def test_a_customer_reply_reaches_the_assignees_dm_with_only_the_new_text(
    svc: Services, emulator: SlackEmulator
) -> None:
    ticket_id, card_ts = await _ticket_with_card(svc, emulator, assignee="UANN")
    async with running_worker(svc):
        await _customer_reply(
            svc, ticket_id, "Yes. Now it smells of <!channel> smoke.", history=HISTORY
        )
        await wait_until(lambda: all_settled(svc), timeout=5)
    (dm,) = ok_posts(emulator, "UANN")
    shown = json.dumps(dm.args["blocks"])
    assert "Now it smells of &lt;!channel&gt; smoke." in shown
    assert "turning it off" not in shown and "turning it off" not in dm.args["text"]
    assert "Acme &lt;GmbH&gt;" in shown and "#12" in shown
    actions = [
        e["action_id"] for b in dm.args["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert actions == ["ticket_reply", "ticket_log_time", "ticket_status", "reply_show_full"]
    assert validate_blocks(dm.args["blocks"]) == []
    (copy,) = [c for c in ok_posts(emulator, "CTRIAGE")]
    assert copy.args["thread_ts"] == card_ts
    assert "smells of" in json.dumps(copy.args["blocks"])
    assert "ticket_take" not in json.dumps(copy.args["blocks"])


async def test_an_unassigned_tickets_reply_lands_in_its_thread_asking_who_takes_it(
    svc: Services, emulator: SlackEmulator
) -> None:
    ticket_id, card_ts = await _ticket_with_card(svc, emulator, assignee=None)
    async with running_worker(svc):
        await _customer_reply(svc, ticket_id, "Hello? Anyone?")
        await wait_until(lambda: all_settled(svc), timeout=5)
    (post_,) = ok_posts(emulator)
    assert post_.args["channel"] == "CTRIAGE" and post_.args["thread_ts"] == card_ts
    blocks = post_.args["blocks"]
    assert "Hello? Anyone?" in json.dumps(blocks)
    take = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(e["action_id"], e["value"], e["text"]["text"]) for e in take] == [
        ("ticket_take", str(ticket_id), "I'll take it")
    ]
    assert validate_blocks(blocks) == []


async def test_a_deactivated_assignees_reply_goes_to_triage(
    svc: Services, emulator: SlackEmulator
) -> None:
    ticket_id, card_ts = await _ticket_with_card(svc, emulator, assignee="UGONE", active=False)
    async with running_worker(svc):
        await _customer_reply(svc, ticket_id, "Still broken")
        await wait_until(lambda: all_settled(svc), timeout=5)
    posts = ok_posts(emulator, "CTRIAGE")
    top = [c for c in posts if "thread_ts" not in c.args]
    assert len(top) == 1 and "Ann is deactivated" in json.dumps(top[0].args["blocks"])
    assert not ok_posts(emulator, "UGONE")
    assert [c.args["thread_ts"] for c in posts if "thread_ts" in c.args] == [card_ts]


async def test_a_burst_of_replies_becomes_one_digest_dm(
    svc: Services, emulator: SlackEmulator
) -> None:
    clock = ScaledTime(speed=600)  # the 10-minute window passes in one second
    svc.clock = clock.now
    ticket_id, _ = await _ticket_with_card(svc, emulator, assignee="UANN")
    async with running_worker(svc, clock=clock):
        for i in range(6):
            await _customer_reply(svc, ticket_id, f"update {i}")
        await wait_until(lambda: all_settled(svc), timeout=10)
    dms = [c.args["text"] for c in ok_posts(emulator, "UANN")]
    assert len(dms) == 4
    assert all(f"update {i}" in dms[i] for i in range(3))
    assert dms[3].startswith(
        "3 more replies from Acme &lt;GmbH&gt; on #12 Printer jams in the last 10 minutes"
    )
    # The thread keeps every reply, once (copies queued together go as one message).
    thread = json.dumps([c.args for c in ok_posts(emulator, "CTRIAGE")])
    assert all(thread.count(f"update {i}") >= 1 for i in range(6))
    assert 1 <= len(ok_posts(emulator, "CTRIAGE")) <= 6


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=6000) | st.just("line\n" * 900),
    customer=st.text(min_size=1, max_size=300),
    title=st.text(min_size=1, max_size=400),
)
def test_reply_messages_fit_slacks_limits_and_escape_anything(
    text: str, customer: str, title: str
) -> None:
    notice = ReplyNotice(7, 12, title, customer, text, 99, START, "UANN", "Ann", "waiting")
    messages = [
        build_reply_dm(notice),
        build_reply_thread(notice, True),
        build_reply_triage(notice, "its assignee Ann is deactivated"),
        build_reply_digest(notice, 3, 10),
    ]
    for message in messages:
        assert validate_blocks(message["blocks"]) == []
        assert len(message["text"]) <= 300
        shown = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
        assert not any("<" in part for part in shown), "customer text must be escaped"
    status = [e for b in messages[0]["blocks"] if b["type"] == "actions" for e in b["elements"]][2]
    assert status["initial_option"]["value"] == "7:waiting"


# -- replicas ---------------------------------------------------------------------------------


@pytest.mark.skipif(
    not POSTGRES_URL,
    reason="DOCKET_TEST_POSTGRES_URL is not set: two workers sharing one database need "
    "PostgreSQL (FOR UPDATE SKIP LOCKED); SQLite runs one delivering process",
)
async def test_two_workers_on_one_postgres_deliver_each_row_exactly_once(
    postgres_ready: bool, emulator: SlackEmulator
) -> None:
    assert POSTGRES_URL and postgres_ready
    engines = [make_engine(POSTGRES_URL), make_engine(POSTGRES_URL)]
    await truncate_postgres(engines[0])
    sessions = make_sessionmaker(engines[0])
    async with sessions() as session, session.begin():
        ws = Workspace(team_id=TEAM_ID, name="Acme IT", triage_channel="CTRIAGE")
        session.add(ws)
        await session.flush()
        assert ws.id is not None
        workspace_id = ws.id
    replicas = [
        Services(
            settings=make_settings(slack_api_url=emulator.api_url, database_url=POSTGRES_URL),
            engine=engine,
            sessions=make_sessionmaker(engine),
            slack=AsyncWebClient(token=BOT_TOKEN, base_url=emulator.api_url),
            workspace_id=workspace_id,
            team_id=TEAM_ID,
            bot_user_id="UBOT",
            timezone=ZoneInfo("UTC"),
        )
        for engine in engines
    ]
    total, keys = 1000, 200
    async with sessions() as session, session.begin():
        for i in range(total):
            await enqueue(
                session=session,
                workspace_id=workspace_id,
                kind=SLACK,
                key=f"r{i}",
                payload=slack_call("chat.postMessage", channel=f"C{i % 40:02d}", text=f"r{i}"),
                at=replicas[0].now(),
                ordering_key=f"ticket:{i % keys}",
            )
    try:
        # Small batches and a short idle poll keep both replicas claiming all the time.
        tuning: dict[str, Any] = {"idle_poll": 0.02, "max_inflight": 10, "concurrency": 4}
        async with running_worker(replicas[0], owner="replica-a", **tuning) as first:
            async with running_worker(replicas[1], owner="replica-b", **tuning) as second:
                await wait_until(lambda: all_settled(replicas[0]), timeout=40)
        assert first.counts["delivered"] > 0 and second.counts["delivered"] > 0
        assert first.counts["delivered"] + second.counts["delivered"] == total
        texts = [c.args["text"] for c in ok_posts(emulator)]
        assert len(texts) == total and len(set(texts)) == total
        by_key: dict[int, list[int]] = defaultdict(list)
        for text in texts:
            by_key[int(text[1:]) % keys].append(int(text[1:]))
        assert all(order == sorted(order) for order in by_key.values())
        assert await count_status(replicas[0], OutboxStatus.DELIVERED) == total
    finally:
        for engine in engines:
            await engine.dispose()


async def test_queued_work_is_visible_to_a_posting_helper(svc: Services) -> None:
    """The helpers the other tests rely on: queueing wakes a worker at once."""
    svc.wake.outbox.clear()
    await post(svc, "x")
    assert svc.wake.outbox.is_set()
    assert (await rows(svc))[0].status == OutboxStatus.PENDING
