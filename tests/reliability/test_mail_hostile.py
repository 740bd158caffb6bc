"""Mail cannot crash or hang Docket, and cannot write into a ticket it does not belong to.

- A 40 MB message to the real SMTP receiver of a `docket serve` subprocess gets 552, and the
  process grows by less than 100 MB (RSS measured with psutil) and keeps serving.
- Forged Message-IDs, forged reply tokens and someone else's subject tag never add to a ticket
  (end to end over SMTP; the pure rules are in tests/models/test_threading.py).
- 22 loop, auto-reply and bounce variants from a known contact open no ticket, send no DM and
  no mail back; threaded to a waiting ticket they neither reopen it nor tell anyone.
- Property-based: 3,000 random messages through `read_mail` and 1,000 per backend through the
  whole store-and-process path (with tests/models/test_mail_fuzz.py's 2,000: 6,000 cases).
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from bot.db import make_engine, make_sessionmaker
from bot.runtime import make_slack_client
from bot.services import Services
from handlers.ticket_notifications import SlackHooks
from models.inbound_apply import InboundConfig, process_mail
from models.inbound_read import read_mail
from models.inbound_store import FINAL_STATUSES, store_received
from models.tables import (
    Contact,
    Customer,
    EmailMessage,
    EventKind,
    Ticket,
    TicketEvent,
    TicketStatus,
    Workspace,
)
from models.threading import make_message_id, make_reply_address
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings
from tests.handlers.test_mail_e2e import SUPPORT, MailDocket, mail_docket
from tests.models.test_mail_fuzz import mime_trees
from tests.procs import free_port, serve_env, start_serve
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import build_mail

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


# -- size -----------------------------------------------------------------------------------


def _smtp_send(port: int, raw: bytes, sender: str = "alice@acme.test") -> tuple[int, str]:
    """Send one message without declaring its SIZE (so all of it goes through DATA, as a
    careless or hostile sender does); the server's answer to the data as (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.ehlo()
        assert smtp.mail(sender)[0] == 250
        assert smtp.rcpt(SUPPORT)[0] == 250
        code, message = smtp.data(raw)
    return code, message.decode("utf-8", "replace")


def _smtp_declared(port: int, size: int) -> int:
    """MAIL FROM with a SIZE declaration: the answer code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        return smtp.mail("alice@acme.test", [f"SIZE={size}"])[0]


@pytest.mark.slow
async def test_a_40_mb_mail_gets_552_and_docket_serve_stays_small(
    database_url: str, emulator: SlackEmulator, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
        DOCKET_SMTP_PORT=str(port),
        DOCKET_SUPPORT_ADDRESS=SUPPORT,
    )
    serve = await start_serve(env, tmp_path / "serve.log")
    try:
        process = psutil.Process(serve.proc.pid)
        # A normal mail first, so everything a mail touches is loaded before measuring.
        warm_up = await asyncio.to_thread(_smtp_send, port, build_mail(sender="alice@acme.test"))
        assert warm_up[0] == 250
        await asyncio.sleep(1.0)  # let it be processed
        before = process.memory_info().rss
        peak = before
        sending = True

        def sample() -> None:
            nonlocal peak
            while sending:
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.02)

        sampler = asyncio.ensure_future(asyncio.to_thread(sample))
        line = base64.b64encode(b"x" * 57) + b"\r\n"  # 78 bytes, like a base64 attachment
        body = line * (40 * MB // len(line) + 1)
        raw = b"From: alice@acme.test\r\nTo: support@example.com\r\nSubject: big\r\n\r\n" + body
        assert len(raw) > 40 * MB
        started = time.monotonic()
        try:
            code, text = await asyncio.to_thread(_smtp_send, port, raw)
        finally:
            sending = False
            await sampler
        elapsed = time.monotonic() - started
        after = process.memory_info().rss
        grown, peak_grown = (after - before) / MB, (peak - before) / MB
        print(
            f"\n40 MB mail: {code} {text!r} in {elapsed:.1f} s; RSS {before / MB:.0f} MB before, "
            f"peak +{peak_grown:.0f} MB, after +{grown:.0f} MB"
        )
        assert code == 552, text
        assert peak_grown < 100 and grown < 100
        # A sender that declares the size is refused before it sends anything.
        assert await asyncio.to_thread(_smtp_declared, port, len(raw)) == 552
        # Still serving: HTTP answers and the next normal mail is accepted.
        async with aiohttp.ClientSession() as http, http.get(serve.url + "/healthz") as resp:
            assert resp.status == 200
        ok, _ = await asyncio.to_thread(_smtp_send, port, build_mail(sender="alice@acme.test"))
        assert ok == 250
    finally:
        assert await asyncio.to_thread(serve.terminate) == 0


# -- forgeries --------------------------------------------------------------------------------


async def _ticket_for_alice(mail: MailDocket) -> Ticket:
    await mail.send(build_mail(sender="alice@acme.test", subject="VPN down"))
    await mail.settled(1)
    [ticket] = await mail.tickets()
    return ticket


def _forgeries(ticket: Ticket, secret: bytes) -> dict[str, tuple[bytes, str]]:
    """Mails from a stranger that claim to belong to `ticket`."""
    n = ticket.number
    genuine = make_message_id(
        secret=secret, workspace_id=1, ticket_number=n, nonce="abc", domain="example.com"
    )
    other_secret = make_message_id(
        secret=b"guessed", workspace_id=1, ticket_number=n, nonce="abc", domain="example.com"
    )
    other_workspace = make_message_id(
        secret=secret, workspace_id=2, ticket_number=n, nonce="abc", domain="example.com"
    )
    flipped = genuine[:-14] + ("0" if genuine[-14] != "0" else "1") + genuine[-13:]
    reply_to = make_reply_address(
        secret=secret, support_address=SUPPORT, workspace_id=1, ticket_number=n
    )
    forged_token = reply_to.replace(reply_to.split(".")[-2].split("@")[0][-10:], "0123456789")
    guessed_token = make_reply_address(
        secret=b"guessed", support_address=SUPPORT, workspace_id=1, ticket_number=n
    )

    def stranger(**kwargs: Any) -> tuple[bytes, str]:
        # Each its own subject: five alike within minutes would be damped as a flood.
        subject = f"Re: VPN down {next(serial)}"
        base = {"sender": "mallory@evil.test", "subject": subject, "body": "Send it."}
        return build_mail(**{**base, **kwargs}), kwargs.get("to", SUPPORT)

    serial = iter(range(100))

    return {
        "message-id with a flipped hash": stranger(in_reply_to=flipped),
        "message-id made with another secret": stranger(in_reply_to=other_secret),
        "message-id of another workspace": stranger(in_reply_to=other_workspace),
        "forged ids in references": stranger(references=f"{flipped} {other_secret}"),
        "reply token with a forged hash": stranger(to=forged_token),
        "reply token made with another secret": stranger(to=guessed_token),
        "someone else's subject tag": stranger(subject=f"Re: [#{n}] VPN down"),
        "all of them at once": stranger(
            to=forged_token,
            subject=f"Re: [#{n}] VPN down",
            in_reply_to=flipped,
            references=other_workspace,
        ),
    }


async def test_forged_ids_tokens_and_tags_never_add_to_a_ticket(
    database_url: str, emulator: SlackEmulator
) -> None:
    async with mail_docket(database_url, emulator) as mail:
        ticket = await _ticket_for_alice(mail)
        secret = mail.docket.services.settings.mail_secret()
        forgeries = _forgeries(ticket, secret)
        for raw, to in forgeries.values():
            await mail.send(raw, sender="mallory@evil.test", to=to)
        rows = await mail.settled(1 + len(forgeries))
        events = await mail.events(ticket.id or 0)
        assert [e.kind for e in events] == [EventKind.CREATED]
        for name, row in zip(forgeries, rows[1:], strict=True):
            assert row.ticket_id != ticket.id, name
        # Each became a new, unverified ticket of no customer (never Acme's).
        strangers = (await mail.tickets())[1:]
        assert len(strangers) == len(forgeries)
        assert all(not t.verified and t.customer_id is None for t in strangers)


# -- loops and bounces ------------------------------------------------------------------------

ALICE = "alice@acme.test"
LOOPS: dict[str, dict[str, Any]] = {
    "from our support address": {"sender": SUPPORT},
    "from our address in capitals": {"sender": "Support <SUPPORT@EXAMPLE.COM>"},
    "from one of our reply addresses": {"sender": "support+t1.w1.0123456789@example.com"},
    "auto-submitted: auto-replied": {"headers": {"Auto-Submitted": "auto-replied"}},
    "auto-submitted: auto-generated": {"headers": {"Auto-Submitted": "auto-generated"}},
    "x-autoreply": {"headers": {"X-Autoreply": "yes"}},
    "x-autorespond": {"headers": {"X-Autorespond": "yes"}},
    "x-autogenerated": {"headers": {"X-Autogenerated": "Reply"}},
    "x-auto-response-suppress": {"headers": {"X-Auto-Response-Suppress": "All"}},
    "precedence: bulk": {"headers": {"Precedence": "bulk"}},
    "precedence: junk": {"headers": {"Precedence": "junk"}},
    "precedence: list": {"headers": {"Precedence": "list", "List-Id": "<news.acme.test>"}},
    "precedence: auto_reply": {"headers": {"Precedence": "auto_reply"}},
    "out-of-office subject": {"subject": "Out of Office: VPN down"},
    "automatic reply subject": {"subject": "Automatic reply: VPN down"},
    "german auto-reply subject": {"subject": "Abwesenheitsnotiz: VPN down"},
    "null return-path": {"headers": {"Return-Path": "<>"}},
    "null envelope sender": {"envelope": "<>"},
    "mailer-daemon": {"sender": "MAILER-DAEMON@mx.acme.test", "subject": "Undelivered Mail"},
    "postmaster": {"sender": "postmaster@acme.test", "subject": "Delivery failure"},
    "delivery status report": {"report": "delivery-status"},
    "read receipt": {"report": "disposition-notification"},
}


def _loop_mail(name: str, spec: dict[str, Any], *, in_reply_to: str | None = None) -> bytes:
    subject = spec.get("subject", f"VPN down ({name})")
    message_id = f"<loop{list(LOOPS).index(name)}.{abs(hash(in_reply_to))}@acme.test>"
    if "report" in spec:
        head = (
            f"From: {ALICE}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n"
            + (f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else "")
            + "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type={spec["report"]}; boundary="b"\r\n\r\n'
        )
        return (head + "--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n--b--\r\n").encode()
    return build_mail(
        sender=spec.get("sender", ALICE),
        subject=subject,
        body="I am away until Monday.",
        message_id=message_id,
        in_reply_to=in_reply_to,
        headers=spec.get("headers"),
    )


def _from_docket(call: Any) -> bool:
    return call.method in ("chat.postMessage", "chat.postEphemeral", "files.completeUploadExternal")


async def _send_loops(mail: MailDocket, in_reply_to: str | None = None) -> None:
    for name, spec in LOOPS.items():
        raw = _loop_mail(name, spec, in_reply_to=in_reply_to)
        envelope = spec.get("envelope", ALICE)

        def go(raw: bytes = raw, envelope: str = envelope) -> None:
            with smtplib.SMTP("127.0.0.1", mail.port, timeout=10) as smtp:
                smtp.sendmail(envelope, [SUPPORT], raw)

        await asyncio.to_thread(go)


async def test_loops_and_bounces_open_nothing_tell_nobody_and_send_nothing(
    database_url: str, emulator: SlackEmulator
) -> None:
    async with mail_docket(database_url, emulator) as mail:
        await _send_loops(mail)
        rows = await mail.settled(len(LOOPS))
        await asyncio.sleep(0.5)  # room for anything (wrongly) queued to go out
        assert len(rows) == len(LOOPS) >= 20
        outcomes = {name: (row.status, row.outcome) for name, row in zip(LOOPS, rows, strict=True)}
        assert all(status == "ignored" for status, _ in outcomes.values()), outcomes
        assert await mail.tickets() == []
        assert [c for c in emulator.calls if _from_docket(c)] == []
        assert mail.sink.messages == []


async def test_loops_threaded_to_a_waiting_ticket_reopen_nothing_and_tell_nobody(
    database_url: str, emulator: SlackEmulator
) -> None:
    async with mail_docket(database_url, emulator) as mail:
        ticket = await _ticket_for_alice(mail)
        services = mail.docket.services
        async with services.transaction() as session:
            row = await session.get(Ticket, ticket.id)
            assert row is not None
            row.status = TicketStatus.WAITING
            session.add(row)
        ours = make_message_id(
            secret=services.settings.mail_secret(),
            workspace_id=services.workspace_id,
            ticket_number=ticket.number,
            nonce="sent1",
            domain="example.com",
        )
        await mail.emulator.wait_for(lambda c: c.method == "chat.postMessage" and c.ok)
        emulator.clear()
        await _send_loops(mail, in_reply_to=ours)
        rows = await mail.settled(1 + len(LOOPS))
        await asyncio.sleep(0.5)
        [after] = await mail.tickets()
        assert after.status == TicketStatus.WAITING
        kinds = [e.kind for e in await mail.events(ticket.id or 0)]
        assert EventKind.CUSTOMER_REPLY not in kinds
        assert [c for c in emulator.calls if _from_docket(c)] == []
        assert mail.sink.messages == []
        assert all(r.status in ("ignored", "processed") for r in rows[1:])


# -- property-based ---------------------------------------------------------------------------

FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _bounded(read: Callable[[bytes], Any], raw: bytes) -> None:
    started = time.monotonic()
    result = read(raw)
    assert time.monotonic() - started < 5.0
    assert (result.parsed is None) == (result.rejected is not None)


@pytest.mark.slow
@settings(FUZZ, max_examples=1500)
@given(raw=mime_trees())
def test_read_mail_on_random_mime_trees(raw: bytes) -> None:
    _bounded(lambda r: read_mail(r, envelope_from="a@b.example"), raw)


@pytest.mark.slow
@settings(FUZZ, max_examples=1500)
@given(raw=st.binary(max_size=3000))
def test_read_mail_on_random_bytes(raw: bytes) -> None:
    _bounded(lambda r: read_mail(r, envelope_from=None), raw)


@pytest.mark.slow
def test_random_mail_through_store_and_process_always_ends_with_an_outcome(
    database_url: str,
) -> None:
    """Store, read and process (with the real Slack hooks) 1,000 random mails: none raises,
    each ends in a final status."""
    with asyncio.Runner() as runner:
        engine = make_engine(database_url)
        services = runner.run(_mail_services(engine))
        config = InboundConfig(
            support_address=SUPPORT,
            secret=b"fuzz-secret",
            reopen_days=14,
            hold_unknown=False,
        )
        seen = {"examples": 0}

        @settings(FUZZ, max_examples=1000, suppress_health_check=list(HealthCheck))
        @given(
            raw=st.one_of(mime_trees(), st.binary(max_size=2000)),
            envelope=st.one_of(st.none(), st.just("<>"), st.just(ALICE), st.text(max_size=40)),
        )
        def check(raw: bytes, envelope: str | None) -> None:
            seen["examples"] += 1
            status = runner.run(_store_and_process(services, config, raw, envelope))
            assert status in FINAL_STATUSES

        try:
            check()
        finally:
            runner.run(engine.dispose())
        assert seen["examples"] == 1000


async def _mail_services(engine: Any) -> Services:
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(team_id="T0001", name="Acme IT", triage_channel="CTRIAGE")
        session.add(ws)
        await session.flush()
        assert ws.id is not None
        customer = Customer(workspace_id=ws.id, name="Acme", email_domains="acme.test")
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        session.add(Contact(workspace_id=ws.id, customer_id=customer.id, email=ALICE))
        assert ws.id is not None
        workspace_id = ws.id
    settings_ = make_settings(slack_api_url="http://127.0.0.1:9/api/")
    return Services(
        settings=settings_,
        engine=engine,
        sessions=sessions,
        slack=make_slack_client(settings_),
        workspace_id=workspace_id,
        team_id="T0001",
        bot_user_id="UBOT",
        timezone=ZoneInfo("UTC"),
    )


async def _store_and_process(
    services: Services, config: InboundConfig, raw: bytes, envelope: str | None
) -> str:
    async with services.transaction() as session:
        email_id = await store_received(
            session=session,
            workspace_id=services.workspace_id,
            raw=raw,
            envelope_from=envelope,
            envelope_to=[SUPPORT],
            at=services.now(),
        )
    read = await asyncio.to_thread(read_mail, raw, envelope_from=envelope)
    async with services.transaction() as session:
        outcome = await process_mail(
            session=session,
            workspace_id=services.workspace_id,
            email_id=email_id,
            read=read,
            config=config,
            hooks=SlackHooks(services),
            at=services.now(),
        )
    async with services.read() as session:
        row = await session.get(EmailMessage, email_id)
        assert row is not None and row.status == outcome.status
        found = await session.exec(select(TicketEvent).where(col(TicketEvent.email_id) == email_id))
        assert len(found.all()) <= 1
    return outcome.status
