"""Inbound mail persistence: store first, then one transaction per mail (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import make_sessionmaker
from models.inbound_apply import InboundConfig, process_mail, record_customer_reply
from models.inbound_read import ReadMail, read_mail
from models.inbound_store import (
    CHUNK_BYTES,
    HELD,
    IGNORED,
    PROCESSED,
    QUARANTINED,
    RECEIVED,
    claim_received,
    list_mail,
    record_failure,
    release_mail,
    store_received,
    stored_raw,
)
from models.replies import MailSettings, queue_email_reply
from models.tables import (
    Contact,
    Customer,
    EmailChunk,
    EmailMessage,
    EventKind,
    Member,
    Ticket,
    TicketEvent,
    TicketStatus,
    Workspace,
)
from models.threading import DecisionKind, make_message_id, make_reply_address
from models.tickets import TicketChange, TicketCreate, create_ticket
from tests.smtp_sink import build_mail

AT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
SUPPORT = "support@example.com"
SECRET = b"test-mail-secret"
CONFIG = InboundConfig(
    support_address=SUPPORT,
    secret=SECRET,
    reopen_days=14,
    hold_unknown=False,
    trusted_authserv_id="mx.docket.test",
)


def passed(domain: str) -> dict[str, str]:
    """The trusted server's verdict that `domain` passed DMARC."""
    return {"Authentication-Results": f"mx.docket.test; dmarc=pass header.from={domain}"}


@dataclass
class Hooks:
    """Records what processing asked the Slack side to do."""

    opened: list[int] = field(default_factory=list)
    changed: list[tuple[int, str]] = field(default_factory=list)
    replies: list[tuple[int, str]] = field(default_factory=list)
    notices: list[int] = field(default_factory=list)

    async def ticket_opened(self, *, session: AsyncSession, ticket: Ticket, at: datetime) -> None:
        assert ticket.id is not None
        self.opened.append(ticket.number)

    async def ticket_changed(
        self, *, session: AsyncSession, change: TicketChange, at: datetime
    ) -> None:
        self.changed.append((change.ticket.number, change.ticket.status))

    async def customer_reply(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, text: str, at: datetime
    ) -> None:
        assert event.id is not None
        self.replies.append((ticket.number, text))

    async def mail_notice(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, at: datetime
    ) -> None:
        self.notices.append(ticket.number)

    @property
    def anything(self) -> bool:
        return bool(self.opened or self.changed or self.replies or self.notices)


@dataclass
class World:
    engine: AsyncEngine
    ws: int
    acme: int
    globex: int
    alice: int  # contact at Acme
    agent: Member

    def sessions(self) -> Any:
        return make_sessionmaker(self.engine)


@pytest.fixture
async def world(engine: AsyncEngine, workspace: Workspace) -> World:
    assert workspace.id is not None
    async with make_sessionmaker(engine)() as session, session.begin():
        acme = Customer(workspace_id=workspace.id, name="Acme", email_domains="acme.test")
        globex = Customer(workspace_id=workspace.id, name="Globex", email_domains="globex.test")
        session.add_all([acme, globex])
        await session.flush()
        assert acme.id is not None and globex.id is not None
        alice = Contact(
            workspace_id=workspace.id, customer_id=acme.id, email="alice@acme.test", name="Alice"
        )
        agent = Member(workspace_id=workspace.id, slack_user_id="UAGENT", name="Agnes")
        session.add_all([alice, agent])
        await session.flush()
        assert alice.id is not None
        return World(engine, workspace.id, acme.id, globex.id, alice.id, agent)


async def _receive(w: World, raw: bytes, *, to: str = SUPPORT, at: datetime = AT) -> int:
    async with w.sessions()() as session, session.begin():
        return await store_received(
            session=session,
            workspace_id=w.ws,
            raw=raw,
            envelope_from="<sender@elsewhere.test>",
            envelope_to=[to],
            at=at,
        )


async def _process(
    w: World,
    email_id: int,
    hooks: Hooks,
    *,
    at: datetime = AT,
    config: InboundConfig = CONFIG,
) -> Any:
    raw = await _raw(w, email_id)
    async with w.sessions()() as session:
        row = await session.get(EmailMessage, email_id)
        assert row is not None
        read = read_mail(raw, envelope_from=row.envelope_from)
    async with w.sessions()() as session, session.begin():
        return await process_mail(
            session=session,
            workspace_id=w.ws,
            email_id=email_id,
            read=read,
            config=config,
            hooks=hooks,
            at=at,
        )


async def _mail(w: World, raw: bytes, hooks: Hooks, **kwargs: Any) -> Any:
    return await _process(w, await _receive(w, raw, at=kwargs.get("at", AT)), hooks, **kwargs)


async def _ticket(w: World, number: int) -> Ticket:
    async with w.sessions()() as session:
        ticket = (
            await session.exec(
                select(Ticket).where(Ticket.workspace_id == w.ws, Ticket.number == number)
            )
        ).one()
        return ticket


async def _events(w: World, ticket_id: int) -> list[TicketEvent]:
    async with w.sessions()() as session:
        rows = await session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(col(TicketEvent.id))
        )
        return list(rows.all())


async def _raw(w: World, email_id: int) -> bytes:
    async with w.sessions()() as session:
        raw = await stored_raw(session=session, workspace_id=w.ws, email_id=email_id)
        assert raw is not None
        return raw


async def _row(w: World, email_id: int) -> EmailMessage:
    async with w.sessions()() as session:
        row = await session.get(EmailMessage, email_id)
        assert row is not None
        return row


async def _count_tickets(w: World) -> int:
    async with w.sessions()() as session:
        return len((await session.exec(select(Ticket.id))).all())


async def _open_ticket(w: World, *, customer: int | None = None, **extra: Any) -> Ticket:
    async with w.sessions()() as session, session.begin():
        ticket = await create_ticket(
            session=session,
            workspace_id=w.ws,
            data=TicketCreate(
                title="VPN down",
                customer_id=customer if customer is not None else w.acme,
                requester_email="alice@acme.test",
            ),
            actor=None,
            at=AT - timedelta(days=1),
        )
        for name, value in extra.items():
            setattr(ticket, name, value)
        session.add(ticket)
        return ticket


def _our_id(w: World, number: int, nonce: str = "n1") -> str:
    return make_message_id(
        secret=SECRET, workspace_id=w.ws, ticket_number=number, nonce=nonce, domain="example.com"
    )


# -- storing and the work queue --------------------------------------------------------------


async def test_store_keeps_any_bytes_and_flags_the_worker(world: World) -> None:
    raw = b"\xff\xfe not a mail at all \x00\r\n"
    async with world.sessions()() as session, session.begin():
        email_id = await store_received(
            session=session,
            workspace_id=world.ws,
            raw=raw,
            envelope_from="<>",
            envelope_to=[SUPPORT],
            at=AT,
        )
        assert session.info["mail_dirty"] is True
    row = await _row(world, email_id)
    assert (row.status, row.size, row.envelope_from) == (RECEIVED, len(raw), "<>")
    assert await _raw(world, email_id) == raw


async def test_a_large_mail_is_stored_in_pieces_read_from_its_spool(world: World) -> None:
    line = b".dot-stuffed lines stay as given, %06d\r\n"
    raw = b"Subject: big\r\n\r\n" + b"".join(line % i for i in range(30_000))
    spool = io.BytesIO(raw)
    async with world.sessions()() as session, session.begin():
        email_id = await store_received(
            session=session,
            workspace_id=world.ws,
            raw=spool,
            envelope_from="alice@acme.test",
            envelope_to=[SUPPORT],
            at=AT,
        )
    row = await _row(world, email_id)
    async with world.sessions()() as session:
        pieces = (
            await session.exec(
                select(EmailChunk.data)
                .where(EmailChunk.email_id == email_id)
                .order_by(col(EmailChunk.seq))
            )
        ).all()
        other = await stored_raw(session=session, workspace_id=world.ws + 1, email_id=email_id)
    assert (row.raw, row.size) == (b"", len(raw)) and len(raw) > 4 * CHUNK_BYTES
    assert [len(p) for p in pieces[:-1]] == [CHUNK_BYTES] * (len(pieces) - 1)
    assert await _raw(world, email_id) == raw and other is None


async def test_mail_stored_whole_before_pieces_is_still_read_and_processed(world: World) -> None:
    raw = build_mail(sender="alice@acme.test", subject="Stored the old way", body="Printer down")
    async with world.sessions()() as session, session.begin():
        row = EmailMessage(
            workspace_id=world.ws, envelope_to=SUPPORT, size=len(raw), raw=raw, received_at=AT
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        email_id = row.id
    assert await _raw(world, email_id) == raw
    outcome = await _process(world, email_id, Hooks())
    assert outcome.status == PROCESSED and outcome.decision is DecisionKind.NEW_TICKET


async def test_claim_leases_then_quarantines_after_the_attempts(world: World) -> None:
    email_id = await _receive(world, build_mail())
    for attempt in range(1, 5):
        async with world.sessions()() as session, session.begin():
            ids = await claim_received(session=session, workspace_id=world.ws, now=AT)
            assert ids == ([email_id] if attempt == 1 else [])
        if attempt == 1:
            assert (await _row(world, email_id)).attempts == 1
    # The lease ran out each time (the worker died): the attempts are used up.
    later = AT
    for _ in range(4):
        later += timedelta(hours=1)
        async with world.sessions()() as session, session.begin():
            await claim_received(session=session, workspace_id=world.ws, now=later)
    row = await _row(world, email_id)
    assert row.status == QUARANTINED
    assert "gave up after 4 attempts" in (row.outcome or "")


async def test_failures_are_retried_with_backoff_then_quarantined(world: World) -> None:
    email_id = await _receive(world, build_mail())
    now = AT
    statuses = []
    for _ in range(4):
        async with world.sessions()() as session, session.begin():
            assert await claim_received(session=session, workspace_id=world.ws, now=now) == [
                email_id
            ]
            statuses.append(
                await record_failure(session=session, email_id=email_id, error="boom", at=now)
            )
        row = await _row(world, email_id)
        if row.status == RECEIVED:
            assert row.processed_at is not None and row.processed_at > now
            now = row.processed_at
    assert statuses == [RECEIVED, RECEIVED, RECEIVED, QUARANTINED]
    row = await _row(world, email_id)
    assert "boom" in (row.outcome or "") and await _raw(world, email_id)
    async with world.sessions()() as session:
        listed = await list_mail(session=session, workspace_id=world.ws)
    assert [m.id for m in listed] == [email_id]
    async with world.sessions()() as session, session.begin():
        assert await release_mail(session=session, workspace_id=world.ws, email_id=email_id, at=now)
    assert (await _row(world, email_id)).status == RECEIVED


# -- which ticket -------------------------------------------------------------------------------


async def test_known_contact_opens_a_verified_ticket_with_attachments(world: World) -> None:
    hooks = Hooks()
    raw = build_mail(
        sender="Alice <alice@acme.test>",
        subject="Printer on fire",
        body="It is really on fire.\n\n-- \nAlice, Acme",
        message_id="<m1@acme.test>",
        attachments=[("photo.jpg", "image/jpeg", b"\xff\xd8" + b"x" * 998)],
        headers=passed("acme.test"),
    )
    email_id = await _receive(world, raw)
    outcome = await _process(world, email_id, hooks)
    assert outcome.status == PROCESSED and outcome.decision is DecisionKind.NEW_TICKET
    ticket = await _ticket(world, outcome.ticket_number)
    assert ticket.customer_id == world.acme and ticket.contact_id == world.alice
    assert ticket.verified and ticket.requester_email == "alice@acme.test"
    assert ticket.title == "Printer on fire"
    assert ticket.description == "It is really on fire."
    assert ticket.last_customer_message_id == "<m1@acme.test>"
    assert hooks.opened == [ticket.number] and not hooks.replies
    row = await _row(world, email_id)
    assert row.ticket_id == ticket.id and row.from_addr == "alice@acme.test"
    assert row.attachments == [
        {"filename": "photo.jpg", "content_type": "image/jpeg", "size": 1000}
    ]
    created = (await _events(world, ticket.id or 0))[0]
    assert created.kind == EventKind.CREATED and created.actor_label == "Alice <alice@acme.test>"
    assert created.data["source"] == "email" and created.data["email_id"] == email_id


async def test_reply_to_our_message_attaches_with_only_the_new_text(world: World) -> None:
    ticket = await _open_ticket(world, status=TicketStatus.WAITING)
    hooks = Hooks()
    body = (
        "Yes, rebooting fixed it.\n\nOn Mon, 2 Jun 2025 at 08:00, Support <support@example.com> "
        "wrote:\n> Please reboot the router.\n> Thanks"
    )
    raw = build_mail(
        sender="alice@acme.test",
        subject="Re: [#1] VPN down",
        body=body,
        message_id="<m2@acme.test>",
        in_reply_to=_our_id(world, ticket.number),
    )
    outcome = await _mail(world, raw, hooks)
    assert outcome.decision is DecisionKind.ATTACH and outcome.ticket_id == ticket.id
    events = await _events(world, ticket.id or 0)
    reply = next(e for e in events if e.kind == EventKind.CUSTOMER_REPLY)
    assert reply.body == "Yes, rebooting fixed it."
    assert reply.data["matched_by"] == "message_id"
    assert hooks.replies == [(ticket.number, "Yes, rebooting fixed it.")]
    # The customer answered: the ticket is no longer waiting on them.
    assert hooks.changed == [(ticket.number, TicketStatus.OPEN)]
    after = await _ticket(world, ticket.number)
    assert after.status == TicketStatus.OPEN
    assert after.last_customer_message_id == "<m2@acme.test>"
    assert await _count_tickets(world) == 1


async def test_plus_address_attaches(world: World) -> None:
    ticket = await _open_ticket(world)
    plus = make_reply_address(
        secret=SECRET, support_address=SUPPORT, workspace_id=world.ws, ticket_number=ticket.number
    )
    hooks = Hooks()
    email_id = await _receive(world, build_mail(sender="alice@acme.test", to=plus), to=plus)
    outcome = await _process(world, email_id, hooks)
    assert outcome.ticket_id == ticket.id and outcome.decision is DecisionKind.ATTACH
    assert hooks.replies and not hooks.opened


async def test_strangers_subject_tag_does_not_attach(world: World) -> None:
    ticket = await _open_ticket(world)
    hooks = Hooks()
    raw = build_mail(sender="mallory@evil.test", subject=f"Re: [#{ticket.number}] VPN down")
    outcome = await _mail(world, raw, hooks)
    assert outcome.decision is DecisionKind.NEW_TICKET and outcome.ticket_id != ticket.id
    new = await _ticket(world, outcome.ticket_number)
    assert new.verified is False and new.customer_id is None
    assert "subject tag" in outcome.outcome
    assert [e.kind for e in await _events(world, ticket.id or 0)] == [EventKind.CREATED]
    # Another customer's contact cannot use the tag either.
    outcome = await _mail(
        world, build_mail(sender="bob@globex.test", subject=f"[#{ticket.number}] x"), Hooks()
    )
    assert outcome.ticket_id != ticket.id
    assert (await _ticket(world, outcome.ticket_number)).customer_id == world.globex


async def test_subject_tag_from_the_customers_contact_attaches(world: World) -> None:
    async with world.sessions()() as session, session.begin():
        session.add(Contact(workspace_id=world.ws, customer_id=world.acme, email="carol@acme.test"))
    ticket = await _open_ticket(world)
    hooks = Hooks()
    raw = build_mail(sender="carol@acme.test", subject=f"Re: [#{ticket.number}] VPN down")
    outcome = await _mail(world, raw, hooks)
    assert outcome.ticket_id == ticket.id and outcome.decision is DecisionKind.ATTACH


async def test_unknown_sender_is_held_when_configured(world: World) -> None:
    hooks = Hooks()
    config = InboundConfig(
        support_address=SUPPORT, secret=SECRET, reopen_days=14, hold_unknown=True
    )
    email_id = await _receive(world, build_mail(sender="who@nowhere.test"))
    outcome = await _process(world, email_id, hooks, config=config)
    assert outcome.status == HELD and not hooks.anything
    assert await _count_tickets(world) == 0
    async with world.sessions()() as session:
        assert [m.id for m in await list_mail(session=session, workspace_id=world.ws)] == [email_id]


async def test_known_domain_opens_ticket_for_that_customer(world: World) -> None:
    mail = build_mail(sender="dave@globex.test", headers=passed("globex.test"))
    outcome = await _mail(world, mail, Hooks())
    ticket = await _ticket(world, outcome.ticket_number)
    assert (ticket.customer_id, ticket.contact_id, ticket.verified) == (world.globex, None, True)
    forged = await _mail(world, build_mail(sender="eve@globex.test", subject="Pay here"), Hooks())
    unverified = await _ticket(world, forged.ticket_number)
    assert (unverified.customer_id, unverified.verified) == (world.globex, False)


async def test_closed_ticket_reopens_within_the_window_else_follow_up(world: World) -> None:
    recent = await _open_ticket(world, status=TicketStatus.CLOSED, closed_at=AT - timedelta(days=3))
    old = await _open_ticket(world, status=TicketStatus.CLOSED, closed_at=AT - timedelta(days=30))
    hooks = Hooks()
    outcome = await _mail(
        world,
        build_mail(
            sender="alice@acme.test", in_reply_to=_our_id(world, recent.number), body="Again!"
        ),
        hooks,
    )
    assert outcome.decision is DecisionKind.REOPEN
    assert (await _ticket(world, recent.number)).status == TicketStatus.OPEN
    statuses = [e for e in await _events(world, recent.id or 0) if e.kind == EventKind.STATUS]
    assert statuses[-1].data["to"] == "open" and statuses[-1].actor_label == "alice@acme.test"
    assert hooks.replies == [(recent.number, "Again!")]

    hooks = Hooks()
    outcome = await _mail(
        world, build_mail(sender="alice@acme.test", in_reply_to=_our_id(world, old.number)), hooks
    )
    assert outcome.decision is DecisionKind.FOLLOW_UP
    follow = await _ticket(world, outcome.ticket_number)
    assert follow.follow_up_of_id == old.id and follow.customer_id == world.acme
    assert (await _ticket(world, old.number)).status == TicketStatus.CLOSED
    assert hooks.opened == [follow.number]


# -- loops and noise ------------------------------------------------------------------------------


async def test_auto_reply_is_recorded_quietly_or_ignored(world: World) -> None:
    ticket = await _open_ticket(world, status=TicketStatus.WAITING)
    hooks = Hooks()
    ooo = build_mail(
        sender="alice@acme.test",
        subject="Automatic reply: VPN down",
        body="I am out of office until Monday.",
        in_reply_to=_our_id(world, ticket.number),
        headers={"Auto-Submitted": "auto-replied"},
    )
    outcome = await _mail(world, ooo, hooks)
    assert outcome.decision is DecisionKind.ATTACH_QUIETLY
    notice = (await _events(world, ticket.id or 0))[-1]
    assert notice.kind == EventKind.MAIL_NOTICE and notice.data["auto_kind"] == "auto_reply"
    assert not hooks.anything
    assert (await _ticket(world, ticket.number)).status == TicketStatus.WAITING

    stray = build_mail(sender="alice@acme.test", headers={"Auto-Submitted": "auto-replied"})
    outcome = await _mail(world, stray, hooks)
    assert outcome.status == IGNORED and not hooks.anything
    assert await _count_tickets(world) == 1


async def test_bounce_of_our_reply_is_shown_on_the_ticket(world: World) -> None:
    ticket = await _open_ticket(world)
    async with world.sessions()() as session, session.begin():
        member = await session.get(Member, world.agent.id)
        assert member is not None
        sent = await queue_email_reply(
            session=session,
            workspace_id=world.ws,
            ticket_id=ticket.id or 0,
            member=member,
            text="Please reboot.",
            mail=MailSettings(support_address=SUPPORT, secret=SECRET),
            at=AT,
        )
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.acme.test>\r\n"
        "To: support@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "MIME-Version: 1.0\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        "Could not deliver to alice@acme.test\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        "Final-Recipient: rfc822; alice@acme.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {sent.message_id}\r\n"
        "From: support@example.com\r\n\r\n--b--\r\n"
    ).encode()
    hooks = Hooks()
    outcome = await _mail(world, bounce, hooks)
    assert outcome.decision is DecisionKind.ATTACH_QUIETLY and outcome.ticket_id == ticket.id
    notice = (await _events(world, ticket.id or 0))[-1]
    assert notice.kind == EventKind.MAIL_NOTICE and notice.data["auto_kind"] == "bounce"
    assert hooks.notices == [ticket.number] and not hooks.replies and not hooks.opened
    assert (await _row(world, sent.email_id or 0)).status == "bounced"


async def test_a_flood_stops_opening_tickets(world: World) -> None:
    hooks = Hooks()
    outcomes = []
    for i in range(7):
        raw = build_mail(sender="loop@acme.test", subject="Alert", message_id=f"<f{i}@acme.test>")
        outcomes.append(await _mail(world, raw, hooks, at=AT + timedelta(seconds=10 * i)))
    assert [o.decision for o in outcomes[:5]] == [DecisionKind.NEW_TICKET] * 5
    assert [o.status for o in outcomes[5:]] == [IGNORED, IGNORED]
    assert "flooding" in outcomes[5].outcome
    assert await _count_tickets(world) == 5
    # Ten minutes later the sender is welcome again.
    later = await _mail(
        world,
        build_mail(sender="loop@acme.test", subject="Alert"),
        hooks,
        at=AT + timedelta(minutes=10),
    )
    assert later.decision is DecisionKind.NEW_TICKET


async def test_duplicates_and_reprocessing_change_nothing(world: World) -> None:
    raw = build_mail(sender="alice@acme.test", message_id="<same@acme.test>")
    hooks = Hooks()
    first_id = await _receive(world, raw)
    first = await _process(world, first_id, hooks)
    again = await _process(world, first_id, hooks)
    assert again.status == PROCESSED and hooks.opened == [first.ticket_number]
    second = await _mail(world, raw, hooks)
    assert second.status == IGNORED and "duplicate" in second.outcome
    assert await _count_tickets(world) == 1


async def test_unreadable_mail_is_quarantined_with_its_reason(world: World) -> None:
    email_id = await _receive(world, b"garbage")
    async with world.sessions()() as session, session.begin():
        outcome = await process_mail(
            session=session,
            workspace_id=world.ws,
            email_id=email_id,
            read=ReadMail(None, "", "unparseable: TypeError"),
            config=CONFIG,
            hooks=Hooks(),
            at=AT,
        )
    assert outcome.status == QUARANTINED
    row = await _row(world, email_id)
    assert row.status == QUARANTINED and "TypeError" in (row.outcome or "")
    assert await _raw(world, email_id)


async def test_hostile_text_is_stored_safely(world: World) -> None:
    raw = (
        b"From: alice@acme.test\r\nSubject: =?utf-8?q?bad=00nul?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nnul \x00 and \xed\xa0\x80 surrogate\r\n"
    )
    outcome = await _mail(world, raw, Hooks())
    assert outcome.status == PROCESSED
    ticket = await _ticket(world, outcome.ticket_number)
    assert "\x00" not in ticket.title + ticket.description


async def test_slack_customer_reply_is_recorded_once(world: World) -> None:
    ticket = await _open_ticket(world, status=TicketStatus.WAITING)
    hooks = Hooks()
    for _ in range(2):
        async with world.sessions()() as session, session.begin():
            fresh = await session.get(Ticket, ticket.id)
            assert fresh is not None
            await record_customer_reply(
                session=session,
                workspace_id=world.ws,
                ticket=fresh,
                body="Still broken",
                label="Alice",
                at=AT,
                hooks=hooks,
                slack_ts="1700000000.000100",
            )
    replies = [
        e for e in await _events(world, ticket.id or 0) if e.kind == EventKind.CUSTOMER_REPLY
    ]
    assert len(replies) == 1 and hooks.replies == [(ticket.number, "Still broken")]
    assert (await _ticket(world, ticket.number)).status == TicketStatus.OPEN
