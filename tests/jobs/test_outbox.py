"""The outbox: claiming and leases, and the worker against the Slack emulator over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import itertools
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_engine, make_sessionmaker
from bot.outbox_cli import _run as run_outbox_cli
from bot.outbox_cli import command_outbox, configure
from bot.services import Services
from handlers.blocks.outbox import build_outbox_list
from handlers.outbox_admin import handle_outbox_command, handle_outbox_retry, parse_retry
from jobs.outbox import (
    Dead,
    Retry,
    classify_slack_error,
    classify_smtp_error,
    parse_relay,
)
from jobs.ratelimit import RateLimiter
from models.outbox import (
    EMAIL,
    SLACK,
    UPLOAD,
    EmailSend,
    FileUpload,
    claim_due,
    enqueue,
    mark_delivered,
    next_due_at,
    payload_json,
    slack_call,
)
from models.tables import OutboxMessage, OutboxStatus, Role, Ticket, Workspace
from tests.conftest import make_settings
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
from tests.slack_emulator import SlackEmulator

# Tests about Slack, mail and the screens rather than the database run on SQLite only; the
# ones about claiming, leases, ordering and recording run on every backend.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
async def svc(services: Services, emulator: SlackEmulator) -> Services:
    """Services talking to the emulator, with one admin named in the settings."""
    return point_at(services, emulator, docket_admins=["UADMIN"])


def ok_posts(emulator: SlackEmulator, channel: str | None = None) -> list[Any]:
    return [
        c
        for c in emulator.calls_to("chat.postMessage")
        if c.ok and (channel is None or c.args.get("channel") == channel)
    ]


# -- claiming (models.outbox) ---------------------------------------------------------------


async def _queue(session: Any, ws: int, key: str, order: str | None) -> int:
    row_id = await enqueue(
        session=session,
        workspace_id=ws,
        kind=SLACK,
        key=key,
        payload=slack_call("chat.postMessage", channel="C1", text=key),
        at=START,
        ordering_key=order,
    )
    assert row_id is not None
    return row_id


async def test_claims_take_heads_of_line_and_leases_keep_others_off(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        a1 = await _queue(session, workspace.id, "a1", "ticket:1")
        await _queue(session, workspace.id, "a2", "ticket:1")
        b1 = await _queue(session, workspace.id, "b1", "ticket:2")
        free = await _queue(session, workspace.id, "free", None)
    async with sessions() as session, session.begin():
        claimed = await claim_due(session=session, workspace_id=workspace.id, now=START, owner="w1")
    assert [r.id for r in claimed] == [a1, b1, free]
    async with sessions() as session, session.begin():
        assert (
            await claim_due(session=session, workspace_id=workspace.id, now=START, owner="w2") == []
        )
        # Nothing is due until the leases end.
        due = await next_due_at(session=session, workspace_id=workspace.id)
        assert due == START + timedelta(seconds=120)
    later = START + timedelta(seconds=121)
    async with sessions() as session, session.begin():
        taken = await claim_due(session=session, workspace_id=workspace.id, now=later, owner="w2")
        assert [r.id for r in taken] == [a1, b1, free]
        # The first worker lost its lease: its late result is not recorded over w2's.
        assert not await mark_delivered(session=session, row_id=a1, owner="w1", at=later, result={})
        assert await mark_delivered(session=session, row_id=a1, owner="w2", at=later, result={})
    async with sessions() as session, session.begin():
        nxt = await claim_due(
            session=session, workspace_id=workspace.id, now=later, owner="w2", exclude=[b1, free]
        )
        assert [r.idempotency_key for r in nxt] == ["a2"]


async def test_enqueue_is_idempotent_on_its_key(engine: AsyncEngine, workspace: Workspace) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        first = await _queue(session, workspace.id, "same", None)
        again = await enqueue(
            session=session,
            workspace_id=workspace.id,
            kind=SLACK,
            key="same",
            payload=slack_call("chat.postMessage"),
            at=START,
        )
    assert first and again is None


async def test_next_due_counts_only_heads_of_line(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await enqueue(
            session=session,
            workspace_id=workspace.id,
            kind=SLACK,
            key="head",
            payload=slack_call("chat.postMessage"),
            at=START,
            ordering_key="ticket:1",
            not_before=START + timedelta(minutes=5),
        )
        # Due earlier, but queued behind "head": it waits for head, not for the clock.
        await enqueue(
            session=session,
            workspace_id=workspace.id,
            kind=SLACK,
            key="behind",
            payload=slack_call("chat.postMessage"),
            at=START,
            ordering_key="ticket:1",
        )
    async with sessions() as session:
        assert await next_due_at(session=session, workspace_id=workspace.id) == START + timedelta(
            minutes=5
        )


# -- the worker, one row at a time -----------------------------------------------------------


async def test_a_queued_message_is_posted_at_once_and_recorded(
    svc: Services, emulator: SlackEmulator
) -> None:
    async with running_worker(svc):
        # Queued after the worker went idle: the commit wakes it (no polling delay).
        await asyncio.sleep(0.05)
        await post(svc, "hello", channel="C1")
        call = await emulator.wait_for(lambda c: c.method == "chat.postMessage", timeout=1.0)
        await wait_until(lambda: all_settled(svc), timeout=1.0)
    assert call.args["text"] == "hello"
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 1
    assert row.result == {"channel": "C1", "ts": call.response["ts"]}  # type: ignore[index]
    assert row.lease_owner is None


async def test_the_card_is_stored_then_updated_and_threaded(
    svc: Services, emulator: SlackEmulator
) -> None:
    async with svc.transaction() as session:
        ticket = await make_ticket(session, svc.workspace_id, 7)
        assert ticket.id is not None
        tid, order = ticket.id, f"ticket:{ticket.id}"
        announce = replace(
            slack_call("chat.postMessage", channel="CTRIAGE", text="card v1"), posts_card_of=tid
        )
        update = replace(slack_call("chat.update", text="card v2"), updates_card_of=tid)
        thread = replace(slack_call("chat.postMessage", text="in thread"), in_thread_of=tid)
        for key, payload in (("announce", announce), ("update", update), ("thread", thread)):
            await enqueue(
                session=session,
                workspace_id=svc.workspace_id,
                kind=SLACK,
                key=key,
                payload=payload,
                at=svc.now(),
                ordering_key=order,
            )
    async with running_worker(svc):
        await wait_until(lambda: all_settled(svc), timeout=3)
    async with svc.read() as session:
        stored = await session.get(Ticket, tid)
    assert stored is not None and stored.card_channel == "CTRIAGE" and stored.card_ts
    (updated,) = emulator.calls_to("chat.update")
    assert updated.args["channel"] == "CTRIAGE" and updated.args["ts"] == stored.card_ts
    in_thread = ok_posts(emulator)[-1]
    assert in_thread.args["thread_ts"] == stored.card_ts
    assert emulator.messages("CTRIAGE")[0]["text"] == "card v2"


@SQLITE_ONLY
async def test_a_thread_post_without_a_card_goes_to_triage_instead(
    svc: Services, emulator: SlackEmulator
) -> None:
    async with svc.transaction() as session:
        ticket = await make_ticket(session, svc.workspace_id, 8)
        payload = replace(
            slack_call("chat.postMessage", text="still told", thread_ts="1.0"),
            in_thread_of=ticket.id,
        )
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=SLACK,
            key="t",
            payload=payload,
            at=svc.now(),
        )
        update = replace(slack_call("chat.update", text="v2"), updates_card_of=ticket.id)
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=SLACK,
            key="u",
            payload=update,
            at=svc.now(),
        )
    async with running_worker(svc):
        await wait_until(lambda: all_settled(svc), timeout=3)
    (call,) = ok_posts(emulator)
    assert call.args["channel"] == "CTRIAGE" and "thread_ts" not in call.args
    # An update of a card that was never posted has nothing to update: skipped, not dead.
    assert not emulator.calls_to("chat.update")
    skipped = next(r for r in await rows(svc) if r.idempotency_key == "u")
    assert skipped.status == OutboxStatus.DELIVERED and "skipped" in (skipped.result or {})


async def test_no_card_and_no_triage_channel_parks_the_row_with_the_reason(
    svc: Services, emulator: SlackEmulator
) -> None:
    async with svc.transaction() as session:
        ws = await session.get(Workspace, svc.workspace_id)
        assert ws is not None
        ws.triage_channel = None
        session.add(ws)
        ticket = await make_ticket(session, svc.workspace_id, 9)
        payload = replace(slack_call("chat.postMessage", text="x"), in_thread_of=ticket.id)
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=SLACK,
            key="lost?",
            payload=payload,
            at=svc.now(),
        )
    async with running_worker(svc):
        await wait_until(lambda: all_settled(svc), timeout=3)
    row = next(r for r in await rows(svc) if r.idempotency_key == "lost?")
    assert row.status == OutboxStatus.DEAD
    assert row.last_error and "no triage channel" in row.last_error


@SQLITE_ONLY
async def test_server_errors_are_retried_with_backoff_until_delivered(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.server_error_next("chat.postMessage", status=503, count=2)
    clock = ScaledTime(speed=200)
    async with running_worker(svc, clock=clock):
        await post(svc, "flaky", channel="C1")
        await wait_until(lambda: all_settled(svc), timeout=5)
    calls = emulator.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [503, 503, 200]
    # Back-off with equal jitter: at least base/2 * 2**n simulated seconds between tries.
    gaps = [(b.at - a.at) * clock.speed for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 3


async def test_a_permanent_error_is_tried_once_and_admins_hear_once(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.missing_channels.add("CGONE")
    async with svc.transaction() as session:
        await make_member(session, svc.workspace_id, "UBOSS", role=Role.ADMIN)
    async with running_worker(svc):
        await post(svc, "into the void", channel="CGONE")
        await wait_until(lambda: all_settled(svc), timeout=3)
        await asyncio.sleep(0.2)  # room for any (wrong) second alert
    to_gone = [c for c in emulator.calls_to("chat.postMessage") if c.args["channel"] == "CGONE"]
    assert len(to_gone) == 1
    dead = [r for r in await rows(svc) if r.status == OutboxStatus.DEAD]
    assert [(r.idempotency_key, r.last_error, r.attempts) for r in dead] == [
        ("into the void", "channel_not_found", 1)
    ]
    alerts = {c.args["channel"]: c.args["text"] for c in ok_posts(emulator)}
    assert set(alerts) == {"UADMIN", "UBOSS"}
    assert all("channel_not_found" in text and "/docket outbox" in text for text in alerts.values())


@SQLITE_ONLY
async def test_an_alert_that_dies_raises_no_alert(svc: Services, emulator: SlackEmulator) -> None:
    emulator.missing_channels.update({"CGONE", "UADMIN"})  # the admin's DM fails too
    async with running_worker(svc):
        await post(svc, "lost", channel="CGONE")
        await wait_until(lambda: all_settled(svc), timeout=3)
        await asyncio.sleep(0.2)
    lost, alert = await rows(svc)
    assert (lost.idempotency_key, lost.status) == ("lost", OutboxStatus.DEAD)
    assert alert.idempotency_key == f"outbox-dead:{lost.id}:UADMIN"
    assert alert.status == OutboxStatus.DEAD and alert.last_error == "channel_not_found"
    assert len(emulator.calls_to("chat.postMessage")) == 2


async def test_transient_failures_give_up_after_the_retry_window(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.server_error_next("chat.postMessage", count=None)
    async with running_worker(svc, clock=ScaledTime(speed=600), retry_hours=0.05):
        await post(svc, "never", channel="C1")
        await wait_until(lambda: count_status(svc, OutboxStatus.DEAD), timeout=5)
    row = next(r for r in await rows(svc) if r.idempotency_key == "never")
    assert row.status == OutboxStatus.DEAD
    assert row.last_error == "gave up after 0.05 h: HTTP 500 from Slack"
    assert row.attempts >= 4


async def test_a_failing_head_holds_its_ticket_but_not_others(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.server_error_next("chat.postMessage", count=1)
    async with running_worker(svc, clock=ScaledTime(speed=100)):
        async with svc.transaction() as session:
            for key, order in (("a1", "ticket:1"), ("a2", "ticket:1"), ("b1", "ticket:2")):
                await enqueue(
                    session=session,
                    workspace_id=svc.workspace_id,
                    kind=SLACK,
                    key=key,
                    payload=slack_call("chat.postMessage", channel="C1", text=key),
                    at=svc.now(),
                    ordering_key=order,
                )
        await wait_until(lambda: all_settled(svc), timeout=5)
    sent = [c.args["text"] for c in ok_posts(emulator)]
    assert sent.index("a1") < sent.index("a2")
    assert sent[0] == "b1"  # not held up by ticket 1's retry


async def test_stopping_hands_back_rows_that_wait_for_the_limiter(
    svc: Services, emulator: SlackEmulator
) -> None:
    limiter = RateLimiter()
    limiter.penalise("chat.postMessage", "C1", 3600)
    async with running_worker(svc, limiter=limiter, lease_seconds=600):
        await post(svc, "waits", channel="C1")
        await wait_until(lambda: _leased(svc), timeout=2)
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.PENDING and row.lease_owner is None
    assert row.attempts == 0 and not emulator.calls


@SQLITE_ONLY
async def test_stopping_lets_a_call_under_way_finish_and_be_recorded(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.delay(0.4)
    async with running_worker(svc):
        await post(svc, "in flight", channel="C1")
        await wait_until(lambda: _leased(svc), timeout=2)
        await asyncio.sleep(0.1)  # the request is at the emulator now
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED  # recorded, so never sent twice
    assert len(emulator.calls_to("chat.postMessage")) == 1


async def _leased(svc: Services) -> bool:
    return any(r.lease_owner for r in await rows(svc))


async def test_leases_are_renewed_while_a_row_waits_so_nobody_else_takes_it(
    svc: Services, emulator: SlackEmulator
) -> None:
    # Lease 12 s, renewed every 4 s; the row waits 30 s for its channel.
    clock = ScaledTime(speed=50)
    limiter = RateLimiter(clock=clock.monotonic)
    limiter.penalise("chat.postMessage", "C1", 30)
    async with running_worker(svc, clock=clock, limiter=limiter, lease_seconds=12):
        await post(svc, "slow", channel="C1")
        await wait_until(lambda: _leased(svc), timeout=2)
        for _ in range(4):
            await asyncio.sleep(0.1)  # 5 simulated seconds each
            async with svc.transaction() as session:
                stolen = await claim_due(
                    session=session, workspace_id=svc.workspace_id, now=clock.now(), owner="thief"
                )
            assert stolen == []
        await wait_until(lambda: all_settled(svc), timeout=3)
    assert len(emulator.calls_to("chat.postMessage")) == 1


@SQLITE_ONLY
async def test_a_file_upload_lands_with_its_comment(svc: Services, emulator: SlackEmulator) -> None:
    payload = FileUpload(
        channel="CMANAGERS",
        filename="week.png",
        content_b64=base64.b64encode(b"\x89PNG fake").decode(),
        initial_comment="Week 23",
    )
    async with svc.transaction() as session:
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=UPLOAD,
            key="weekly",
            payload=payload,
            at=svc.now(),
        )
    async with running_worker(svc):
        await wait_until(lambda: all_settled(svc), timeout=3)
    (upload,) = emulator.files("CMANAGERS")
    assert upload.data == b"\x89PNG fake" and upload.initial_comment == "Week 23"
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED and row.result == {"files": [upload.file_id]}


@SQLITE_ONLY
async def test_an_upload_that_fails_on_the_upload_url_is_retried(
    svc: Services, emulator: SlackEmulator
) -> None:
    emulator.server_error_next("file_upload", status=503)
    clock = ScaledTime(speed=200)
    svc.clock = clock.now
    payload = FileUpload(channel="CMANAGERS", filename="w.png", content_b64="aGk=")
    async with svc.transaction() as session:
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=UPLOAD,
            key="weekly",
            payload=payload,
            at=svc.now(),
        )
    async with running_worker(svc, clock=clock):
        await wait_until(lambda: all_settled(svc), timeout=5)
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 2
    assert [u.data for u in emulator.files("CMANAGERS")] == [b"hi"]


# -- email ---------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or refuses some recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Inbox, int, list[Controller]]]:
    inbox, port = Inbox(), _free_port()
    controllers: list[Controller] = []
    yield inbox, port, controllers
    for controller in controllers:
        await asyncio.to_thread(controller.stop)


RAW = b"From: support@example.com\r\nTo: ann@acme.test\r\nSubject: Re: printer\r\n\r\nFixed.\r\n"


async def _queue_mail(svc: Services, key: str, to: list[str]) -> None:
    payload = EmailSend(
        to=tuple(to),
        sender="support@example.com",
        raw_b64=base64.b64encode(RAW).decode(),
    )
    async with svc.transaction() as session:
        await enqueue(
            session=session,
            workspace_id=svc.workspace_id,
            kind=EMAIL,
            key=key,
            payload=payload,
            at=svc.now(),
        )


@SQLITE_ONLY
async def test_mail_waits_for_a_relay_that_is_down_then_goes(
    svc: Services, emulator: SlackEmulator, relay: tuple[Inbox, int, list[Controller]]
) -> None:
    inbox, port, controllers = relay
    svc.settings = make_settings(docket_smtp_relay=f"smtp://127.0.0.1:{port}")
    async with running_worker(svc, clock=ScaledTime(speed=100)):
        await _queue_mail(svc, "mail-1", ["ann@acme.test"])
        await wait_until(lambda: _attempted(svc), timeout=3)
        (row,) = await rows(svc)
        assert row.status == OutboxStatus.PENDING and "unreachable" in (row.last_error or "")
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        await asyncio.to_thread(controller.start)
        controllers.append(controller)
        await wait_until(lambda: all_settled(svc), timeout=5)
    assert inbox.messages == [("support@example.com", ["ann@acme.test"], RAW)]
    (row,) = await rows(svc)
    assert row.status == OutboxStatus.DELIVERED


async def _attempted(svc: Services) -> bool:
    return any(r.attempts for r in await rows(svc))


@SQLITE_ONLY
async def test_mail_refused_for_good_is_parked_and_admins_told(
    svc: Services, emulator: SlackEmulator, relay: tuple[Inbox, int, list[Controller]]
) -> None:
    inbox, port, controllers = relay
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    controllers.append(controller)
    svc.settings = make_settings(
        docket_smtp_relay=f"smtp://127.0.0.1:{port}",
        slack_api_url=emulator.api_url,
        docket_admins=["UADMIN"],
    )
    async with running_worker(svc):
        await _queue_mail(svc, "mail-2", ["nobody@acme.test"])
        await wait_until(lambda: all_settled(svc), timeout=5)
    mail = next(r for r in await rows(svc) if r.idempotency_key == "mail-2")
    assert mail.status == OutboxStatus.DEAD and "550" in (mail.last_error or "")
    assert [c.args["channel"] for c in ok_posts(emulator)] == ["UADMIN"]
    assert inbox.messages == []


@SQLITE_ONLY
async def test_mail_without_a_relay_is_parked_with_the_setting_to_fix(svc: Services) -> None:
    async with running_worker(svc):
        await _queue_mail(svc, "mail-3", ["ann@acme.test"])
        await wait_until(lambda: all_settled(svc), timeout=3)
    mail = next(r for r in await rows(svc) if r.idempotency_key == "mail-3")
    assert mail.status == OutboxStatus.DEAD and "DOCKET_SMTP_RELAY" in (mail.last_error or "")


def test_relay_urls() -> None:
    assert parse_relay("smtp://mail.local:2525").port == 2525
    secure = parse_relay("smtps://ann%40x:p%3Ass@mail.example.com")
    assert (secure.implicit_tls, secure.port, secure.username, secure.password) == (
        True,
        465,
        "ann@x",
        "p:ss",
    )
    assert parse_relay("smtp+starttls://relay").starttls
    with pytest.raises(ValueError, match="scheme"):
        parse_relay("http://relay")


def test_smtp_errors_4xx_retry_5xx_dead() -> None:
    import smtplib

    assert isinstance(classify_smtp_error(ConnectionRefusedError()), Retry)
    assert isinstance(classify_smtp_error(smtplib.SMTPDataError(451, b"try later")), Retry)
    assert isinstance(classify_smtp_error(smtplib.SMTPDataError(554, b"spam")), Dead)
    refused = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (450, b"busy")})
    assert isinstance(classify_smtp_error(refused), Retry)
    assert isinstance(classify_smtp_error(smtplib.SMTPAuthenticationError(535, b"no")), Dead)


def _slack_error(status: int, body: Any, headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="x",
        req_args={},
        data=body,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("failed", response)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"ok": False, "error": "ratelimited"}, Retry("ratelimited", retry_after=7.0)),
        (500, {}, Retry("HTTP 500 from Slack")),
        (200, {"ok": False, "error": "internal_error"}, Retry("internal_error")),
        (200, {"ok": False, "error": "channel_not_found"}, Dead("channel_not_found")),
        (200, {"ok": False, "error": "invalid_blocks"}, Dead("invalid_blocks")),
        (200, {"ok": False, "error": "account_inactive"}, Dead("account_inactive")),
        (404, "not json", Dead("HTTP 404 from Slack")),
        (200, None, Retry("HTTP 200 from Slack with a body that is not Slack's JSON")),
        (200, {}, Retry("HTTP 200 from Slack with a body that is not Slack's JSON")),
    ],
)
def test_slack_errors_are_classified(status: int, body: Any, expected: Any) -> None:
    assert classify_slack_error(_slack_error(status, body, {"Retry-After": "7"})) == expected


# -- shell and Slack admin views ------------------------------------------------------------


async def _dead_rows(sessions: Any, workspace_id: int, n: int) -> list[int]:
    ids = []
    async with sessions() as session, session.begin():
        for i in range(n):
            row = OutboxMessage(
                workspace_id=workspace_id,
                idempotency_key=f"dead-{i}",
                kind=SLACK,
                payload=payload_json(slack_call("chat.postMessage", channel=f"C{i}", text="x")),
                status=OutboxStatus.DEAD,
                attempts=1,
                last_error="channel_not_found",
                next_attempt_at=START,
                created_at=START,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            ids.append(row.id)
    return ids


def _cli_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


async def test_the_shell_lists_and_retries_dead_rows(
    database_url: str, workspace: Workspace, engine: AsyncEngine
) -> None:
    assert workspace.id is not None
    ids = await _dead_rows(make_sessionmaker(engine), workspace.id, 3)
    settings = make_settings(database_url=database_url)
    out = io.StringIO()
    assert await run_outbox_cli(settings, _cli_args(["list"]), out) == 0
    text = out.getvalue()
    assert "0 pending, 0 delivered, 3 dead." in text
    assert all(f"{i}" in text for i in ids) and "chat.postMessage C1" in text
    out = io.StringIO()
    assert await run_outbox_cli(settings, _cli_args(["retry", str(ids[0])]), out) == 0
    assert "Queued 1 message again." in out.getvalue()
    out = io.StringIO()
    assert await run_outbox_cli(settings, _cli_args(["retry", "99999"]), out) == 1
    out = io.StringIO()
    assert await run_outbox_cli(settings, _cli_args(["retry", "--all"]), out) == 0
    assert "Queued 2 messages again." in out.getvalue()
    async with make_sessionmaker(engine)() as session:
        stmt = sa.select(sa.func.count()).where(sa.column("status") == "pending")
        stmt = stmt.select_from(OutboxMessage.__table__)  # type: ignore[attr-defined]
        assert (await session.execute(stmt)).scalar_one() == 3


def test_the_shell_wants_one_id_or_all() -> None:
    settings = make_settings()
    assert command_outbox(settings, _cli_args(["retry"])) == 2
    assert command_outbox(settings, _cli_args(["retry", "3", "--all"])) == 2


def test_the_shell_reports_an_unmigrated_database(tmp_path: Any) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    assert command_outbox(settings, _cli_args(["list"])) == 2
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    asyncio.run(engine.dispose())


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@SQLITE_ONLY
async def test_only_admins_see_the_outbox(svc: Services) -> None:
    ack, respond = Recorder(), Recorder()
    command = {"text": "outbox", "user_id": "UNOBODY"}
    await handle_outbox_command(ack, command, respond, svc)  # type: ignore[arg-type]
    assert len(ack.calls) == 1
    assert respond.calls == [
        {"text": "Only Docket admins can see and retry the outbox.", "response_type": "ephemeral"}
    ]


async def test_admins_see_dead_rows_and_retry_them_with_the_button(
    svc: Services, emulator: SlackEmulator
) -> None:
    ids = await _dead_rows(svc.sessions, svc.workspace_id, 2)
    ack, respond = Recorder(), Recorder()
    await handle_outbox_command(ack, {"text": "outbox", "user_id": "UADMIN"}, respond, svc)  # type: ignore[arg-type]
    blocks = respond.calls[0]["blocks"]
    buttons = [b["accessory"]["value"] for b in blocks if "accessory" in b]
    assert buttons == [str(ids[1]), str(ids[0])]  # newest first
    assert "channel_not_found" in str(blocks)
    body = {"user": {"id": "UADMIN"}, "actions": [{"value": str(ids[0])}]}
    await handle_outbox_retry(ack, body, respond, svc)  # type: ignore[arg-type]
    assert respond.calls[1]["replace_original"] is True
    assert "Queued 1 message again." in str(respond.calls[1]["blocks"])
    async with running_worker(svc):
        await wait_until(lambda: all_settled(svc), timeout=3)
    assert [c.args["channel"] for c in ok_posts(emulator)] == ["C0"]


def test_the_outbox_list_fits_slacks_limits() -> None:
    from tests.slack_emulator import validate_blocks

    many = [
        OutboxMessage(
            id=i,
            workspace_id=1,
            idempotency_key=str(i),
            kind=SLACK,
            payload=payload_json(slack_call("chat.postMessage", channel="C<@U1>", text="x")),
            last_error="x" * 3000,
            created_at=START,
            next_attempt_at=START,
        )
        for i in range(60)
    ]
    blocks = build_outbox_list(many, {"pending": 1, "delivered": 2, "dead": 60})
    assert validate_blocks(blocks) == []
    assert "<@U1>" not in str(blocks)
    assert validate_blocks(build_outbox_list([], {})) == []
    assert parse_retry(["retry", "#12"]) == 12 and parse_retry(["retry", "ALL"]) == "all"
    assert parse_retry(["retry"]) is None and parse_retry(["frob", "1"]) is None


@pytest.mark.e2e
@SQLITE_ONLY
async def test_docket_outbox_through_the_real_server(docket: Any) -> None:
    services = docket.services
    ids = await _dead_rows(services.sessions, services.workspace_id, 1)
    reply = await docket.command("/docket", "outbox", user_id="UADMIN")
    assert reply.status == 200
    call = await docket.emulator.wait_for(lambda c: c.method == "response_url", timeout=3)
    message_blocks = call.args["blocks"]
    assert any(b.get("accessory", {}).get("value") == str(ids[0]) for b in message_blocks)
    payload = docket.requests.block_actions(
        "outbox_retry",
        str(ids[0]),
        user_id="UADMIN",
        message={"ts": "1.0", "blocks": message_blocks, "channel": "CADMIN"},
        channel_id="CADMIN",
        response_url=docket.emulator.response_url("retry"),
    )
    assert (await docket.interact(payload)).status == 200
    await docket.emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("channel") == "C0", timeout=5
    )
