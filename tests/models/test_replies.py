"""Agent replies: the outgoing mail, its outbox row, the history entry, and waiting."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import make_sessionmaker
from models.inbound_apply import InboundConfig, process_mail
from models.inbound_read import read_mail
from models.inbound_store import QUEUED, store_received
from models.outbox import EMAIL
from models.people import PermissionDenied
from models.replies import (
    MailSettings,
    ReplyError,
    last_customer_message,
    queue_email_reply,
    record_agent_reply,
)
from models.reply_text import REPLY_MARKER
from models.tables import (
    Customer,
    EmailMessage,
    EventKind,
    Member,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
    Workspace,
)
from models.threading import DecisionKind, parse_message_id, parse_reply_address
from models.tickets import TicketCreate, create_ticket
from tests.models.test_inbound import Hooks
from tests.smtp_sink import build_mail

AT = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
SUPPORT = "support@example.com"
SECRET = b"test-mail-secret"
MAIL = MailSettings(support_address=SUPPORT, secret=SECRET, from_name="Acme IT")


Sessions = async_sessionmaker[AsyncSession]


def _id(value: int | None) -> int:
    assert value is not None
    return value


@pytest.fixture
async def sessions(engine: AsyncEngine, workspace: Workspace) -> Sessions:
    return make_sessionmaker(engine)


async def _setup(
    sessions: Sessions, workspace: Workspace, **ticket_fields: Any
) -> tuple[Member, Ticket]:
    async with sessions() as session, session.begin():
        customer = Customer(workspace_id=_id(workspace.id), name="Acme", email_domains="acme.test")
        agent = Member(workspace_id=_id(workspace.id), slack_user_id="UAGENT", name="Agnes")
        session.add_all([customer, agent])
        await session.flush()
        ticket = await create_ticket(
            session=session,
            workspace_id=_id(workspace.id),
            data=TicketCreate(
                title="VPN down\nagain",
                customer_id=customer.id,
                requester_email=ticket_fields.pop("requester_email", "alice@acme.test"),
            ),
            actor=agent,
            at=AT - timedelta(hours=1),
        )
        for name, value in ticket_fields.items():
            setattr(ticket, name, value)
        session.add(ticket)
    return agent, ticket


async def test_reply_is_queued_as_a_threaded_mail(sessions: Sessions, workspace: Workspace) -> None:
    agent, ticket = await _setup(
        sessions, workspace, last_customer_message_id="<c1@acme.test>", status=TicketStatus.OPEN
    )
    async with sessions() as session, session.begin():
        session.add(
            EmailMessage(
                workspace_id=_id(workspace.id),
                message_id="<c0@acme.test>",
                raw=b"",
                ticket_id=_id(ticket.id),
                status="processed",
            )
        )
        session.add(
            EmailMessage(
                workspace_id=_id(workspace.id),
                message_id="<c1@acme.test>",
                raw=b"",
                ticket_id=_id(ticket.id),
                status="processed",
            )
        )
    async with sessions() as session, session.begin():
        reply = await queue_email_reply(
            session=session,
            workspace_id=_id(workspace.id),
            ticket_id=_id(ticket.id),
            member=agent,
            text="Please reboot the router.\nThanks, Agnes",
            mail=MAIL,
            at=AT,
        )
        assert session.info["outbox_dirty"] is True
    assert reply.change is not None and reply.ticket.status == TicketStatus.WAITING
    ref_id = parse_message_id(reply.message_id, secret=SECRET)
    assert ref_id is not None and ref_id.ticket_number == ticket.number

    async with sessions() as session:
        outbox = (await session.exec(select(OutboxMessage))).one()
        sent = await session.get(EmailMessage, reply.email_id)
        events = (
            await session.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(col(TicketEvent.id))
            )
        ).all()
    assert outbox.kind == EMAIL and outbox.ordering_key == f"ticket:{ticket.id}"
    assert outbox.payload["to"] == ["alice@acme.test"]
    assert outbox.payload["from"] == SUPPORT and outbox.payload["email_id"] == reply.email_id
    assert sent is not None and sent.direction == "out" and sent.status == QUEUED
    assert sent.message_id == reply.message_id and sent.raw == outbox.payload["raw"].encode()

    message = email.message_from_string(outbox.payload["raw"], policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == SUPPORT
    assert message["To"] == "alice@acme.test"
    assert message["Subject"] == f"[#{ticket.number}] VPN down again"
    assert message["Message-ID"] == reply.message_id
    assert message["In-Reply-To"] == "<c1@acme.test>"
    assert message["References"].split() == ["<c0@acme.test>", "<c1@acme.test>"]
    ref = parse_reply_address(
        message["Reply-To"].addresses[0].addr_spec, secret=SECRET, support_address=SUPPORT
    )
    assert ref is not None and ref.ticket_number == ticket.number
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert body.startswith(REPLY_MARKER) and "Please reboot the router." in body

    kinds = [e.kind for e in events]
    assert kinds == [EventKind.CREATED, EventKind.AGENT_REPLY, EventKind.STATUS]
    agent_reply = events[1]
    assert agent_reply.email_id == reply.email_id and agent_reply.actor_id == agent.id
    assert agent_reply.body == "Please reboot the router.\nThanks, Agnes"
    assert events[2].data["to"] == TicketStatus.WAITING


async def test_the_customers_answer_threads_back(sessions: Sessions, workspace: Workspace) -> None:
    agent, ticket = await _setup(sessions, workspace)
    async with sessions() as session, session.begin():
        reply = await queue_email_reply(
            session=session,
            workspace_id=_id(workspace.id),
            ticket_id=_id(ticket.id),
            member=agent,
            text="Did that help?",
            mail=MAIL,
            at=AT,
        )
    answer = build_mail(
        sender="alice@acme.test",
        subject=f"Re: [#{ticket.number}] VPN down again",
        body=f"Yes it did.\n\n> {REPLY_MARKER}\n> Did that help?",
        in_reply_to=reply.message_id,
    )
    async with sessions() as session, session.begin():
        email_id = await store_received(
            session=session,
            workspace_id=_id(workspace.id),
            raw=answer,
            envelope_from="alice@acme.test",
            envelope_to=[SUPPORT],
            at=AT,
        )
    hooks = Hooks()
    async with sessions() as session, session.begin():
        outcome = await process_mail(
            session=session,
            workspace_id=_id(workspace.id),
            email_id=email_id,
            read=read_mail(
                answer,
                envelope_from="alice@acme.test",
            ),
            config=InboundConfig(
                support_address=SUPPORT, secret=SECRET, reopen_days=14, hold_unknown=False
            ),
            hooks=hooks,
            at=AT + timedelta(minutes=5),
        )
    assert outcome.decision is DecisionKind.ATTACH and outcome.ticket_id == ticket.id
    assert hooks.replies == [(ticket.number, "Yes it did.")]
    async with sessions() as session, session.begin():
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None and fresh.status == TicketStatus.OPEN
        # An internal note after the customer's answer is never what the reply form quotes.
        session.add(
            TicketEvent(
                workspace_id=_id(workspace.id),
                ticket_id=_id(ticket.id),
                kind=EventKind.NOTE,
                body="internal: customer is grumpy",
            )
        )
        await session.flush()
        last = await last_customer_message(
            session=session, workspace_id=_id(workspace.id), ticket=fresh
        )
        assert last == "Yes it did."


async def test_refusals(sessions: Sessions, workspace: Workspace) -> None:
    agent, ticket = await _setup(sessions, workspace, requester_email=None)
    async with sessions() as session, session.begin():
        with pytest.raises(ReplyError, match="no customer email"):
            await queue_email_reply(
                session=session,
                workspace_id=_id(workspace.id),
                ticket_id=_id(ticket.id),
                member=agent,
                text="hi",
                mail=MAIL,
                at=AT,
            )
        with pytest.raises(ReplyError, match="Write a reply"):
            await queue_email_reply(
                session=session,
                workspace_id=_id(workspace.id),
                ticket_id=_id(ticket.id),
                member=agent,
                text="  \n ",
                mail=MAIL,
                at=AT,
            )
        agent.active = False
        with pytest.raises(PermissionDenied):
            await queue_email_reply(
                session=session,
                workspace_id=_id(workspace.id),
                ticket_id=_id(ticket.id),
                member=agent,
                text="hi",
                mail=MAIL,
                at=AT,
            )
    async with sessions() as session:
        assert (await session.exec(select(OutboxMessage))).all() == []
        assert (await session.exec(select(EmailMessage))).all() == []


async def test_slack_reply_is_recorded_once_and_waits(
    sessions: Sessions, workspace: Workspace
) -> None:
    agent, ticket = await _setup(sessions, workspace)
    results = []
    for _ in range(2):
        async with sessions() as session, session.begin():
            results.append(
                await record_agent_reply(
                    session=session,
                    workspace_id=_id(workspace.id),
                    ticket_id=_id(ticket.id),
                    member=agent,
                    text="On it",
                    at=AT,
                    slack_ts="1700000000.000200",
                    data={"via": "slack"},
                )
            )
    assert results[0] is not None and results[0].ticket.status == TicketStatus.WAITING
    assert results[1] is None
    async with sessions() as session:
        replies = (
            await session.exec(select(TicketEvent).where(TicketEvent.kind == EventKind.AGENT_REPLY))
        ).all()
        assert len(replies) == 1 and (await session.exec(select(OutboxMessage))).all() == []
