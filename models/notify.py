"""Who hears about a customer's reply, and how a burst of replies is folded into one digest.

The caller (mail or customer-channel processing) has already written the reply to the ticket's
history; this module records nothing of its own but queues outbox rows in the caller's
transaction:

- assigned to an active member with a Slack account: a DM to them with the new text, and a
  copy in the card's thread;
- unassigned: a post in the card's thread asking who takes it;
- assigned to someone deactivated or unknown: a post in the triage channel asking who takes
  it, and the thread copy.

Noise folding: when a ticket gets more than `fold_updates` customer replies within
`fold_minutes`, the later ones are not DMed one by one. The first of them opens a digest row
due at the end of its window (`fold_minutes` later); the next ones grow its count while it
waits. The history and the thread copies keep everything.

The messages themselves come from renderers the caller passes in (Block Kit lives in
handlers/blocks), so this module deals in plain dicts only. Every row's idempotency key
derives from the reply's event id: processing the same reply twice queues nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.outbox import (
    ReplyDigest,
    SlackCall,
    enqueue,
    parse_payload,
    replace_pending_payload,
    slack_call,
)
from models.sql import dialect
from models.tables import (
    Customer,
    EventKind,
    Member,
    OutboxMessage,
    OutboxStatus,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
    Workspace,
)

# A Slack message as the renderers return it: {"text": fallback, "blocks": [...]}.
Message = dict[str, Any]


class Audience(StrEnum):
    """Who a customer reply is for."""

    ASSIGNEE = "assignee"  # an active member with a Slack account
    UNASSIGNED = "unassigned"
    UNREACHABLE = "unreachable"  # assigned, but deactivated or without a Slack account


@dataclass(frozen=True)
class ReplyNotice:
    """The plain facts a renderer turns into a message."""

    ticket_id: int
    ticket_number: int
    title: str
    customer: str
    text: str  # only the new text of this reply
    event_id: int
    at: datetime
    assignee_slack_id: str | None = None
    assignee_name: str = ""
    status: str = TicketStatus.OPEN  # the ticket's status when the reply came


@dataclass(frozen=True)
class Digest:
    """A folded burst: `count` replies not DMed one by one, summarised when `due`."""

    key: str
    count: int
    due: datetime
    event_ids: tuple[int, ...]
    row_id: int | None = None  # the pending digest row to grow, None to open one


@dataclass(frozen=True)
class ReplyPlan:
    """What to queue for one reply."""

    notice: ReplyNotice
    audience: Audience
    dm: bool
    digest: Digest | None
    fold_minutes: int
    triage_channel: str | None
    reason: str | None = None  # why the assignee cannot be reached (UNREACHABLE only)


@dataclass(frozen=True)
class ReplyRenderers:
    """Message builders supplied by the caller (pure functions, no I/O)."""

    dm: Callable[[ReplyNotice], Message]
    # (notice, ask_to_take): the thread copy; unassigned tickets ask who takes them.
    thread: Callable[[ReplyNotice, bool], Message]
    # (notice, reason): the triage post when the assignee cannot be reached.
    triage: Callable[[ReplyNotice, str], Message]
    # (notice of the latest reply, count, minutes): the digest DM.
    digest: Callable[[ReplyNotice, int, int], Message]


def ordering_key(ticket_id: int) -> str:
    """Everything about one ticket goes out in order."""
    return f"ticket:{ticket_id}"


def digest_ordering_key(ticket_id: int) -> str:
    """Digests wait for their window apart from the ticket's line (never blocking it)."""
    return f"ticket:{ticket_id}:digest"


def should_fold(*, recent_replies: int, fold_updates: int, digest_open: bool) -> bool:
    """Fold this reply into a digest instead of a DM?

    `recent_replies` counts this reply and the ticket's other customer replies within the
    window. The first `fold_updates` are DMed; any beyond, or any while a digest is still
    collecting, are folded.
    """
    return digest_open or recent_replies > fold_updates


def unreachable_reason(member: Member | None) -> str | None:
    """Why an assignee cannot get a DM, or None when they can."""
    if member is None:
        return "its assignee is no longer a member"
    who = f"its assignee {member.name}" if member.name else "its assignee"
    if not member.active:
        return f"{who} is deactivated"
    if not member.slack_user_id:
        return f"{who} has no Slack account"
    return None


async def _recent_reply_count(
    session: AsyncSession, *, ticket_id: int, event_id: int, since: datetime
) -> int:
    stmt = select(sa.func.count()).where(
        col(TicketEvent.ticket_id) == ticket_id,
        col(TicketEvent.kind) == EventKind.CUSTOMER_REPLY,
        col(TicketEvent.id) < event_id,
        col(TicketEvent.created_at) > since,
    )
    others = int((await session.exec(stmt)).one())
    return others + 1


async def _open_digest(
    session: AsyncSession, *, ticket_id: int, at: datetime
) -> OutboxMessage | None:
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.ordering_key == digest_ordering_key(ticket_id),
            OutboxMessage.status == OutboxStatus.PENDING,
            col(OutboxMessage.lease_until).is_(None),
            col(OutboxMessage.next_attempt_at) > at,
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def plan_customer_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    event: TicketEvent,
    text: str,
    at: datetime,
    fold_updates: int,
    fold_minutes: int,
) -> ReplyPlan:
    """Decide who hears about `event` (a customer reply already in the history) and how."""
    assert ticket.id is not None and event.id is not None
    workspace = await session.get(Workspace, workspace_id)
    customer = await session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    member = await session.get(Member, ticket.assignee_id) if ticket.assignee_id else None
    if ticket.assignee_id is None:
        audience = Audience.UNASSIGNED
    elif unreachable_reason(member) is not None:
        audience = Audience.UNREACHABLE
    else:
        audience = Audience.ASSIGNEE
    notice = ReplyNotice(
        ticket_id=ticket.id,
        ticket_number=ticket.number,
        title=ticket.title,
        customer=(customer.name if customer else None) or ticket.requester_email or "A customer",
        text=text,
        event_id=event.id,
        at=at,
        assignee_slack_id=member.slack_user_id if member else None,
        assignee_name=member.name if member else "",
        status=ticket.status,
    )
    dm, digest = False, None
    if audience is Audience.ASSIGNEE:
        window = timedelta(minutes=fold_minutes)
        open_row = await _open_digest(session, ticket_id=ticket.id, at=at)
        recent = await _recent_reply_count(
            session, ticket_id=ticket.id, event_id=event.id, since=at - window
        )
        if not should_fold(
            recent_replies=recent, fold_updates=fold_updates, digest_open=open_row is not None
        ):
            dm = True
        elif open_row is not None and open_row.id is not None:
            stored = parse_payload(open_row.kind, open_row.payload)
            grown = stored.digest if isinstance(stored, SlackCall) else None
            folded = grown.event_ids if grown is not None else ()
            ids = folded if event.id in folded else (*folded, event.id)
            digest = Digest(
                key=open_row.idempotency_key,
                count=len(ids),
                due=open_row.next_attempt_at,
                event_ids=ids,
                row_id=open_row.id,
            )
        else:
            digest = new_digest(
                ticket_id=ticket.id, event_id=event.id, at=at, fold_minutes=fold_minutes
            )
    return ReplyPlan(
        notice=notice,
        audience=audience,
        dm=dm,
        digest=digest,
        fold_minutes=fold_minutes,
        triage_channel=workspace.triage_channel if workspace else None,
        reason=unreachable_reason(member) if audience is Audience.UNREACHABLE else None,
    )


def _post(channel: str, message: Message) -> SlackCall:
    return slack_call("chat.postMessage", channel=channel, **message)


def _digest_payload(
    notice: ReplyNotice, digest: Digest, render: ReplyRenderers, minutes: int
) -> SlackCall:
    assert notice.assignee_slack_id is not None
    payload = _post(notice.assignee_slack_id, render.digest(notice, digest.count, minutes))
    # Kept with the row so a later reply can grow it (and the same reply never counts twice).
    return replace(payload, digest=ReplyDigest(notice.ticket_id, digest.event_ids))


async def queue_customer_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    plan: ReplyPlan,
    render: ReplyRenderers,
    at: datetime,
) -> list[int]:
    """Queue the plan's messages in the caller's transaction; returns the new row ids."""
    notice = plan.notice
    order = ordering_key(notice.ticket_id)
    base = f"notify:reply:{notice.event_id}"
    queued: list[int | None] = []

    async def put(key: str, payload: SlackCall, **kwargs: Any) -> None:
        row_id = await enqueue(
            session=session,
            workspace_id=workspace_id,
            key=key,
            payload=payload,
            at=at,
            **kwargs,
        )
        queued.append(row_id)

    if plan.dm and notice.assignee_slack_id:
        await put(
            f"{base}:dm", _post(notice.assignee_slack_id, render.dm(notice)), ordering_key=order
        )
    if plan.reason is not None and plan.triage_channel:
        triage = _post(plan.triage_channel, render.triage(notice, plan.reason))
        await put(f"{base}:triage", triage, ordering_key=order)
    # The thread's channel and ts are filled in at delivery, from the card (or triage).
    thread = replace(
        slack_call(
            "chat.postMessage", **render.thread(notice, plan.audience is Audience.UNASSIGNED)
        ),
        in_thread_of=notice.ticket_id,
    )
    await put(f"{base}:thread", thread, ordering_key=order)

    digest = plan.digest
    if digest is not None and notice.assignee_slack_id:
        if digest.row_id is not None:
            grown = await replace_pending_payload(
                session=session,
                row_id=digest.row_id,
                payload=_digest_payload(notice, digest, render, plan.fold_minutes),
                not_before_after=at,
            )
            if grown:
                return [row_id for row_id in queued if row_id is not None]
            # The digest left while we looked: this reply opens the next one.
            digest = new_digest(
                ticket_id=notice.ticket_id,
                event_id=notice.event_id,
                at=at,
                fold_minutes=plan.fold_minutes,
            )
        await put(
            digest.key,
            _digest_payload(notice, digest, render, plan.fold_minutes),
            ordering_key=digest_ordering_key(notice.ticket_id),
            not_before=digest.due,
        )
    return [row_id for row_id in queued if row_id is not None]


def new_digest(*, ticket_id: int, event_id: int, at: datetime, fold_minutes: int) -> Digest:
    """A digest opened by reply `event_id`, due when its window closes."""
    return Digest(
        key=f"notify:digest:{ticket_id}:{event_id}",
        count=1,
        due=at + timedelta(minutes=fold_minutes),
        event_ids=(event_id,),
    )


async def notify_customer_reply(
    *,
    session: AsyncSession,
    workspace_id: int,
    ticket: Ticket,
    event: TicketEvent,
    text: str,
    at: datetime,
    fold_updates: int,
    fold_minutes: int,
    render: ReplyRenderers,
) -> ReplyPlan:
    """Plan and queue the notifications for a customer reply; returns the plan."""
    plan = await plan_customer_reply(
        session=session,
        workspace_id=workspace_id,
        ticket=ticket,
        event=event,
        text=text,
        at=at,
        fold_updates=fold_updates,
        fold_minutes=fold_minutes,
    )
    await queue_customer_reply(
        session=session, workspace_id=workspace_id, plan=plan, render=render, at=at
    )
    return plan


async def admin_slack_ids(
    *, session: AsyncSession, workspace_id: int, extra: Iterable[str] = ()
) -> list[str]:
    """Slack ids of the workspace's active admins, plus `extra` (DOCKET_ADMINS), sorted."""
    stmt = select(Member.slack_user_id).where(
        Member.workspace_id == workspace_id,
        Member.role == Role.ADMIN,
        col(Member.active).is_(True),
        col(Member.slack_user_id).is_not(None),
    )
    found = {str(uid) for uid in (await session.exec(stmt)).all() if uid}
    found.update(uid for uid in extra if uid)
    return sorted(found)
