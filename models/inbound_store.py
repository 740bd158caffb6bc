"""Stored inbound mail: keep the raw message first, then lease it to the mail worker and settle it.

The SMTP receiver calls `store_received` before it answers 250, so a mail Docket accepted is
never lost. The raw bytes go in pieces (`EmailChunk`, a few hundred KB each) read from the
receiver's spool, so no layer holds a whole-message copy; `stored_raw` joins them again for
the mail worker (mail stored before that keeps its bytes in `EmailMessage.raw`). The worker
leases rows with `claim_received`; a failure is recorded on the row and retried a few times
(`record_failure`), then the mail is quarantined for an admin, raw bytes and error kept.
Turning a mail into ticket changes is models.inbound_apply.

Every stored mail ends in one status with its reason in `outcome`:
received (waiting), processed, ignored, held (unknown sender, for an admin), quarantined.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import dialect
from models.tables import EmailChunk, EmailMessage, EventKind, Ticket, TicketEvent

RECEIVED = "received"
PROCESSED = "processed"
IGNORED = "ignored"
HELD = "held"
QUARANTINED = "quarantined"
# Outgoing mail (models.replies) uses these.
QUEUED = "queued"
BOUNCED = "bounced"

FINAL_STATUSES = (PROCESSED, IGNORED, HELD, QUARANTINED)
MAX_ATTEMPTS = 4
MAIL_TEXT_MAX = 200_000  # characters of a mail's text kept with it
OUTCOME_MAX = 2000
# Raw bytes are stored in pieces of this size: what one insert holds in memory.
CHUNK_BYTES = 256 * 1024
_PIECES_PER_QUERY = 4


def clean_text(text: str | None, limit: int) -> str:
    """Text fit for both databases: no NUL, no lone surrogates, at most `limit` characters."""
    if not text:
        return ""
    text = text.replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def clean_opt(text: str | None, limit: int) -> str | None:
    return clean_text(text, limit) or None


# --------------------------------------------------------------------------- storage


async def store_received(
    *,
    session: AsyncSession,
    workspace_id: int,
    raw: bytes | IO[bytes],
    envelope_from: str | None,
    envelope_to: Sequence[str],
    at: datetime,
) -> int:
    """Keep a mail exactly as received (status "received") and wake the mail worker.

    `raw` is the message, or a file positioned at its start (the receiver's spool): it is
    read and stored `CHUNK_BYTES` at a time, so storing holds one piece in memory, never the
    whole message. Nothing here parses the message: storing must not fail on what a sender
    wrote.
    """
    row = EmailMessage(
        workspace_id=workspace_id,
        direction="in",
        status=RECEIVED,
        envelope_from=clean_opt(envelope_from, 320),
        envelope_to=clean_text(", ".join(envelope_to), 2000),
        raw=b"",
        received_at=at,
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    source = io.BytesIO(raw) if isinstance(raw, bytes | bytearray) else raw
    size = seq = 0
    while piece := source.read(CHUNK_BYTES):
        # Core, not ORM objects: the session would keep every piece until the commit.
        await session.execute(sa.insert(EmailChunk).values(email_id=row.id, seq=seq, data=piece))
        size += len(piece)
        seq += 1
    row.size = size
    session.add(row)
    await session.flush()
    session.info["mail_dirty"] = True
    return row.id


async def raw_pieces(
    *, session: AsyncSession, workspace_id: int, email_id: int
) -> AsyncIterator[bytes]:
    """A received mail's bytes in order, a few pieces per query (nothing for no such mail).

    Mail stored before pieces existed comes as one piece, its `raw`.
    """
    old = (
        await session.exec(
            select(EmailMessage.raw).where(
                EmailMessage.id == email_id, EmailMessage.workspace_id == workspace_id
            )
        )
    ).first()
    if old is None:
        return
    if old:
        yield bytes(old)
        return
    seq = -1
    while True:
        batch = (
            await session.exec(
                select(EmailChunk.seq, EmailChunk.data)
                .where(EmailChunk.email_id == email_id, col(EmailChunk.seq) > seq)
                .order_by(col(EmailChunk.seq))
                .limit(_PIECES_PER_QUERY)
            )
        ).all()
        for _, data in batch:
            yield bytes(data)
        if len(batch) < _PIECES_PER_QUERY:
            return
        seq = batch[-1][0]


async def stored_raw(*, session: AsyncSession, workspace_id: int, email_id: int) -> bytes | None:
    """A received mail's bytes exactly as they arrived (None when there is no such mail)."""
    exists = (
        await session.exec(
            select(EmailMessage.id).where(
                EmailMessage.id == email_id, EmailMessage.workspace_id == workspace_id
            )
        )
    ).first()
    if exists is None:
        return None
    pieces = raw_pieces(session=session, workspace_id=workspace_id, email_id=email_id)
    return b"".join([piece async for piece in pieces])


async def claim_received(
    *,
    session: AsyncSession,
    workspace_id: int,
    now: datetime,
    limit: int = 10,
    lease_seconds: int = 300,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[int]:
    """Lease due "received" mails, oldest first, and return their ids.

    While a mail is "received", `processed_at` is the time before which no worker may take it
    (a lease, or the back-off after a failure), as for stored Slack events. A mail whose
    attempts are used up here (its worker died mid-way every time) is quarantined instead.
    """
    stmt = (
        select(EmailMessage)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.direction == "in",
            EmailMessage.status == RECEIVED,
            sa.or_(col(EmailMessage.processed_at).is_(None), col(EmailMessage.processed_at) <= now),
        )
        .order_by(col(EmailMessage.id))
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids: list[int] = []
    for row in (await session.exec(stmt)).all():
        assert row.id is not None
        if row.attempts >= max_attempts:
            row.status = QUARANTINED
            row.outcome = clean_text(
                f"gave up after {row.attempts} attempts; last: {row.outcome or 'worker stopped'}",
                OUTCOME_MAX,
            )
            row.processed_at = now
        else:
            row.attempts += 1
            row.processed_at = now + timedelta(seconds=lease_seconds)
            ids.append(row.id)
        session.add(row)
    await session.flush()
    return ids


async def next_retry_at(*, session: AsyncSession, workspace_id: int) -> datetime | None:
    """When the earliest waiting mail may be taken (for the worker's sleep)."""
    stmt = select(sa.func.min(EmailMessage.processed_at)).where(
        EmailMessage.workspace_id == workspace_id,
        EmailMessage.direction == "in",
        EmailMessage.status == RECEIVED,
    )
    return (await session.exec(stmt)).first()


def retry_delay(attempts: int) -> timedelta:
    """Back-off after a failed attempt: 30 s, 2 min, 8 min, ..."""
    return timedelta(seconds=30 * 4 ** max(0, attempts - 1))


async def record_failure(
    *,
    session: AsyncSession,
    email_id: int,
    error: str,
    at: datetime,
    max_attempts: int = MAX_ATTEMPTS,
) -> str:
    """Note a failed attempt; quarantine the mail once its attempts are used up.

    Returns the mail's status afterwards ("received" while it will be retried).
    """
    row = await session.get(EmailMessage, email_id)
    if row is None:
        return QUARANTINED
    if row.status != RECEIVED:
        return row.status
    if row.attempts >= max_attempts:
        row.status = QUARANTINED
        row.outcome = clean_text(f"failed {row.attempts} times; last error: {error}", OUTCOME_MAX)
        row.processed_at = at
    else:
        row.outcome = clean_text(f"attempt {row.attempts} failed: {error}", OUTCOME_MAX)
        row.processed_at = at + retry_delay(row.attempts)
        session.info["mail_dirty"] = True
    session.add(row)
    await session.flush()
    return row.status


async def list_mail(
    *,
    session: AsyncSession,
    workspace_id: int,
    statuses: Sequence[str] = (QUARANTINED, HELD),
    limit: int = 20,
) -> list[EmailMessage]:
    """Inbound mails in these statuses, newest first (what admins look at)."""
    stmt = (
        select(EmailMessage)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.direction == "in",
            col(EmailMessage.status).in_(list(statuses)),
        )
        .order_by(col(EmailMessage.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def release_mail(
    *, session: AsyncSession, workspace_id: int, email_id: int, at: datetime
) -> bool:
    """Put a quarantined mail back in the queue (an admin fixed the cause); False if not one."""
    row = await session.get(EmailMessage, email_id)
    if row is None or row.workspace_id != workspace_id or row.status != QUARANTINED:
        return False
    row.status = RECEIVED
    row.attempts = 0
    row.processed_at = at
    session.add(row)
    session.info["mail_dirty"] = True
    return True


# --------------------------------------------------------------------------- the whole message


@dataclass(frozen=True)
class FullMessage:
    """A customer message as it arrived, for the "Show full message" view."""

    ticket_id: int
    ticket_number: int
    title: str
    sender: str
    subject: str
    text: str  # the whole mail in text form (HTML converted), or the message's own text
    from_mail: bool
    truncated: bool = False  # the mail was longer than Docket keeps


async def full_message(
    *, session: AsyncSession, workspace_id: int, event_id: int
) -> FullMessage | None:
    """The whole message behind a customer-reply event, or None when there is none to show.

    For a mail that is every line of its text, quoted history and signature included (the
    event itself holds only the new text); for a message from a customer's Slack channel it
    is the event's own text.
    """
    event = await session.get(TicketEvent, event_id)
    if event is None or event.workspace_id != workspace_id:
        return None
    if event.kind not in (EventKind.CUSTOMER_REPLY, EventKind.CREATED):
        return None
    ticket = await session.get(Ticket, event.ticket_id)
    if ticket is None or ticket.workspace_id != workspace_id:
        return None
    mail = await session.get(EmailMessage, event.email_id) if event.email_id else None
    if mail is not None and mail.workspace_id != workspace_id:
        mail = None
    assert ticket.id is not None
    return FullMessage(
        ticket_id=ticket.id,
        ticket_number=ticket.number,
        title=ticket.title,
        sender=event.actor_label or (mail.from_addr if mail else None) or "the customer",
        subject=(mail.subject or "") if mail else "",
        text=(mail.text or "") if mail is not None and mail.text else event.body,
        from_mail=mail is not None,
        truncated=mail is not None and len(mail.text or "") >= MAIL_TEXT_MAX,
    )
