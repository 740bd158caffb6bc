"""Agent replies to customers: the outgoing mail, its outbox row, the history entry, waiting.

`queue_email_reply` writes, in the caller's transaction, the outgoing `EmailMessage` (with our
signed Message-ID, threaded on the customer's last message), the outbox row that delivers it
through the mail relay, the AGENT_REPLY entry and the move to "waiting on customer".
`record_agent_reply` is the same without mail, for answers given in Slack (a customer's own
channel). Internal notes never come here: only what an agent chose to send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.inbound_store import QUEUED, clean_text
from models.lifecycle import can_move
from models.mail_outgoing import build_reply_email
from models.outbox import EmailSend, enqueue
from models.people import require_agent
from models.sla_store import refresh_ticket_sla
from models.sql import insert_ignore
from models.tables import (
    Contact,
    EmailMessage,
    EventKind,
    Member,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from models.threading import make_message_id, make_reply_address, tag_subject
from models.tickets import (
    TicketChange,
    TicketConflict,
    TicketUpdate,
    actor_label,
    get_ticket,
    update_ticket,
)

REPLY_MAX = 20_000


class ReplyError(ValueError):
    """A reply that cannot be sent; the message is fit to show the agent."""


@dataclass(frozen=True)
class MailSettings:
    """Who our mail comes from and the key that signs its ids (from Settings)."""

    support_address: str
    secret: bytes
    from_name: str = "Support"


@dataclass
class AgentReply:
    """What a reply wrote: the history entry, the mail and its outbox row (when emailed), and
    the status change (None when the ticket was already waiting or cannot wait)."""

    ticket: Ticket
    event: TicketEvent
    change: TicketChange | None
    email_id: int | None = None
    outbox_id: int | None = None
    message_id: str | None = None
    to_addr: str | None = None


async def customer_address(*, session: AsyncSession, ticket: Ticket) -> str | None:
    """Where replies go: the requester's address, else the ticket's contact's."""
    if ticket.requester_email:
        return ticket.requester_email
    if ticket.contact_id is not None:
        contact = await session.get(Contact, ticket.contact_id)
        if contact is not None and contact.email:
            return contact.email
    return None


async def thread_message_ids(*, session: AsyncSession, ticket_id: int) -> list[str]:
    """Message-IDs of the ticket's mail so far, oldest first (the References chain)."""
    stmt = (
        select(EmailMessage.message_id)
        .where(EmailMessage.ticket_id == ticket_id, col(EmailMessage.message_id).is_not(None))
        .order_by(col(EmailMessage.id))
        .limit(200)
    )
    return [m for m in (await session.exec(stmt)).all() if m]


async def _to_waiting(
    session: AsyncSession, workspace_id: int, ticket_id: int, member: Member, at: datetime
) -> TicketChange | None:
    # Re-read and retry inside the transaction: an agent's reply must not fail because the
    # ticket changed a moment earlier.
    for attempt in range(5):
        ticket = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
        if not can_move(ticket.status, TicketStatus.WAITING):
            return None
        try:
            return await update_ticket(
                session=session,
                workspace_id=workspace_id,
                ticket_id=ticket_id,
                expected_version=ticket.version,
                changes=TicketUpdate(status=TicketStatus.WAITING.value),
                actor=member,
                at=at,
            )
        except TicketConflict:
            if attempt == 4:
                raise
    return None


def _clean_reply(text: str) -> str:
    body = clean_text(text, REPLY_MAX + 1).strip()
    if not body:
        raise ReplyError("Write a reply first.")
    if len(body) > REPLY_MAX:
        raise ReplyError(f"Keep the reply under {REPLY_MAX} characters.")
    return body


async def record_agent_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    member: Member,
    text: str,
    at: datetime,
    slack_ts: str | None = None,
    data: dict[str, Any] | None = None,
    email_id: int | None = None,
) -> AgentReply | None:
    """The AGENT_REPLY entry and the move to waiting; None when `slack_ts` is recorded already."""
    require_agent(member)
    body = _clean_reply(text)
    event_id = await insert_ignore(
        session,
        TicketEvent,
        {
            "workspace_id": workspace_id,
            "ticket_id": ticket_id,
            "kind": EventKind.AGENT_REPLY.value,
            "actor_id": member.id,
            "actor_label": clean_text(actor_label(member), 320),
            "body": body,
            "data": data or {},
            "slack_ts": slack_ts,
            "email_id": email_id,
            "deleted": False,
            "created_at": at,
        },
        conflict=["workspace_id", "slack_ts"],
    )
    if event_id is None:
        return None
    event = await session.get(TicketEvent, event_id)
    assert event is not None
    change = await _to_waiting(session, workspace_id, ticket_id, member, at)
    await refresh_ticket_sla(session=session, workspace_id=workspace_id, ticket_id=ticket_id, at=at)
    ticket = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
    return AgentReply(ticket=ticket, event=event, change=change)


async def queue_email_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    member: Member,
    text: str,
    mail: MailSettings,
    at: datetime,
) -> AgentReply:
    """Email an agent's reply to the customer (through the outbox) and record it.

    The mail comes from the support address with the ticket's plus-address as Reply-To, the
    subject `[#123] title`, In-Reply-To the customer's last message and References the
    ticket's mail so far. Raises ReplyError when there is nobody to send to or nothing to say,
    and PermissionDenied for someone who is not an active member.
    """
    require_agent(member)
    body = _clean_reply(text)
    ticket = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
    assert ticket.id is not None
    to_addr = await customer_address(session=session, ticket=ticket)
    if not to_addr:
        raise ReplyError(f"#{ticket.number} has no customer email address to reply to.")
    domain = mail.support_address.rpartition("@")[2]
    message_id = make_message_id(
        secret=mail.secret,
        workspace_id=workspace_id,
        ticket_number=ticket.number,
        nonce=uuid.uuid4().hex[:20],
        domain=domain,
    )
    reply_to = make_reply_address(
        secret=mail.secret,
        support_address=mail.support_address,
        workspace_id=workspace_id,
        ticket_number=ticket.number,
    )
    subject = tag_subject(ticket.number, ticket.title)
    references = await thread_message_ids(session=session, ticket_id=ticket.id)
    try:
        raw = build_reply_email(
            from_addr=mail.support_address,
            from_name=mail.from_name,
            reply_to=reply_to,
            to_addr=to_addr,
            subject=subject,
            body_text=body,
            message_id=message_id,
            in_reply_to=ticket.last_customer_message_id,
            references=references,
            date=at,
        )
    except ValueError as exc:
        raise ReplyError(f"Cannot email {to_addr}: {exc}.") from exc
    email = EmailMessage(
        workspace_id=workspace_id,
        direction="out",
        status=QUEUED,
        message_id=message_id,
        in_reply_to=ticket.last_customer_message_id,
        from_addr=mail.support_address,
        subject=clean_text(subject, 998),
        envelope_from=mail.support_address,
        envelope_to=to_addr,
        size=len(raw),
        raw=raw,
        text=body,
        ticket_id=ticket.id,
        received_at=at,
    )
    session.add(email)
    await session.flush()
    assert email.id is not None
    outbox_id = await enqueue(
        session=session,
        workspace_id=workspace_id,
        key=f"email:{email.id}",
        payload=EmailSend(
            to=(to_addr,),
            sender=mail.support_address,
            # build_reply_email writes UTF-8 (8-bit bodies are allowed by the SMTP policy).
            raw=raw.decode("utf-8"),
            email_id=email.id,
        ),
        at=at,
        ordering_key=f"ticket:{ticket.id}",
    )
    reply = await record_agent_reply(
        session=session,
        workspace_id=workspace_id,
        ticket_id=ticket.id,
        member=member,
        text=body,
        at=at,
        data={"via": "email", "to": to_addr, "message_id": message_id},
        email_id=email.id,
    )
    assert reply is not None
    reply.email_id = email.id
    reply.outbox_id = outbox_id
    reply.message_id = message_id
    reply.to_addr = to_addr
    return reply


async def last_customer_message(*, session: AsyncSession, workspace_id: int, ticket: Ticket) -> str:
    """What the customer said last (their latest reply, else the ticket's description)."""
    stmt = (
        select(TicketEvent.body)
        .where(
            TicketEvent.workspace_id == workspace_id,
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.kind == EventKind.CUSTOMER_REPLY,
            col(TicketEvent.deleted).is_(False),
        )
        .order_by(col(TicketEvent.id).desc())
        .limit(1)
    )
    body = (await session.exec(stmt)).first()
    return body if body else ticket.description


async def sent_mail(
    *, session: AsyncSession, workspace_id: int, message_id: str
) -> EmailMessage | None:
    """The outbound mail we sent with this Message-ID (e.g. the one a bounce is about)."""
    stmt = select(EmailMessage).where(
        EmailMessage.workspace_id == workspace_id,
        EmailMessage.direction == "out",
        EmailMessage.message_id == message_id,
    )
    return (await session.exec(stmt)).first()
