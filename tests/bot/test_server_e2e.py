"""The foundation end to end: the real server on loopback, signed requests, the emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from models.tables import SlackEvent
from tests.conftest import SIGNING_SECRET
from tests.slack_signing import sign

pytestmark = pytest.mark.e2e


async def _count_events(docket: Any) -> int:
    async with docket.services.read() as session:
        result = await session.execute(sa.select(sa.func.count()).select_from(SlackEvent))
        return int(result.scalar_one())


async def test_health_is_ok_with_the_database(docket: Any) -> None:
    reply = await docket.get("/healthz")
    assert reply.status == 200
    assert reply.json()["status"] == "ok"


async def test_url_verification_answers_the_challenge(docket: Any) -> None:
    body, headers = docket.requests.url_verification(
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    )
    reply = await docket.send(body, headers)
    assert reply.status == 200
    assert reply.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_docket_help_is_acked_fast_with_help_text(docket: Any) -> None:
    reply = await docket.command("/docket", "help")
    assert reply.status == 200
    assert reply.elapsed < 3.0
    text = str(reply.json())
    assert "/ticket" in text and "/time" in text and "/profit" in text


async def test_unknown_docket_text_gets_help_not_an_error(docket: Any) -> None:
    reply = await docket.command("/docket", "frobnicate <!channel>")
    assert reply.status == 200
    assert "/ticket" in str(reply.json())


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body, ts: {"X-Slack-Signature": "v0=" + "0" * 64}, id="forged"),
        pytest.param(
            lambda body, ts: {
                "X-Slack-Request-Timestamp": str(ts - 301),
                "X-Slack-Signature": sign(SIGNING_SECRET, body, ts - 301),
            },
            id="stale",
        ),
        pytest.param(
            lambda body, ts: {"X-Slack-Signature": sign("wrong-secret", body, ts)},
            id="other-secret",
        ),
        pytest.param(
            lambda body, ts: {"X-Slack-Request-Timestamp": "12ab", "X-Slack-Signature": "v0=x"},
            id="non-numeric-timestamp",
        ),
        pytest.param(lambda body, ts: {"X-Slack-Signature": ""}, id="missing-signature"),
    ],
)
async def test_forged_and_stale_requests_get_401_and_write_nothing(docket: Any, forge: Any) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "hi", "channel": "C1", "ts": "1.0"}
    body, headers = docket.requests.event(event)
    ts = int(time.time())
    headers = {**headers, **forge(body, ts)}
    reply = await docket.send(body, headers)
    assert reply.status == 401
    assert await _count_events(docket) == 0


async def test_tampered_body_is_refused(docket: Any) -> None:
    body, headers = docket.requests.slash_command(command="/docket", text="help")
    reply = await docket.send(body.replace(b"help", b"hel p"), headers)
    assert reply.status == 401


async def test_oversized_body_gets_413(docket: Any) -> None:
    body = b"x" * (1024 * 1024 + 10)
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SIGNING_SECRET, body, ts),
    }
    reply = await docket.send(body, headers)
    assert reply.status == 413


async def test_events_are_stored_once_and_answered_200(docket: Any) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "hello", "channel": "C1", "ts": "1.5"}
    for retry in (None, 1, 2):
        body, headers = docket.requests.event(event, event_id="Ev1", retry_num=retry)
        reply = await docket.send(body, headers)
        assert reply.status == 200
    assert await _count_events(docket) == 1


@pytest.mark.parametrize(
    "event_type", ["app_home_opened", "message", "app_mention", "member_joined_channel"]
)
async def test_every_subscribed_event_type_gets_200(docket: Any, event_type: str) -> None:
    event = {
        "type": event_type,
        "user": "U1",
        "channel": "C1",
        "ts": "2.0",
        "text": "x",
        "tab": "home",
    }
    body, headers = docket.requests.event(event)
    reply = await docket.send(body, headers)
    assert reply.status == 200
