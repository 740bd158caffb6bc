"""Socket Mode: envelopes go through the same store-then-ack path as HTTP requests.

Unit tests for the envelope -> HTTP body re-encoding, then a real Docket (`bot.runtime.start`)
connected over a WebSocket to the emulator's Socket Mode endpoint, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from aiohttp import web
from slack_sdk.errors import SlackApiError

from bot import runtime as rt
from bot.db import make_engine
from bot.intake import BUSY, read_form
from bot.socket_mode import envelope_ack, form_body, interactive_body, slash_command_body
from handlers.ids import Action, View
from tests.conftest import SIGNING_SECRET, make_settings
from tests.handlers.test_tickets_e2e import form_values
from tests.slack_emulator import SlackEmulator
from tests.slack_signing import SlackRequests, envelope_payload

# -- re-encoding (pure) ---------------------------------------------------------------------


def _requests() -> SlackRequests:
    return SlackRequests(SIGNING_SECRET, team_id="T0001")


def test_a_slash_command_envelope_becomes_the_form_body_slack_posts() -> None:
    signed = _requests().slash_command("/ticket", "Printer on fire & smoking", user_id="U1")
    payload = envelope_payload(signed)

    body = slash_command_body(payload)

    assert dict(parse_qsl(body, keep_blank_values=True)) == dict(
        parse_qsl(signed.body.decode(), keep_blank_values=True)
    )
    assert form_body("slash_commands", payload) == body
    form, malformed = read_form(body)
    assert not malformed and form == payload
    assert form["text"] == "Printer on fire & smoking"


def test_non_string_slash_command_fields_are_encoded_as_slack_writes_them() -> None:
    body = slash_command_body({"command": "/ticket", "is_enterprise_install": False, "n": 3})
    assert dict(parse_qsl(body)) == {
        "command": "/ticket",
        "is_enterprise_install": "false",
        "n": "3",
    }


def test_a_block_action_envelope_becomes_payload_json_in_a_form() -> None:
    payload = _requests().block_actions(Action.ASSIGN_TO_ME.value, "12", channel_id="C1")

    body = interactive_body(payload)

    fields = dict(parse_qsl(body))
    assert list(fields) == ["payload"]
    assert json.loads(fields["payload"]) == payload
    assert form_body("interactive", payload) == body
    assert read_form(body) == (payload, False)


def test_a_view_submission_envelope_round_trips_with_its_state() -> None:
    payload = _requests().view_submission(View.TICKET.value, form_values(title="Ünïcode ✓"))

    body = form_body("interactive", payload)

    assert body is not None and body.startswith("payload=")
    assert read_form(body) == (payload, False)


def test_other_envelope_types_have_no_form_body() -> None:
    assert form_body("events_api", {"type": "event_callback"}) is None
    assert form_body("hello", {}) is None


def test_the_ack_carries_the_http_answer_and_a_refusal_is_not_acked() -> None:
    plain = envelope_ack("e1", web.Response(status=200))
    assert plain is not None and plain.to_dict() == {"envelope_id": "e1"}
    busy = envelope_ack("e2", web.json_response({"response_type": "ephemeral", "text": BUSY}))
    assert busy is not None
    assert busy.to_dict() == {
        "envelope_id": "e2",
        "payload": {"response_type": "ephemeral", "text": BUSY},
    }
    assert envelope_ack("e3", web.json_response({"error": "unknown workspace"}, status=403)) is None


# -- end to end through the emulator's WebSocket ----------------------------------------------


@pytest.fixture
async def socket_docket(database_url: str, emulator: SlackEmulator) -> AsyncIterator[rt.Runtime]:
    """Docket in Socket Mode, connected to the emulator (HTTP serves health and alerts)."""
    settings = make_settings(
        slack_api_url=emulator.api_url,
        slack_app_token=emulator.app_token,
        database_url=database_url,
        docket_triage_channel="CTRIAGE",
        docket_managers_channel="CMANAGERS",
        docket_timezone="Europe/Berlin",
    )
    runtime = await rt.start(settings)
    try:
        await emulator.wait_for_socket()
        yield runtime
    finally:
        await runtime.stop()


async def test_a_refused_app_token_stops_start_up_instead_of_retrying(
    database_url: str, emulator: SlackEmulator
) -> None:
    settings = make_settings(
        slack_api_url=emulator.api_url,
        slack_app_token="xapp-1-A0001-1-revoked",
        database_url=database_url,
    )
    with pytest.raises(SlackApiError) as refused:
        await rt.start(settings)
    assert refused.value.response["error"] == "invalid_auth"
    assert emulator.sockets == []


async def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())
    finally:
        await engine.dispose()


async def _until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("not done in time")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _write_locked(url: str, table: str) -> AsyncIterator[None]:
    """Hold the database's write lock on `table` from another connection (SQLite: the whole
    database, through BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... IN EXCLUSIVE MODE)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.begin()
            if engine.dialect.name == "postgresql":
                await conn.execute(sa.text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
            yield
            await conn.rollback()
    finally:
        await engine.dispose()


def _quick_create(requests: SlackRequests, title: str) -> dict[str, Any]:
    return envelope_payload(requests.slash_command("/ticket", title, user_id="U1"))


async def test_a_quick_create_is_acked_creating_and_ends_as_one_ticket_even_when_redelivered(
    socket_docket: rt.Runtime, emulator: SlackEmulator, database_url: str
) -> None:
    emulator.add_user("U1", name="alice")
    requests = SlackRequests(
        SIGNING_SECRET, team_id=emulator.team_id, response_base=emulator.response_url("")
    )
    payload = _quick_create(requests, "Socket printer")

    first = await emulator.send_envelope("slash_commands", payload)
    ack = await emulator.wait_for_ack(first)
    assert ack["payload"]["response_type"] == "ephemeral"
    assert ack["payload"]["text"] == "Creating ticket…"

    async def created() -> bool:
        rows = await _rows(database_url, "SELECT count(*) FROM ticket")
        return bool(rows[0][0] >= 1)

    await _until(created)
    # The same envelope content again (Slack redelivers): acknowledged alike, stored once.
    again = await emulator.send_envelope("slash_commands", payload)
    assert (await emulator.wait_for_ack(again))["payload"]["text"] == "Creating ticket…"

    async def settled() -> bool:
        rows = await _rows(database_url, "SELECT status FROM slack_intake")
        return [s for (s,) in rows] == ["done"]

    await _until(settled)
    titles = await _rows(database_url, "SELECT title FROM ticket")
    assert titles == [("Socket printer",)]
    answered = await emulator.wait_for(
        lambda c: c.method == "response_url" and "Socket printer" in str(c.args)
    )
    assert answered.args.get("replace_original") is True


async def test_a_form_submission_gets_its_field_errors_or_its_result_in_the_ack(
    socket_docket: rt.Runtime, emulator: SlackEmulator, database_url: str
) -> None:
    emulator.add_user("U1", name="alice")
    requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    blank = requests.view_submission(View.TICKET.value, form_values(title="  "), user_id="U1")
    refused = await emulator.wait_for_ack(await emulator.send_envelope("interactive", blank))
    assert refused["payload"]["response_action"] == "errors"
    assert await _rows(database_url, "SELECT count(*) FROM slack_intake") == [(0,)]

    valid = requests.view_submission(View.TICKET.value, form_values(title="Form socket"))
    # Stored, then run at once within the ack budget: the ack carries the listener's answer.
    saved = await emulator.wait_for_ack(await emulator.send_envelope("interactive", valid))
    assert saved["payload"]["response_action"] == "update"
    assert "#1" in str(saved["payload"]["view"])
    assert await _rows(database_url, "SELECT title FROM ticket") == [("Form socket",)]


async def test_an_event_envelope_is_acked_only_after_it_is_stored(
    socket_docket: rt.Runtime, emulator: SlackEmulator, database_url: str
) -> None:
    requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    event = {
        "type": "message",
        "user": "U1",
        "text": "any news on this?",
        "channel": "CGENERAL",
        "ts": "1700000001.000200",
        "thread_ts": "1700000000.000100",
    }
    payload = envelope_payload(requests.event(event, event_id="EvSocket1"))

    async with _write_locked(database_url, "slack_event"):
        envelope = await emulator.send_envelope("events_api", payload)
        with pytest.raises(TimeoutError):
            await emulator.wait_for_ack(envelope, timeout=0.5)
    ack = await emulator.wait_for_ack(envelope)
    assert ack == {"envelope_id": envelope}
    stored = await _rows(database_url, "SELECT event_id FROM slack_event")
    assert stored == [("EvSocket1",)]

    # Slack's retry of the same event: acknowledged, not stored twice.
    retry = await emulator.send_envelope(
        "events_api", payload, retry_attempt=1, retry_reason="timeout"
    )
    await emulator.wait_for_ack(retry)
    assert await _rows(database_url, "SELECT event_id FROM slack_event") == [("EvSocket1",)]


async def test_a_command_that_cannot_be_stored_is_answered_busy(
    socket_docket: rt.Runtime, emulator: SlackEmulator, database_url: str
) -> None:
    requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    async with _write_locked(database_url, "slack_intake"):
        envelope = await emulator.send_envelope(
            "slash_commands", _quick_create(requests, "Never saved")
        )
        ack = await emulator.wait_for_ack(envelope, timeout=5)
    assert ack["payload"] == {"response_type": "ephemeral", "text": BUSY}


async def test_another_workspace_is_not_acknowledged_and_reads_still_run_through_bolt(
    socket_docket: rt.Runtime, emulator: SlackEmulator, database_url: str
) -> None:
    stranger = SlackRequests(SIGNING_SECRET, team_id="TOTHER")
    envelope = await emulator.send_envelope("slash_commands", _quick_create(stranger, "Not ours"))
    # `/docket help` only reads: Bolt answers it inline, as the stock adapter does.
    ours = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    helped = await emulator.send_envelope(
        "slash_commands", envelope_payload(ours.slash_command("/docket", "help"))
    )
    await emulator.wait_for_ack(helped)
    assert emulator.ack_for(envelope) is None
    assert await _rows(database_url, "SELECT count(*) FROM slack_intake") == [(0,)]


async def test_socket_mode_serves_health_and_alerts_over_http_but_not_slack(
    socket_docket: rt.Runtime,
) -> None:
    """Slack's requests come over the WebSocket only; health checks still answer on the port,
    and a forged request to the Slack route finds nothing there."""
    import aiohttp

    base = f"http://127.0.0.1:{socket_docket.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as health:
            assert health.status == 200
        async with http.post(f"{base}/slack/events", data=b"token=x") as slack:
            assert slack.status in (404, 405)
