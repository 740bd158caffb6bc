"""Ingress refuses cleanly, and duplicate deliveries never double anything."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.db import make_engine
from tests.conftest import BOT_TOKEN, POSTGRES_URL, SIGNING_SECRET
from tests.procs import serve_env, start_serve
from tests.slack_signing import SlackRequests, sign

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "body",
    [
        b"ssl_check=1&token=verification-token",
        b"ssl_check=1",
        b"ssl_check=1&command=%2Fdocket&text=help&team_id=T0001&user_id=U1",
    ],
)
async def test_ssl_check_bodies_without_a_valid_signature_get_401(docket: Any, body: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (await docket.send(body, headers)).status == 401
    headers["X-Slack-Request-Timestamp"] = str(int(time.time()))
    headers["X-Slack-Signature"] = "v0=deadbeef"
    assert (await docket.send(body, headers)).status == 401


async def test_a_signed_body_replayed_with_a_new_timestamp_is_refused(docket: Any) -> None:
    body, headers = docket.requests.slash_command(command="/docket", text="help")
    replay = {**headers, "X-Slack-Request-Timestamp": str(int(time.time()) + 1)}
    assert (await docket.send(body, replay)).status == 401


async def test_an_event_for_another_workspace_is_refused(docket: Any) -> None:
    other = SlackRequests(SIGNING_SECRET, team_id="TOTHER")
    body, headers = other.event({"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.0"})
    assert (await docket.send(body, headers)).status == 403


def _from_another_workspace(kind: str) -> tuple[bytes, dict[str, str]]:
    other = SlackRequests(SIGNING_SECRET, team_id="TOTHER")
    if kind == "command":
        return other.slash_command(command="/ticket", text="list", user_id="UOTHER")
    if kind == "button":
        return other.interactivity(other.block_actions("ticket_close", "1", user_id="UOTHER"))
    if kind == "view":
        return other.interactivity(other.view_submission("settings_modal", {}, user_id="UOTHER"))
    if kind == "options":
        return other.interactivity(other.block_suggestion("ticket_customer", "ac", "UOTHER"))
    message = {"text": "help", "user": "UOTHER", "ts": "1.0"}
    return other.interactivity(
        other.message_action("create_ticket_from_message", message, "C1", "UOTHER")
    )


@pytest.mark.parametrize("kind", ["command", "button", "view", "options", "shortcut"])
async def test_requests_signed_for_another_workspace_get_403_and_run_nothing(
    docket: Any, kind: str
) -> None:
    body, headers = _from_another_workspace(kind)
    before = len(docket.emulator.calls)
    reply = await docket.send(body, headers)
    assert reply.status == 403
    await asyncio.sleep(0.2)  # a handler that ran anyway would call Slack by now
    assert docket.emulator.calls[before:] == []
    async with docket.services.read() as session:
        for table in ("member", "ticket", "outbox_message", "slack_event"):
            count = (await session.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()
            assert count == 0, table


async def test_malformed_json_with_a_valid_signature_is_400(docket: Any) -> None:
    body = b'{"type": "event_callback", "event_id": '
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SIGNING_SECRET, body, ts),
    }
    assert (await docket.send(body, headers)).status == 400


@pytest.mark.skipif(
    not POSTGRES_URL, reason="needs DOCKET_TEST_POSTGRES_URL (two replicas share PostgreSQL)"
)
@pytest.mark.slow
async def test_10000_deliveries_on_two_replicas_store_2500_events_and_reply_once_each(
    emulator: Any, tmp_path: Path, postgres_ready: bool
) -> None:
    from tests.conftest import truncate_postgres

    assert POSTGRES_URL
    engine = make_engine(POSTGRES_URL)
    await truncate_postgres(engine)
    env = serve_env(
        database_url=POSTGRES_URL,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
    )
    replicas = [await start_serve(env, tmp_path / f"replica{i}.log") for i in range(2)]
    requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    bodies = []
    for i in range(2500):
        # Spread over channels: the outbox paces one message a second per channel.
        event = {
            "type": "app_mention",
            "user": "U1",
            "text": "hi",
            "channel": f"CDUP{i % 50:02d}",
            "ts": f"1700000100.{i:06d}",
        }
        req = requests.event(event, event_id=f"EvDup{i:05d}")
        for copy in range(4):
            retry = None if copy == 0 else copy
            bodies.append(
                (req.body, {**req.headers, **({"X-Slack-Retry-Num": str(retry)} if retry else {})})
            )
    random.Random(7).shuffle(bodies)
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    statuses: list[int] = []

    async def sender(n: int) -> None:
        url = replicas[n % 2].url + "/slack/events"
        async with aiohttp.ClientSession() as http:
            while not queue.empty():
                body, headers = queue.get_nowait()
                async with http.post(url, data=body, headers=headers) as resp:
                    statuses.append(resp.status)

    async def event_counts() -> tuple[int, int, int]:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*), count(*) FILTER (WHERE status = 'done'),"
                        " coalesce(sum(attempts), 0) FROM slack_event"
                    )
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    try:
        started = time.monotonic()
        await asyncio.gather(*(sender(n) for n in range(20)))
        ingest = time.monotonic() - started
        assert statuses.count(200) == 10_000
        deadline = time.monotonic() + 120
        while (await event_counts())[1] < 2500 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        processed = time.monotonic() - started
        # Let some replies go out (the outbox paces chat.postMessage at 300 a minute per
        # replica, so all 2,500 would take minutes); what went out must not be doubled.
        await emulator.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args["channel"].startswith("CDUP"),
            timeout=30,
            count=200,
        )
    finally:
        # Off the event loop: the emulator lives in this loop and must answer the calls the
        # replicas finish while they shut down.
        await asyncio.gather(*(asyncio.to_thread(r.terminate) for r in replicas))
    stored, done, attempts = await event_counts()
    async with engine.connect() as conn:
        queued = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT idempotency_key),"
                    " count(*) FILTER (WHERE status = 'delivered')"
                    " FROM outbox_message WHERE idempotency_key LIKE 'mention:%'"
                )
            )
        ).one()
    await engine.dispose()
    print(f"10,000 deliveries answered in {ingest:.1f} s, 2,500 processed after {processed:.1f} s")
    assert (stored, done, attempts) == (2500, 2500, 2500)
    assert tuple(queued[:2]) == (2500, 2500)
    replies = [
        c
        for c in emulator.calls_to("chat.postMessage")
        if c.ok and str(c.args.get("channel", "")).startswith("CDUP")
    ]
    assert len(replies) == queued[2] >= 200
    assert len({c.args["thread_ts"] for c in replies}) == len(replies)
