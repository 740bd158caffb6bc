"""Applying stored inbound mail: turn a parsed mail into ticket changes in one transaction.

The mail worker reads a stored mail off the event loop (models.inbound_read: parse and cut the
reply, both pure) and applies the threading decision with `process_mail`: a customer reply event, a
reopen or a status move, a new or follow-up ticket, attachment metadata, and the
notifications, all in the caller's transaction. Storing, leasing and settling the rows is
models.inbound_store. Slack and notification details come from the caller through
`InboundHooks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.inbound_read import ReadMail
from models.inbound_store import (
    BOUNCED,
    HELD,
    IGNORED,
    MAIL_TEXT_MAX,
    OUTCOME_MAX,
    PROCESSED,
    QUARANTINED,
    RECEIVED,
    clean_opt,
    clean_text,
)
from models.lifecycle import can_move
from models.mail import ParsedMail
from models.mail_auto import AutoKind
from models.mailauth import sender_authenticated
from models.sla_store import refresh_ticket_sla
from models.sql import dialect, insert_ignore
from models.tables import (
    Contact,
    Customer,
    EmailMessage,
    EventKind,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from models.threading import (
    ContactFacts,
    Decision,
    DecisionKind,
    MailFacts,
    StaticLookup,
    TicketFacts,
    decide_ticket,
    is_flood,
    parse_message_id,
    parse_reply_address,
    subject_tag,
)
from models.tickets import (
    DESCRIPTION_MAX,
    TicketChange,
    TicketConflict,
    TicketCreate,
    TicketUpdate,
    clean_title,
    create_ticket,
    created_event,
    default_contract_id,
    get_ticket,
    ticket_by_number,
    update_ticket,
    workspace_today,
)

FLOOD_LIMIT = 5
FLOOD_WINDOW = timedelta(minutes=5)
EVENT_BODY_MAX = 20_000
_MAX_IDS = 101


@dataclass(frozen=True)
class InboundConfig:
    """The settings the threading rules need (built from Settings by the handler layer)."""

    support_address: str
    secret: bytes
    reopen_days: int
    hold_unknown: bool
    flood_limit: int = FLOOD_LIMIT
    flood_window: timedelta = FLOOD_WINDOW
    # The authserv-id of the mail server whose Authentication-Results are believed.
    trusted_authserv_id: str | None = None


class InboundHooks(Protocol):
    """Side effects the handler layer adds to the same transaction (Block Kit lives there)."""

    async def ticket_opened(self, *, session: AsyncSession, ticket: Ticket, at: datetime) -> None:
        """A ticket was created from a customer's message: announce its card."""
        ...

    async def ticket_changed(
        self, *, session: AsyncSession, change: TicketChange, at: datetime
    ) -> None:
        """A customer's message moved the ticket's status: refresh its card."""
        ...

    async def customer_reply(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, text: str, at: datetime
    ) -> None:
        """The customer answered on a ticket: tell the assignee (or ask in the thread)."""
        ...

    async def mail_notice(
        self, *, session: AsyncSession, ticket: Ticket, event: TicketEvent, at: datetime
    ) -> None:
        """One of our mails bounced: show it on the ticket's card thread (never a DM)."""
        ...


@dataclass(frozen=True)
class MailOutcome:
    """What processing did with one mail."""

    status: str
    outcome: str
    decision: DecisionKind | None = None
    ticket_id: int | None = None
    ticket_number: int | None = None
    event_id: int | None = None


# --------------------------------------------------------------------------- lookups


def _facts(ticket: Ticket, participants: set[str]) -> TicketFacts:
    return TicketFacts(
        number=ticket.number,
        customer_id=ticket.customer_id,
        status=ticket.status,
        closed_at=ticket.closed_at,
        participant_addrs=frozenset(participants),
    )


async def _participants(
    session: AsyncSession, workspace_id: int, tickets: Sequence[Ticket]
) -> dict[int, set[str]]:
    """Who is on each ticket's thread: its requester, its contact, and whoever mailed it."""
    found: dict[int, set[str]] = {t.id: set() for t in tickets if t.id is not None}
    if not found:
        return found
    for t in tickets:
        if t.id is not None and t.requester_email:
            found[t.id].add(t.requester_email.lower())
    contact_ids = {t.contact_id for t in tickets if t.contact_id}
    if contact_ids:
        rows = await session.exec(
            select(Contact.id, Contact.email).where(
                Contact.workspace_id == workspace_id, col(Contact.id).in_(contact_ids)
            )
        )
        emails = {cid: email for cid, email in rows.all()}
        for t in tickets:
            if t.id is not None and t.contact_id in emails:
                found[t.id].add(emails[t.contact_id].lower())
    senders = await session.exec(
        select(EmailMessage.ticket_id, EmailMessage.from_addr)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.direction == "in",
            EmailMessage.status == PROCESSED,
            col(EmailMessage.ticket_id).in_(list(found)),
            col(EmailMessage.from_addr).is_not(None),
        )
        .distinct()
        .limit(500)
    )
    for ticket_id, addr in senders.all():
        if ticket_id in found and addr:
            found[ticket_id].add(addr.lower())
    return found


async def thread_lookup(
    *,
    session: AsyncSession,
    workspace_id: int,
    mail: MailFacts,
    config: InboundConfig,
) -> StaticLookup:
    """Pre-fetch everything `decide_ticket` may ask about this mail."""
    candidates = [m for m in (mail.in_reply_to, *mail.references) if m][:_MAX_IDS]
    numbers: set[int] = set()
    for msgid in candidates:
        ref = parse_message_id(msgid, secret=config.secret)
        if ref is not None and ref.workspace_id == workspace_id:
            numbers.add(ref.ticket_number)
    known: dict[str, int] = {}
    if candidates:
        rows = await session.exec(
            select(EmailMessage.message_id, Ticket.number)
            .join(Ticket, col(Ticket.id) == col(EmailMessage.ticket_id))
            .where(
                EmailMessage.workspace_id == workspace_id,
                col(EmailMessage.message_id).in_(candidates),
            )
        )
        for stored_id, number in rows.all():
            if stored_id:
                known[stored_id] = number
                numbers.add(number)
    for addr in mail.to_addrs[:_MAX_IDS]:
        ref = parse_reply_address(
            addr, secret=config.secret, support_address=config.support_address
        )
        if ref is not None and ref.workspace_id == workspace_id:
            numbers.add(ref.ticket_number)
    tag = subject_tag(mail.subject)
    if tag is not None:
        numbers.add(tag)

    tickets: list[Ticket] = []
    if numbers:
        tickets = list(
            (
                await session.exec(
                    select(Ticket).where(
                        Ticket.workspace_id == workspace_id, col(Ticket.number).in_(numbers)
                    )
                )
            ).all()
        )
    participants = await _participants(session, workspace_id, tickets)

    contacts: dict[str, ContactFacts] = {}
    domains: dict[str, int] = {}
    sender = mail.from_addr.lower() if mail.from_addr else None
    if sender:
        contact = await contact_by_email(session=session, workspace_id=workspace_id, email=sender)
        if contact is not None:
            contacts[sender] = ContactFacts(customer_id=contact.customer_id)
        domain = sender.rpartition("@")[2]
        customer = await customer_by_domain(
            session=session, workspace_id=workspace_id, domain=domain
        )
        if customer is not None and customer.id is not None:
            domains[domain] = customer.id
    return StaticLookup(
        tickets={t.number: _facts(t, participants.get(t.id or 0, set())) for t in tickets},
        contacts=contacts,
        domains=domains,
        message_ids=known,
    )


async def contact_by_email(
    *, session: AsyncSession, workspace_id: int, email: str
) -> Contact | None:
    """The contact with this address (any case), if any."""
    stmt = select(Contact).where(
        Contact.workspace_id == workspace_id, sa.func.lower(col(Contact.email)) == email.lower()
    )
    return (await session.exec(stmt)).first()


async def customer_by_domain(
    *, session: AsyncSession, workspace_id: int, domain: str
) -> Customer | None:
    """The active customer listing `domain` among its email domains (None when none or many)."""
    domain = domain.strip().lower()
    if not domain:
        return None
    escaped = domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = select(Customer).where(
        Customer.workspace_id == workspace_id,
        col(Customer.active).is_(True),
        sa.func.lower(col(Customer.email_domains)).like(f"%{escaped}%", escape="\\"),
    )
    matches = [
        c
        for c in (await session.exec(stmt)).all()
        if domain in {d.strip().lower() for d in c.email_domains.split(",")}
    ]
    # Two customers claiming one domain is a set-up mistake: better no guess than a wrong one.
    return matches[0] if len(matches) == 1 else None


async def count_recent_from(
    *,
    session: AsyncSession,
    workspace_id: int,
    sender: str,
    subject: str,
    since: datetime,
    until: datetime,
    verified: bool | None = None,
) -> int:
    """Inbound mails from `sender` with `subject` received in [since, until] (flood check).

    With `verified`, only the mails whose sender was (or was not) authenticated count: a forger
    writing a contact's address cannot make the contact's own mail look like a flood.
    """
    stmt = select(sa.func.count()).where(
        col(EmailMessage.workspace_id) == workspace_id,
        col(EmailMessage.direction) == "in",
        col(EmailMessage.from_addr) == sender,
        col(EmailMessage.subject) == subject,
        col(EmailMessage.received_at) >= since,
        col(EmailMessage.received_at) <= until,
    )
    if verified is not None:
        stmt = stmt.where(col(EmailMessage.sender_verified).is_(verified))
    return int((await session.exec(stmt)).one())


# --------------------------------------------------------------------------- customer replies


def sender_label(name: str | None, addr: str | None) -> str:
    """How a customer is named in the history: "Name <addr>" or the address."""
    if name and addr:
        return clean_text(f"{name} <{addr}>", 320)
    return clean_text(addr or name or "unknown sender", 320)


async def move_status(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket_id: int,
    target: str,
    label: str,
    reason: str,
    at: datetime,
    attempts: int = 5,
) -> TicketChange | None:
    """Move a ticket's status on a customer's behalf (None when the move is not allowed).

    Re-reads and retries inside the caller's transaction on a version conflict: a customer
    reply must not fail because an agent changed the ticket at the same moment.
    """
    for attempt in range(attempts):
        ticket = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket_id)
        if ticket.status == target or not can_move(ticket.status, target):
            return None
        try:
            change = await update_ticket(
                session=session,
                workspace_id=workspace_id,
                ticket_id=ticket_id,
                expected_version=ticket.version,
                changes=TicketUpdate(status=target),
                actor=None,
                at=at,
            )
        except TicketConflict:
            if attempt == attempts - 1:
                raise
            continue
        for event in change.events:
            event.actor_label = label
            event.data = {**(event.data or {}), "reason": reason}
            session.add(event)
        await session.flush()
        return change
    return None


def status_after_customer_reply(status: str) -> str | None:
    """The status a customer's answer moves a ticket to (None: it stays as it is)."""
    if status in (TicketStatus.WAITING, TicketStatus.RESOLVED, TicketStatus.CLOSED):
        return TicketStatus.OPEN.value
    return None


def closed_too_long(ticket: Ticket, *, at: datetime, reopen_days: int) -> bool:
    """A closed ticket past the reopen window gets a follow-up ticket instead of a reopen."""
    if ticket.status != TicketStatus.CLOSED:
        return False
    return ticket.closed_at is None or at - ticket.closed_at > timedelta(days=reopen_days)


async def record_customer_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    body: str,
    label: str,
    at: datetime,
    hooks: InboundHooks,
    data: dict[str, Any] | None = None,
    email_id: int | None = None,
    slack_ts: str | None = None,
    message_id: str | None = None,
    notify: bool = True,
) -> TicketEvent | None:
    """A customer's answer on a ticket: the history entry, the status move, the notification.

    Waiting, resolved and closed tickets move back to open (a reopen for the last two) unless
    `notify` is False (a flooding sender: recorded only). Returns None when this Slack message
    (`slack_ts`) is already recorded, so a redelivered event changes nothing.
    """
    assert ticket.id is not None
    values = {
        "workspace_id": workspace_id,
        "ticket_id": ticket.id,
        "kind": EventKind.CUSTOMER_REPLY.value,
        "actor_id": None,
        "actor_label": clean_text(label, 320),
        "body": clean_text(body, EVENT_BODY_MAX),
        "data": data or {},
        "slack_ts": slack_ts,
        "email_id": email_id,
        "deleted": False,
        "created_at": at,
    }
    event_id = await insert_ignore(
        session, TicketEvent, values, conflict=["workspace_id", "slack_ts"]
    )
    if event_id is None:
        return None
    event = await session.get(TicketEvent, event_id)
    assert event is not None
    ticket_values: dict[str, Any] = {"updated_at": at}
    if message_id:
        ticket_values["last_customer_message_id"] = message_id
    # Not a versioned change: an agent's open edit form stays valid after a customer writes.
    await session.execute(
        sa.update(Ticket).where(col(Ticket.id) == ticket.id).values(**ticket_values)
    )
    if notify:
        target = status_after_customer_reply(ticket.status)
        if target is not None:
            waiting = ticket.status == TicketStatus.WAITING
            reason = "customer answered" if waiting else "reopened by the customer"
            change = await move_status(
                session=session,
                workspace_id=workspace_id,
                ticket_id=ticket.id,
                target=target,
                label=label,
                reason=reason,
                at=at,
            )
            if change is not None:
                await hooks.ticket_changed(session=session, change=change, at=at)
    fresh = await get_ticket(session=session, workspace_id=workspace_id, ticket_id=ticket.id)
    if notify:
        await hooks.customer_reply(session=session, ticket=fresh, event=event, text=body, at=at)
    return event


async def open_customer_ticket(
    *,
    session: AsyncSession,
    workspace_id: int,
    title: str,
    description: str,
    customer_id: int | None,
    contact_id: int | None,
    requester_email: str | None,
    verified: bool,
    label: str,
    at: datetime,
    hooks: InboundHooks,
    source: dict[str, Any],
    follow_up_of: Ticket | None = None,
    last_message_id: str | None = None,
    slack_ts: str | None = None,
    source_permalink: str | None = None,
) -> Ticket:
    """A ticket raised by a customer (mail or their Slack channel), announced through `hooks`.

    The customer's only active contract is preselected. `slack_ts` marks the "created" entry
    with the Slack message it came from (unique, so a redelivered event opens nothing new).
    """
    contract_id = None
    if customer_id is not None:
        today = await workspace_today(session=session, workspace_id=workspace_id, at=at)
        contract_id = await default_contract_id(
            session=session, workspace_id=workspace_id, customer_id=customer_id, on=today
        )
    text = clean_text(description, DESCRIPTION_MAX)
    if follow_up_of is not None:
        text = clean_text(f"Follow-up of #{follow_up_of.number}.\n\n{text}", DESCRIPTION_MAX)
    ticket = await create_ticket(
        session=session,
        workspace_id=workspace_id,
        data=TicketCreate(
            title=clean_title(clean_text(title, 1000)) or "(no subject)",
            description=text,
            customer_id=customer_id,
            contact_id=contact_id,
            contract_id=contract_id,
            requester_email=clean_opt(requester_email, 320),
            source_permalink=clean_opt(source_permalink, 500),
        ),
        actor=None,
        at=at,
    )
    assert ticket.id is not None
    ticket.verified = verified
    ticket.follow_up_of_id = follow_up_of.id if follow_up_of is not None else None
    ticket.last_customer_message_id = last_message_id
    session.add(ticket)
    created = await created_event(session=session, ticket_id=ticket.id)
    if created is not None:
        created.actor_label = clean_text(label, 320)
        created.slack_ts = slack_ts
        created.data = {
            **(created.data or {}),
            **source,
            "verified": verified,
            **({"follow_up_of": follow_up_of.number} if follow_up_of is not None else {}),
        }
        session.add(created)
    await session.flush()
    # The "created" entry now says where the ticket came from: a first-response clock.
    await refresh_ticket_sla(session=session, workspace_id=workspace_id, ticket_id=ticket.id, at=at)
    await hooks.ticket_opened(session=session, ticket=ticket, at=at)
    return ticket


# --------------------------------------------------------------------------- processing


def _attachments_meta(parsed: ParsedMail) -> list[dict[str, Any]]:
    return [
        {
            "filename": clean_text(a.filename, 255) or None,
            "content_type": clean_text(a.content_type, 255),
            "size": a.size,
        }
        for a in parsed.attachments[:200]
    ]


def _summary(reasons: Sequence[str]) -> str:
    return clean_text("; ".join(reasons), OUTCOME_MAX)


async def _duplicate_of(
    session: AsyncSession, workspace_id: int, email_id: int, message_id: str | None
) -> EmailMessage | None:
    if not message_id:
        return None
    stmt = (
        select(EmailMessage)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.direction == "in",
            EmailMessage.message_id == message_id,
            EmailMessage.id != email_id,
            col(EmailMessage.status).in_([PROCESSED, HELD]),
        )
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def _ticket_by_number(session: AsyncSession, workspace_id: int, number: int) -> Ticket:
    ticket = await ticket_by_number(
        session=session, workspace_id=workspace_id, number=number, for_update=True
    )
    if ticket is None:
        raise LookupError(f"ticket #{number} vanished while a mail was processed")
    return ticket


def _notice_body(parsed: ParsedMail, sender: str) -> str:
    if parsed.auto_kind is AutoKind.BOUNCE:
        head = "A mail from this ticket could not be delivered"
    elif parsed.auto_kind is AutoKind.BULK:
        head = f"Bulk mail from {sender}"
    else:
        head = f"Automatic reply from {sender}"
    subject = f": {parsed.subject}" if parsed.subject else ""
    return clean_text(f"{head}{subject}", 1000)


async def process_mail(
    *,
    session: AsyncSession,
    workspace_id: int,
    email_id: int,
    read: ReadMail,
    config: InboundConfig,
    hooks: InboundHooks,
    at: datetime,
) -> MailOutcome:
    """Apply one stored mail to the tickets, in the caller's transaction.

    Idempotent: a mail no longer "received" is left alone. Parse failures quarantine the
    mail at once (retrying cannot help); everything else follows `decide_ticket`.
    """
    stmt = select(EmailMessage).where(
        EmailMessage.id == email_id, EmailMessage.workspace_id == workspace_id
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    row = (await session.exec(stmt.execution_options(populate_existing=True))).first()
    if row is None:
        raise LookupError(f"no stored mail {email_id}")
    if row.status != RECEIVED:
        return MailOutcome(status=row.status, outcome=row.outcome or "already done")

    def finish(status: str, reasons: Sequence[str], **extra: Any) -> MailOutcome:
        row.status = status
        row.outcome = _summary(reasons)
        row.processed_at = at
        session.add(row)
        return MailOutcome(status=status, outcome=row.outcome, **extra)

    parsed = read.parsed
    if parsed is None:
        result = finish(QUARANTINED, [f"unreadable: {read.rejected or 'unknown reason'}"])
        await session.flush()
        return result

    row.message_id = clean_opt(parsed.message_id, 998)
    row.in_reply_to = clean_opt(parsed.in_reply_to, 998)
    row.from_addr = clean_opt(parsed.from_addr, 320)
    row.subject = clean_text(parsed.subject, 998)
    row.text = clean_text(parsed.text, MAIL_TEXT_MAX)
    row.attachments = _attachments_meta(parsed)
    row.sender_verified = sender_authenticated(
        parsed.auth_results,
        trusted_authserv_id=config.trusted_authserv_id,
        from_addr=parsed.from_addr,
    )
    session.add(row)
    await session.flush()

    duplicate = await _duplicate_of(session, workspace_id, email_id, row.message_id)
    if duplicate is not None:
        result = finish(IGNORED, [f"same Message-ID as mail {duplicate.id}: a duplicate"])
        row.ticket_id = duplicate.ticket_id
        await session.flush()
        return result

    facts = MailFacts.from_parsed(parsed, envelope_recipients=_recipients(row.envelope_to))
    bounced = parsed.bounce_message_id if parsed.auto_kind is AutoKind.BOUNCE else None
    if bounced:
        # A bounce names the failed mail inside it, not in its own In-Reply-To.
        facts = MailFacts(
            from_addr=facts.from_addr,
            to_addrs=facts.to_addrs,
            in_reply_to=bounced,
            references=facts.references,
            subject=facts.subject,
            auto_kind=facts.auto_kind,
        )
    flooding = False
    if parsed.from_addr:
        recent = await count_recent_from(
            session=session,
            workspace_id=workspace_id,
            sender=parsed.from_addr,
            subject=row.subject or "",
            since=row.received_at - config.flood_window,
            until=row.received_at,
            verified=row.sender_verified,
        )
        flooding = is_flood(recent, config.flood_limit)
    lookup = await thread_lookup(
        session=session, workspace_id=workspace_id, mail=facts, config=config
    )
    decision = decide_ticket(
        mail=facts,
        lookup=lookup,
        secret=config.secret,
        support_address=config.support_address,
        workspace_id=workspace_id,
        now=at,
        reopen_days=config.reopen_days,
        hold_unknown=config.hold_unknown,
        flooding=flooding,
        sender_authenticated=row.sender_verified,
    )
    result = await _apply(
        session=session,
        workspace_id=workspace_id,
        row=row,
        parsed=parsed,
        reply_text=read.reply_text,
        decision=decision,
        bounced=bounced,
        hooks=hooks,
        at=at,
    )
    row.status = result.status
    row.outcome = result.outcome
    row.processed_at = at
    row.ticket_id = result.ticket_id
    session.add(row)
    await session.flush()
    return result


def _recipients(envelope_to: str) -> list[str]:
    return [a.strip().lower() for a in envelope_to.split(",") if a.strip()]


async def _apply(
    *,
    session: AsyncSession,
    workspace_id: int,
    row: EmailMessage,
    parsed: ParsedMail,
    reply_text: str,
    decision: Decision,
    bounced: str | None,
    hooks: InboundHooks,
    at: datetime,
) -> MailOutcome:
    kind = decision.kind
    reasons = list(decision.reasons)
    sender = parsed.from_addr
    label = sender_label(parsed.from_name, sender)
    meta = {
        "email_id": row.id,
        "from": sender,
        "subject": row.subject,
        "message_id": row.message_id,
        "attachments": row.attachments,
        "matched_by": decision.matched_by,
        "verified": decision.verified,
    }

    def outcome(
        status: str, ticket: Ticket | None = None, event_id: int | None = None
    ) -> MailOutcome:
        return MailOutcome(
            status=status,
            outcome=_summary([f"{kind.value}", *reasons]),
            decision=kind,
            ticket_id=ticket.id if ticket is not None else None,
            ticket_number=ticket.number if ticket is not None else None,
            event_id=event_id,
        )

    if kind is DecisionKind.IGNORE:
        return outcome(IGNORED)
    if kind is DecisionKind.HELD:
        return outcome(HELD)

    if kind in (DecisionKind.ATTACH, DecisionKind.REOPEN, DecisionKind.ATTACH_QUIETLY):
        assert decision.ticket_number is not None
        ticket = await _ticket_by_number(session, workspace_id, decision.ticket_number)
        assert ticket.id is not None
        if parsed.auto_kind is not None:
            event = TicketEvent(
                workspace_id=workspace_id,
                ticket_id=ticket.id,
                kind=EventKind.MAIL_NOTICE,
                actor_label=clean_text(label, 320),
                body=_notice_body(parsed, sender or "unknown sender"),
                data={
                    **meta,
                    "auto_kind": parsed.auto_kind.value,
                    "reason": clean_text(parsed.auto_reason, 500),
                    "bounced_message_id": bounced,
                    "excerpt": clean_text(reply_text, 1000),
                },
                email_id=row.id,
                created_at=at,
            )
            session.add(event)
            await session.flush()
            if bounced and await _mark_bounced(session, workspace_id, bounced, at):
                reasons.append("bounce of our own mail: shown on the ticket")
                await hooks.mail_notice(session=session, ticket=ticket, event=event, at=at)
            return outcome(PROCESSED, ticket, event.id)
        quiet = kind is DecisionKind.ATTACH_QUIETLY
        event_or_none = await record_customer_reply(
            session=session,
            workspace_id=workspace_id,
            ticket=ticket,
            body=reply_text,
            label=label,
            at=at,
            hooks=hooks,
            data={**meta, **({"quiet": True} if quiet else {})},
            email_id=row.id,
            message_id=row.message_id,
            notify=not quiet,
        )
        return outcome(PROCESSED, ticket, event_or_none.id if event_or_none else None)

    # A new ticket, or a follow-up of one closed too long ago.
    follow_up_of = None
    if kind is DecisionKind.FOLLOW_UP:
        assert decision.follow_up_of is not None
        follow_up_of = await _ticket_by_number(session, workspace_id, decision.follow_up_of)
    contact_id = None
    if sender:
        contact = await contact_by_email(session=session, workspace_id=workspace_id, email=sender)
        if contact is not None and contact.customer_id == decision.customer_id:
            contact_id = contact.id
    ticket = await open_customer_ticket(
        session=session,
        workspace_id=workspace_id,
        title=parsed.subject,
        description=reply_text,
        customer_id=decision.customer_id,
        contact_id=contact_id,
        requester_email=sender,
        verified=decision.verified,
        label=label,
        at=at,
        hooks=hooks,
        source={"source": "email", **meta},
        follow_up_of=follow_up_of,
        last_message_id=row.message_id,
    )
    return outcome(PROCESSED, ticket)


async def _mark_bounced(
    session: AsyncSession, workspace_id: int, message_id: str, at: datetime
) -> bool:
    """Flag our outgoing mail with this Message-ID as bounced; False when it is not ours."""
    stmt = select(EmailMessage).where(
        EmailMessage.workspace_id == workspace_id,
        EmailMessage.direction == "out",
        EmailMessage.message_id == message_id,
    )
    sent = (await session.exec(stmt)).first()
    if sent is None:
        return False
    sent.status = BOUNCED
    sent.outcome = clean_text(f"bounced (reported {at.isoformat()})", OUTCOME_MAX)
    session.add(sent)
    return True
