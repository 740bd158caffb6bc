"""End to end over real SMTP: smtplib to Docket's receiver, Docket's outbox to a local sink.

Docket runs as `docket serve` does (bot.runtime.start) with the Slack emulator; mail goes in
through the receiver on a loopback port and out through `SmtpSink` as the relay.
"""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from handlers.blocks.conversation import REPLY_BLOCK, REPLY_INPUT
from handlers.ids import Action, View
from models.inbound_store import RECEIVED, stored_raw
from models.reply_text import REPLY_MARKER
from models.tables import (
    Contact,
    Customer,
    EmailMessage,
    EventKind,
    Member,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from models.threading import parse_message_id, parse_reply_address
from tests.conftest import SIGNING_SECRET, make_settings
from tests.harness import DocketHarness, running_docket
from tests.procs import free_port
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import SmtpSink, build_mail

pytestmark = pytest.mark.e2e

SUPPORT = "support@example.com"
AGENT = "UAGENT"


@dataclass
class MailDocket:
    docket: DocketHarness
    sink: SmtpSink
    customer_id: int
    other_customer_id: int

    @property
    def emulator(self) -> SlackEmulator:
        return self.docket.emulator

    @property
    def port(self) -> int:
        port = self.docket.runtime.smtp_port
        assert port is not None
        return port

    async def send(self, raw: bytes, *, sender: str = "alice@acme.test", to: str = SUPPORT) -> Any:
        def go() -> Any:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
                return smtp.sendmail(sender, [to], raw)

        return await asyncio.to_thread(go)

    async def rows(self) -> list[EmailMessage]:
        async with self.docket.services.read() as session:
            stmt = select(EmailMessage).where(EmailMessage.direction == "in")
            return list((await session.exec(stmt.order_by(col(EmailMessage.id)))).all())

    async def settled(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        """Wait until `count` inbound mails are stored and none is waiting any more."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.rows()
            if len(rows) >= count and all(r.status != RECEIVED for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"mail not processed: {[(r.id, r.status) for r in rows]}")
            await asyncio.sleep(0.05)

    async def tickets(self) -> list[Ticket]:
        async with self.docket.services.read() as session:
            return list((await session.exec(select(Ticket).order_by(col(Ticket.id)))).all())

    async def events(self, ticket_id: int) -> list[TicketEvent]:
        async with self.docket.services.read() as session:
            stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
            return list((await session.exec(stmt.order_by(col(TicketEvent.id)))).all())


@asynccontextmanager
async def mail_docket(
    database_url: str, emulator: SlackEmulator, **overrides: Any
) -> AsyncIterator[MailDocket]:
    """Docket with its SMTP receiver on a free loopback port and a sink as the relay."""
    settings = make_settings(
        slack_api_url=emulator.api_url,
        database_url=database_url,
        docket_triage_channel="CTRIAGE",
        docket_admins=["UADMIN"],
        docket_support_address=SUPPORT,
        docket_smtp_port=free_port(),
        **{"docket_smtp_max_bytes": 200_000, "docket_fold_minutes": 1, **overrides},
    )
    emulator.add_user(AGENT, name="agnes", real_name="Agnes Agent", email="agnes@provider.test")
    async with SmtpSink() as sink:
        settings = settings.model_copy(update={"docket_smtp_relay": sink.relay_url})
        async with running_docket(settings, emulator, SIGNING_SECRET) as docket:
            services = docket.services
            async with services.transaction() as session:
                acme = Customer(
                    workspace_id=services.workspace_id, name="Acme", email_domains="acme.test"
                )
                globex = Customer(
                    workspace_id=services.workspace_id, name="Globex", email_domains="globex.test"
                )
                session.add_all([acme, globex])
                await session.flush()
                assert acme.id is not None and globex.id is not None
                session.add(
                    Contact(
                        workspace_id=services.workspace_id,
                        customer_id=acme.id,
                        email="alice@acme.test",
                        name="Alice",
                    )
                )
                session.add(
                    Member(
                        workspace_id=services.workspace_id,
                        slack_user_id=AGENT,
                        name="Agnes Agent",
                        role=Role.AGENT,
                    )
                )
            yield MailDocket(docket, sink, acme.id, globex.id)


@pytest.fixture
async def mail(database_url: str, emulator: SlackEmulator) -> AsyncIterator[MailDocket]:
    async with mail_docket(database_url, emulator) as running:
        yield running


def _posted(channel: str, text: str | None = None) -> Callable[[Any], bool]:
    def match(call: Any) -> bool:
        if call.method != "chat.postMessage" or call.args.get("channel") != channel:
            return False
        return text is None or text in str(call.args.get("text", "")) + str(
            call.args.get("blocks", "")
        )

    return match


async def test_mail_conversation_round_trip(mail: MailDocket) -> None:
    docket, emulator = mail.docket, mail.emulator
    # 1. A known contact writes: a ticket opens and its card appears in triage.
    first = build_mail(
        sender="Alice <alice@acme.test>",
        subject="Printer on fire",
        body="The printer on floor 2 is on fire.",
        message_id="<first@acme.test>",
    )
    assert await mail.send(first) == {}
    [row] = await mail.settled(1)
    [ticket] = await mail.tickets()
    assert row.ticket_id == ticket.id and ticket.customer_id == mail.customer_id
    await emulator.wait_for(_posted("CTRIAGE", "Printer on fire"))
    await emulator.wait_for(lambda c: c.method == "chat.postMessage" and c.ok)
    assert ticket.id is not None

    # 2. The agent takes it, then answers from the card's "Reply to customer".
    card_call = next(c for c in emulator.calls_to("chat.postMessage") if c.ok)
    await docket.interact(
        docket.requests.block_actions(
            Action.ASSIGN_TO_ME,
            str(ticket.id),
            user_id=AGENT,
            response_url=emulator.response_url("assign"),
        )
    )
    click = docket.requests.block_actions(
        Action.REPLY,
        str(ticket.id),
        user_id=AGENT,
        message={**card_call.response["message"], "channel": "CTRIAGE"}
        if card_call.response
        else None,
        channel_id="CTRIAGE",
        response_url=emulator.response_url("reply"),
    )
    reply = await docket.interact(click)
    assert reply.status == 200
    opened = await emulator.wait_for(lambda c: c.method == "views.open")
    view = opened.args["view"]
    assert view["callback_id"] == View.REPLY
    assert "The printer on floor 2 is on fire." in str(view["blocks"])
    submit = docket.requests.view_submission(
        View.REPLY,
        {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": "Unplug it, please."}}},
        view=opened.response["view"] if opened.response else view,
        user_id=AGENT,
    )
    answer = await docket.interact(submit)
    assert answer.status == 200 and not answer.body  # the modal closes

    sent = await mail.sink.wait_for(lambda m: "alice@acme.test" in m.rcpt_tos)
    assert sent.mail_from == SUPPORT
    secret = docket.services.settings.mail_secret()
    ref = parse_message_id(sent.header("Message-ID"), secret=secret)
    assert ref is not None and ref.ticket_number == ticket.number
    assert sent.header("In-Reply-To") == "<first@acme.test>"
    assert "<first@acme.test>" in (sent.header("References") or "")
    assert sent.header("Subject") == f"[#{ticket.number}] Printer on fire"
    reply_to = parse_reply_address(
        sent.message["Reply-To"].addresses[0].addr_spec, secret=secret, support_address=SUPPORT
    )
    assert reply_to is not None and reply_to.ticket_number == ticket.number
    assert "Unplug it, please." in sent.text
    # The reply shows in the card's thread and the ticket now waits on the customer.
    await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args.get("thread_ts") is not None
            and "Unplug it" in str(c.args.get("text"))
        )
    )
    [ticket] = await mail.tickets()
    assert ticket.status == TicketStatus.WAITING

    # 3. The customer answers our mail: it lands on the ticket, new text only, and the
    #    assignee gets a DM.
    emulator.clear()
    answer_mail = build_mail(
        sender="alice@acme.test",
        subject=f"Re: {sent.header('Subject')}",
        body=(
            f"Done, it stopped smoking.\n\nOn Mon, Agnes wrote:\n> {REPLY_MARKER}\n"
            "> Unplug it, please."
        ),
        message_id="<second@acme.test>",
        in_reply_to=sent.header("Message-ID"),
        references=f"<first@acme.test> {sent.header('Message-ID')}",
    )
    await mail.send(answer_mail)
    rows = await mail.settled(2)
    assert rows[-1].ticket_id == ticket.id and rows[-1].status == "processed"
    events = await mail.events(ticket.id or 0)
    customer_reply = [e for e in events if e.kind == EventKind.CUSTOMER_REPLY][-1]
    assert customer_reply.body == "Done, it stopped smoking."
    dm = await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and str(c.args.get("channel", "")).startswith(("D", AGENT))
        )
    )
    assert "Done, it stopped smoking." in str(dm.args)
    assert len(await mail.tickets()) == 1
    [ticket] = await mail.tickets()
    assert ticket.status == TicketStatus.OPEN


async def test_stranger_with_another_customers_tag_does_not_attach(mail: MailDocket) -> None:
    await mail.send(build_mail(sender="alice@acme.test", subject="VPN down"))
    await mail.settled(1)
    [acme_ticket] = await mail.tickets()
    spoof = build_mail(
        sender="mallory@evil.test",
        subject=f"Re: [#{acme_ticket.number}] VPN down",
        body="Please send me the VPN password.",
    )
    await mail.send(spoof, sender="mallory@evil.test")
    rows = await mail.settled(2)
    assert rows[-1].ticket_id != acme_ticket.id
    assert "subject tag" in (rows[-1].outcome or "")
    assert [e.kind for e in await mail.events(acme_ticket.id or 0)] == [EventKind.CREATED]
    stranger_ticket = (await mail.tickets())[-1]
    assert stranger_ticket.verified is False and stranger_ticket.customer_id is None


async def test_auto_reply_and_bounce_open_nothing_and_dm_nobody(mail: MailDocket) -> None:
    out_of_office = build_mail(
        sender="alice@acme.test",
        subject="Out of Office: VPN down",
        body="I am away until Monday.",
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
    )
    bounce = (
        b"From: MAILER-DAEMON@mx.acme.test\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n--b--\r\n"
    )
    await mail.send(out_of_office)
    await mail.send(bounce, sender="<>")
    rows = await mail.settled(2)
    assert [r.status for r in rows] == ["ignored", "ignored"]
    assert await mail.tickets() == []
    await asyncio.sleep(0.3)
    assert not [c for c in mail.emulator.calls if c.method == "chat.postMessage"]


async def test_smtp_refuses_strangers_and_oversized_mail(mail: MailDocket) -> None:
    def talk() -> tuple[Any, ...]:
        with smtplib.SMTP("127.0.0.1", mail.port, timeout=10) as smtp:
            smtp.ehlo()
            size = smtp.esmtp_features.get("size")
            smtp.mail("alice@acme.test")
            other = smtp.rcpt("postmaster@example.com")
            foreign = smtp.rcpt("support@other.test")
            plus = smtp.rcpt("support+anything@example.com")
            smtp.rset()
            try:
                smtp.sendmail(
                    "alice@acme.test", [SUPPORT], b"Subject: big\r\n\r\n" + b"x" * 300_000
                )
                big: Any = None
            except smtplib.SMTPException as exc:
                big = exc
            return size, other, foreign, plus, big

    size, other, foreign, plus, big = await asyncio.to_thread(talk)
    assert size == "200000"
    assert other[0] == 550 and b"5.1.1" in other[1]
    assert foreign[0] == 550
    assert plus[0] == 250
    assert isinstance(big, smtplib.SMTPSenderRefused | smtplib.SMTPDataError)
    assert big.smtp_code == 552
    assert await mail.rows() == []


async def test_data_is_spooled_unstuffed_and_refused_as_aiosmtpd_does(
    database_url: str, emulator: SlackEmulator
) -> None:
    """DATA goes to a spool as it arrives: dot-stuffed lines come back as sent, a spool past
    its in-memory part (256 KB) too; a too-long line gets 500 and too much data 552 after it is
    read, and the session goes on; a connection lost mid-DATA stores nothing."""

    def mail(subject: str, body: bytes) -> bytes:
        head = f"From: alice@acme.test\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\r\n"
        return head.encode() + body

    dotted = b"".join(b".%05d\r\n..\r\n.\r\n" % i for i in range(40_000))  # about 600 KB
    sent = [
        mail("dots", dotted + b"end\r\n"),
        mail("after a long line", b"short\r\n"),
        mail("after too much", b"short\r\n"),
    ]
    async with mail_docket(database_url, emulator, docket_smtp_max_bytes=1_000_000) as running:

        def talk() -> list[int]:
            codes = []
            with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as smtp:
                smtp.ehlo()
                for raw in (sent[0], mail("long", b"y" * 70_000 + b"\r\n"), sent[1]):
                    smtp.mail("alice@acme.test")
                    smtp.rcpt(SUPPORT)
                    codes.append(smtp.data(raw)[0])
                smtp.mail("alice@acme.test")  # no SIZE: the receiver finds out while reading
                smtp.rcpt(SUPPORT)
                codes.append(smtp.data(mail("too much", b"z" * 78 + b"\r\n") * 13_000)[0])
                smtp.mail("alice@acme.test")
                smtp.rcpt(SUPPORT)
                codes.append(smtp.data(sent[2])[0])
            with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
                for line in (
                    b"EHLO x",
                    b"MAIL FROM:<a@acme.test>",
                    f"RCPT TO:<{SUPPORT}>",
                    b"DATA",
                ):
                    sock.sendall((line if isinstance(line, bytes) else line.encode()) + b"\r\n")
                sock.sendall(mail("cut off", b"half a message\r\n"))
                time.sleep(0.3)
            return codes

        codes = await asyncio.to_thread(talk)
        await asyncio.sleep(0.5)
        rows = await running.rows()
        stored = []
        async with running.docket.services.read() as session:
            for row in rows:
                assert row.id is not None
                stored.append(
                    await stored_raw(
                        session=session, workspace_id=row.workspace_id, email_id=row.id
                    )
                )
    assert codes == [250, 500, 250, 552, 250]
    assert stored == sent


async def test_a_stored_mail_survives_a_processing_failure(
    mail: MailDocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs.mail as worker

    calls = 0

    async def broken(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(worker, "process_mail", broken)
    await mail.send(build_mail(sender="alice@acme.test"))
    deadline = time.monotonic() + 10
    while calls == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    [row] = await mail.rows()
    assert row.status == RECEIVED and "database hiccup" in (row.outcome or "")
    async with mail.docket.services.read() as session:
        raw = await stored_raw(session=session, workspace_id=row.workspace_id, email_id=row.id)
    assert row.attempts == 1 and raw is not None and raw.startswith(b"From:")
    assert await mail.tickets() == []


async def test_storage_failure_asks_the_sender_to_retry(
    mail: MailDocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.mail as receiver

    async def broken(**kwargs: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(receiver, "store_received", broken)
    with pytest.raises(smtplib.SMTPDataError) as failed:
        await mail.send(build_mail())
    assert failed.value.smtp_code == 451


async def test_ticket_reply_command_sends_at_once(mail: MailDocket) -> None:
    await mail.send(build_mail(sender="alice@acme.test", message_id="<q@acme.test>"))
    await mail.settled(1)
    [ticket] = await mail.tickets()
    reply = await mail.docket.command(
        "/ticket", f"reply {ticket.number} Try turning it off and on again.", user_id=AGENT
    )
    assert reply.status == 200
    sent = await mail.sink.wait_for()
    assert sent.header("In-Reply-To") == "<q@acme.test>"
    assert "Try turning it off and on again." in sent.text
    events = await mail.events(ticket.id or 0)
    assert [e.kind for e in events if e.kind == EventKind.AGENT_REPLY] == [EventKind.AGENT_REPLY]


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[str, str]:
    """A throw-away self-signed certificate and key for STARTTLS."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*command, "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


async def test_starttls_when_a_certificate_is_set(
    database_url: str, emulator: SlackEmulator, tls_files: tuple[str, str]
) -> None:
    cert, key = tls_files
    async with mail_docket(
        database_url, emulator, docket_smtp_tls_cert=cert, docket_smtp_tls_key=key
    ) as running:

        def talk() -> bool:
            context = ssl.create_default_context(cafile=cert)
            context.check_hostname = False
            with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as smtp:
                smtp.ehlo()
                offered = smtp.has_extn("starttls")
                smtp.starttls(context=context)
                smtp.ehlo()
                smtp.sendmail("alice@acme.test", [SUPPORT], build_mail(subject="over TLS"))
            return offered

        assert await asyncio.to_thread(talk)
        [row] = await running.settled(1)
        assert row.subject == "over TLS" and row.status == "processed"
