"""The outbox: side effects (Slack calls, emails) stored with the change that causes them.

A row is written in the caller's transaction, so a ticket and its announcement are one fact.
The worker in jobs/outbox.py claims due rows with a lease, delivers them, and records the
outcome. Rows sharing an `ordering_key` (e.g. one ticket) are delivered strictly in order:
only the oldest pending row of a key (the head of its line) can be claimed, and it stays the
head while it waits for a retry.

Lanes: a person's DM is in the urgent lane (claimed first) and is ordered per person, not per
ticket; everything else is ordered by the caller's key (a ticket's card is posted before it is
updated). A newer update of a card supersedes its pending older ones (marked delivered with
`superseded_by`, never sent); a thread copy queued within THREAD_MERGE_SECONDS of a pending one
for the same thread is folded into it (marked `merged_into`). Only rows no worker holds are
superseded or rewritten, so nothing is lost or sent twice.

Replicas: on PostgreSQL claims use `FOR UPDATE SKIP LOCKED` and a lease, so two workers never
hold the same row. On SQLite every transaction takes the write lock first (BEGIN IMMEDIATE),
so claims are serialised; Docket runs one delivering process there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import dialect, insert_ignore, insert_ignore_many
from models.tables import OutboxMessage, OutboxStatus

# Kinds of outbox rows; each has a typed payload below, stored as JSON in the row.
SLACK = "slack"
EMAIL = "email"
UPLOAD = "upload"


class PayloadError(ValueError):
    """A stored payload that cannot be delivered as it is; the message says why."""


@dataclass(frozen=True)
class ReplyDigest:
    """Kept with a digest DM so a later reply can grow it (and never count twice)."""

    ticket_id: int
    event_ids: tuple[int, ...]


@dataclass(frozen=True)
class SlackCall:
    """A Slack Web API call; where it goes may be settled at delivery from a ticket's card.

    - `posts_card_of`: this post is the ticket's card; the worker stores where it landed.
    - `updates_card_of`: chat.update of the ticket's card (channel and ts filled in).
    - `in_thread_of`: a post in the card's thread (the triage channel when it has no card).
    - `alert_for`: an admin alert about that dead row (an alert that dies alerts nobody).
    """

    method: str
    args: dict[str, Any] = field(default_factory=dict)
    posts_card_of: int | None = None
    updates_card_of: int | None = None
    in_thread_of: int | None = None
    alert_for: int | None = None
    digest: ReplyDigest | None = None

    kind: ClassVar[str] = SLACK


@dataclass(frozen=True)
class EmailSend:
    """An RFC 5322 message for the mail relay (`raw`, or `raw_b64` for 8-bit data)."""

    to: tuple[str, ...]
    raw: str | None = None
    raw_b64: str | None = None
    sender: str | None = None
    email_id: int | None = None  # the stored outbound EmailMessage
    alert_for: int | None = None

    kind: ClassVar[str] = EMAIL


@dataclass(frozen=True)
class FileUpload:
    """A file shared in a channel (or in a ticket card's thread: `in_thread_of`)."""

    filename: str
    content_b64: str
    channel: str | None = None
    title: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    in_thread_of: int | None = None
    alert_for: int | None = None

    kind: ClassVar[str] = UPLOAD


OutboxPayload = SlackCall | EmailSend | FileUpload


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PayloadError(f"{key} is not a row or ticket id: {value!r}") from None


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None or value == "" else str(value)


def payload_json(payload: OutboxPayload) -> dict[str, Any]:
    """The JSON stored in the row (the keys rows have always had)."""
    data: dict[str, Any]
    if isinstance(payload, SlackCall):
        data = {"method": payload.method, "args": dict(payload.args)}
        optional: dict[str, Any] = {
            "store_card_for_ticket": payload.posts_card_of,
            "card_of_ticket": payload.updates_card_of,
            "thread_of_ticket": payload.in_thread_of,
        }
        if payload.digest is not None:
            optional["digest"] = {
                "ticket_id": payload.digest.ticket_id,
                "event_ids": list(payload.digest.event_ids),
            }
    elif isinstance(payload, EmailSend):
        data = {"to": list(payload.to)}
        optional = {
            "from": payload.sender,
            "raw": payload.raw,
            "raw_b64": payload.raw_b64,
            "email_id": payload.email_id,
        }
    else:
        data = {"filename": payload.filename, "content_b64": payload.content_b64}
        optional = {
            "channel": payload.channel,
            "title": payload.title,
            "initial_comment": payload.initial_comment,
            "thread_ts": payload.thread_ts,
            "thread_of_ticket": payload.in_thread_of,
        }
    optional["alert_for"] = payload.alert_for
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def parse_payload(kind: str, data: Mapping[str, Any] | None) -> OutboxPayload:
    """Read a stored payload; PayloadError says what is wrong with it."""
    data = data or {}
    if kind == SLACK:
        method = _opt_str(data, "method")
        if not method:
            raise PayloadError("no Slack method in the payload")
        args = data.get("args")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise PayloadError("the Slack call's args are not an object")
        raw_digest = data.get("digest")
        digest = None
        if isinstance(raw_digest, Mapping):
            digest = ReplyDigest(
                ticket_id=int(raw_digest.get("ticket_id") or 0),
                event_ids=tuple(int(e) for e in raw_digest.get("event_ids") or ()),
            )
        return SlackCall(
            method=method,
            args=dict(args),
            posts_card_of=_opt_int(data, "store_card_for_ticket"),
            updates_card_of=_opt_int(data, "card_of_ticket"),
            in_thread_of=_opt_int(data, "thread_of_ticket"),
            alert_for=_opt_int(data, "alert_for"),
            digest=digest,
        )
    if kind == EMAIL:
        to = data.get("to")
        recipients = (to,) if isinstance(to, str) else tuple(str(a) for a in to or ())
        return EmailSend(
            to=recipients,
            raw=_opt_str(data, "raw"),
            raw_b64=_opt_str(data, "raw_b64"),
            sender=_opt_str(data, "from"),
            email_id=_opt_int(data, "email_id"),
            alert_for=_opt_int(data, "alert_for"),
        )
    if kind == UPLOAD:
        return FileUpload(
            filename=_opt_str(data, "filename") or "",
            content_b64=str(data.get("content_b64") or ""),
            channel=_opt_str(data, "channel"),
            title=_opt_str(data, "title"),
            initial_comment=_opt_str(data, "initial_comment"),
            thread_ts=_opt_str(data, "thread_ts"),
            in_thread_of=_opt_int(data, "thread_of_ticket"),
            alert_for=_opt_int(data, "alert_for"),
        )
    raise PayloadError(f"unknown outbox kind {kind!r}")


ERROR_LIMIT = 2000


@dataclass(frozen=True)
class Queued:
    """One side effect for `enqueue_many`: its idempotency key, payload and line."""

    key: str
    payload: OutboxPayload
    ordering_key: str | None = None


def _row(
    workspace_id: int, item: Queued, at: datetime, not_before: datetime | None
) -> dict[str, Any]:
    payload = item.payload
    return {
        "workspace_id": workspace_id,
        "idempotency_key": item.key,
        "kind": payload.kind,
        "ordering_key": delivery_order(payload, item.ordering_key, delayed=bool(not_before)),
        "target": delivery_target(payload),
        "payload": payload_json(payload),
        "status": OutboxStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": not_before or at,
        "created_at": at,
        "lane": lane_of(payload),
        "coalesce_key": coalesce_key_of(payload) if not_before is None else None,
    }


async def enqueue(
    *,
    session: AsyncSession,
    workspace_id: int,
    key: str,
    payload: OutboxPayload,
    at: datetime,
    kind: str | None = None,
    ordering_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue a side effect; a second call with the same `key` is a no-op (returns None).

    The row's kind is the payload's (`kind`, when given, must agree). `not_before` delays
    delivery (a digest waits for the end of its window).

    Lanes (see `lane_of`, `delivery_order`, `coalesce_key_of`): a person's DM goes in the
    urgent lane, ordered per person rather than behind its ticket's card updates; a card update
    supersedes the same card's pending updates; a thread copy joins a pending copy for the same
    thread queued within THREAD_MERGE_SECONDS.
    """
    if kind is not None and kind != payload.kind:
        raise ValueError(f"a {type(payload).__name__} payload is not of kind {kind!r}")
    row = _row(workspace_id, Queued(key, payload, ordering_key), at, not_before)
    new_id = await insert_ignore(session, OutboxMessage, row, conflict=["idempotency_key"])
    session.info["outbox_dirty"] = True
    coalesce = row["coalesce_key"]
    if new_id is not None and coalesce is not None:
        if coalesce.startswith(CARD_PREFIX):
            await _supersede(session, workspace_id, coalesce, new_id, at)
        else:
            await _merge_thread_copy(session, workspace_id, coalesce, new_id, row["payload"], at)
    return new_id


async def enqueue_many(
    *, session: AsyncSession, workspace_id: int, items: Sequence[Queued], at: datetime
) -> list[int | None]:
    """Queue many side effects at once; each as `enqueue` would (None for a known key).

    Rows that fold into pending ones (card updates, thread copies) go one by one.
    """
    rows = [_row(workspace_id, item, at, None) for item in items]
    out: list[int | None] = [None] * len(rows)
    plain = [i for i, row in enumerate(rows) if row["coalesce_key"] is None]
    ids = await insert_ignore_many(
        session,
        OutboxMessage,
        [rows[i] for i in plain],
        conflict=["idempotency_key"],
        key="idempotency_key",
    )
    for i, new_id in zip(plain, ids, strict=True):
        out[i] = new_id
    session.info["outbox_dirty"] = True
    for i, item in enumerate(items):
        if rows[i]["coalesce_key"] is not None:
            out[i] = await enqueue(
                session=session,
                workspace_id=workspace_id,
                key=item.key,
                payload=item.payload,
                at=at,
                ordering_key=item.ordering_key,
            )
    return out


# -- lanes and coalescing -------------------------------------------------------------------

LANE_DM = 0  # a person's DM: claimed first, never queued behind cards or channel copies
LANE_BULK = 1  # card posts and updates, channel and thread posts, uploads, email
CARD_PREFIX = "card:"
THREAD_PREFIX = "thread:"
# Thread copies queued for one thread within this many seconds go as one message.
THREAD_MERGE_SECONDS = 30
MERGED_BLOCKS_MAX = 50  # Slack's limit per message
MERGED_TEXT_MAX = 12000
_DM_CHANNEL = ("U", "W", "D")
_MESSAGE_METHODS = ("chat.postMessage", "chat.postEphemeral")


def dm_recipient(payload: OutboxPayload) -> str | None:
    """The person (user or DM channel id) a Slack message is a DM to, else None."""
    if not isinstance(payload, SlackCall) or payload.method not in _MESSAGE_METHODS:
        return None
    if payload.in_thread_of or payload.updates_card_of or payload.posts_card_of:
        return None
    channel = payload.args.get("channel")
    if isinstance(channel, str) and channel.startswith(_DM_CHANNEL):
        return channel
    return None


def lane_of(payload: OutboxPayload) -> int:
    """A person's DM is urgent; everything else waits its turn behind DMs."""
    return LANE_DM if dm_recipient(payload) else LANE_BULK


def delivery_order(
    payload: OutboxPayload, ordering_key: str | None, *, delayed: bool = False
) -> str | None:
    """The line a row waits in: a person's DMs are ordered per person (whatever ticket they
    are about), never behind a card; a delayed row (a digest) keeps its own line so it blocks
    nobody; everything else keeps the caller's key (a ticket's card: posted, then updated)."""
    person = dm_recipient(payload)
    if person is None or delayed:
        return ordering_key
    return f"dm:{person}"[:100]


def coalesce_key_of(payload: OutboxPayload) -> str | None:
    """Rows that may be folded while pending: one card's updates, one ticket thread's copies."""
    if not isinstance(payload, SlackCall):
        return None
    if payload.updates_card_of and payload.method == "chat.update":
        return f"{CARD_PREFIX}{payload.updates_card_of}"
    if payload.in_thread_of and payload.method == "chat.postMessage":
        return f"{THREAD_PREFIX}{payload.in_thread_of}"
    return None


def _waiting(workspace_id: int, coalesce: str, before_id: int) -> list[Any]:
    """Pending rows of `coalesce` older than `before_id` that no worker holds."""
    return [
        col(OutboxMessage.workspace_id) == workspace_id,
        col(OutboxMessage.coalesce_key) == coalesce,
        col(OutboxMessage.status) == OutboxStatus.PENDING,
        col(OutboxMessage.lease_until).is_(None),
        col(OutboxMessage.id) < before_id,
    ]


async def _supersede(
    session: AsyncSession, workspace_id: int, coalesce: str, new_id: int, at: datetime
) -> int:
    """Drop the card's older pending updates: the new one carries the card's latest state."""
    stmt = (
        sa.update(OutboxMessage)
        .where(*_waiting(workspace_id, coalesce, new_id))
        .values(status=OutboxStatus.DELIVERED, delivered_at=at, result={"superseded_by": new_id})
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def merged_payload(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any] | None:
    """One thread message saying both (older first), or None when it would be too long."""
    old_args, new_args = dict(older.get("args") or {}), newer.get("args") or {}
    blocks = [*(old_args.get("blocks") or []), *(new_args.get("blocks") or [])]
    text = "\n".join(t for t in (old_args.get("text"), new_args.get("text")) if t)
    if len(blocks) > MERGED_BLOCKS_MAX or len(text) > MERGED_TEXT_MAX:
        return None
    if blocks:
        old_args["blocks"] = blocks
    old_args["text"] = text
    merged = dict(older)
    merged["args"] = old_args
    return merged


async def _merge_thread_copy(
    session: AsyncSession,
    workspace_id: int,
    coalesce: str,
    new_id: int,
    payload: dict[str, Any],
    at: datetime,
) -> bool:
    """Fold a new thread copy into a pending one for the same thread, queued moments ago.

    The new row stays (its key keeps a retried change from queueing it again), marked as sent
    within the older one; the older one is only rewritten while no worker holds it.
    """
    since = at - timedelta(seconds=THREAD_MERGE_SECONDS)
    stmt = (
        select(OutboxMessage)
        .where(
            *_waiting(workspace_id, coalesce, new_id),
            col(OutboxMessage.created_at) >= since,
            col(OutboxMessage.attempts) == 0,
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    older = (await session.exec(stmt)).first()
    if older is None or older.id is None:
        return False
    merged = merged_payload(older.payload or {}, payload)
    if merged is None:
        return False
    grown = await session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id) == older.id, *_waiting(workspace_id, coalesce, new_id))
        .values(payload=merged)
    )
    if not grown.rowcount:  # type: ignore[attr-defined]
        return False
    await session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id) == new_id)
        .values(status=OutboxStatus.DELIVERED, delivered_at=at, result={"merged_into": older.id})
    )
    return True


def delivery_target(payload: OutboxPayload) -> str | None:
    """The channel (or relay) a row will use, when the payload names it."""
    if isinstance(payload, EmailSend):
        return "email"
    if payload.in_thread_of or (isinstance(payload, SlackCall) and payload.updates_card_of):
        # The card's channel is read at delivery; cards live in a few channels (mostly
        # triage), so these share one target and cannot fill the worker's hands either.
        return "slack:cards"
    channel = payload.args.get("channel") if isinstance(payload, SlackCall) else payload.channel
    if isinstance(channel, str) and channel:
        return f"slack:{channel}"[:100]
    return None


def slack_call(method: str, **args: Any) -> SlackCall:
    """The payload of a Slack Web API call."""
    return SlackCall(method=method, args=args)


async def is_queued(*, session: AsyncSession, key: str) -> bool:
    """Whether a row with this idempotency key exists (whatever its status)."""
    stmt = select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
    return (await session.exec(stmt)).first() is not None


@cache
def _head_of_line() -> Any:
    """True for a row that no older pending row of its ordering key is waiting in front of.

    Built once: the expression is immutable and shared by every statement that uses it."""
    earlier = sa.orm.aliased(OutboxMessage)
    return sa.or_(
        col(OutboxMessage.ordering_key).is_(None),
        ~sa.exists().where(
            col(earlier.ordering_key) == col(OutboxMessage.ordering_key),
            col(earlier.status) == OutboxStatus.PENDING,
            col(earlier.id) < col(OutboxMessage.id),
        ),
    )


async def claim_due(
    *,
    session: AsyncSession,
    workspace_id: int,
    now: datetime,
    owner: str,
    limit: int = 50,
    lease_seconds: float = 120,
    exclude: Collection[int] = (),
    per_target: int | None = None,
    in_hand_targets: Mapping[str, int] | None = None,
) -> list[OutboxMessage]:
    """Lease up to `limit` due rows of one workspace, each the head of its ordering key's line.

    Only the workspace's own rows: a process delivers with its workspace's bot token, so a row
    of another workspace sharing the database is left to that workspace's process.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` keeps replicas from claiming the same row; the lease
    keeps a crashed worker's rows from being stuck for longer than `lease_seconds`. `exclude`
    are rows this worker is still delivering (never claimed twice, even if a lease ran out).
    With `per_target`, at most that many rows per target are in hand at once (counting
    `in_hand_targets`), so rows for a channel Slack paces at one a second leave room for others.
    """
    due = [
        col(OutboxMessage.workspace_id) == workspace_id,
        col(OutboxMessage.status) == OutboxStatus.PENDING,
        col(OutboxMessage.next_attempt_at) <= now,
        sa.or_(col(OutboxMessage.lease_until).is_(None), col(OutboxMessage.lease_until) < now),
        _head_of_line(),
    ]
    if exclude:
        due.append(col(OutboxMessage.id).not_in(list(exclude)))
    stmt = select(OutboxMessage)
    if per_target is None:
        stmt = stmt.where(*due)
    else:
        in_hand = dict(in_hand_targets or {})
        full = [t for t, n in in_hand.items() if n >= per_target]
        if full:
            due.append(
                sa.or_(col(OutboxMessage.target).is_(None), col(OutboxMessage.target).not_in(full))
            )
        rank = (
            sa.func.row_number()
            .over(partition_by=col(OutboxMessage.target), order_by=col(OutboxMessage.id))
            .label("rank")
        )
        ranked = sa.select(col(OutboxMessage.id), col(OutboxMessage.target), rank).where(*due)
        ranked_sq = ranked.subquery()
        # Room left per target; targets with rows in hand get less (a CASE over the few busy ones).
        room: Any = sa.literal(per_target)
        if in_hand:
            room = sa.case(
                *((ranked_sq.c.target == t, per_target - n) for t, n in in_hand.items()),
                else_=per_target,
            )
        chosen = sa.select(ranked_sq.c.id).where(
            sa.or_(ranked_sq.c.target.is_(None), ranked_sq.c.rank <= room)
        )
        # The conditions stay on the outer row too: PostgreSQL re-checks them on a row another
        # replica changed while we waited, which it would not do for the subquery alone.
        stmt = stmt.where(*due, col(OutboxMessage.id).in_(chosen))
    # The urgent lane first (a person's DM), then by age.
    stmt = stmt.order_by(col(OutboxMessage.lane), col(OutboxMessage.id)).limit(limit)
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.exec(stmt)).all())
    until = now + timedelta(seconds=lease_seconds)
    for row in rows:
        row.lease_owner = owner
        row.lease_until = until
        session.add(row)
    await session.flush()
    return rows


async def next_due_at(
    *, session: AsyncSession, workspace_id: int, exclude: Collection[int] = ()
) -> datetime | None:
    """When the workspace's next row could be claimed (for the worker's sleep), or None.

    Only heads of line count (a row queued behind another waits for it, not for the clock),
    and a leased row counts from the end of its lease.
    """
    due = sa.case(
        (
            sa.and_(
                col(OutboxMessage.lease_until).is_not(None),
                col(OutboxMessage.lease_until) > col(OutboxMessage.next_attempt_at),
            ),
            col(OutboxMessage.lease_until),
        ),
        else_=col(OutboxMessage.next_attempt_at),
    )
    stmt = select(sa.func.min(due)).where(
        OutboxMessage.workspace_id == workspace_id,
        OutboxMessage.status == OutboxStatus.PENDING,
        _head_of_line(),
    )
    if exclude:
        stmt = stmt.where(col(OutboxMessage.id).not_in(list(exclude)))
    return (await session.exec(stmt)).first()


async def extend_leases(
    *, session: AsyncSession, row_ids: Collection[int], owner: str, until: datetime
) -> int:
    """Keep the leases of rows still being delivered; returns how many were extended."""
    if not row_ids:
        return 0
    stmt = (
        sa.update(OutboxMessage)
        .where(
            col(OutboxMessage.id).in_(list(row_ids)),
            col(OutboxMessage.lease_owner) == owner,
            col(OutboxMessage.status) == OutboxStatus.PENDING,
        )
        .values(lease_until=until)
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _owned(session: AsyncSession, row_id: int, owner: str) -> OutboxMessage | None:
    row = await session.get(OutboxMessage, row_id, with_for_update=dialect(session) == "postgresql")
    if row is None or row.status != OutboxStatus.PENDING or row.lease_owner != owner:
        return None
    return row


def _unlease(row: OutboxMessage) -> None:
    row.lease_owner = None
    row.lease_until = None


async def _settle(
    session: AsyncSession, row_id: int, owner: str, change: Callable[[OutboxMessage], None]
) -> OutboxMessage | None:
    """Apply `change` to a row this owner still holds and give up its lease; None when the
    row is no longer ours (its lease went elsewhere)."""
    row = await _owned(session, row_id, owner)
    if row is None:
        return None
    change(row)
    _unlease(row)
    session.add(row)
    return row


async def mark_delivered(
    *, session: AsyncSession, row_id: int, owner: str, at: datetime, result: dict[str, Any] | None
) -> OutboxMessage | None:
    """Record a delivery; None when the row is no longer ours (its lease went elsewhere)."""

    def delivered(row: OutboxMessage) -> None:
        row.status = OutboxStatus.DELIVERED
        row.delivered_at = at
        row.attempts += 1
        row.result = result

    return await _settle(session, row_id, owner, delivered)


async def mark_retry(
    *, session: AsyncSession, row_id: int, owner: str, error: str, retry_at: datetime
) -> OutboxMessage | None:
    """Record a failed attempt and when to try again."""

    def failed(row: OutboxMessage) -> None:
        row.attempts += 1
        row.last_error = error[:ERROR_LIMIT]
        row.next_attempt_at = retry_at

    return await _settle(session, row_id, owner, failed)


async def release(
    *, session: AsyncSession, row_id: int, owner: str, retry_at: datetime
) -> OutboxMessage | None:
    """Give a claimed row back without counting an attempt (shutdown, or waiting its turn)."""

    def released(row: OutboxMessage) -> None:
        row.next_attempt_at = max(row.next_attempt_at, retry_at)

    return await _settle(session, row_id, owner, released)


async def mark_dead(
    *, session: AsyncSession, row_id: int, owner: str | None, error: str
) -> OutboxMessage | None:
    """Park a row that will not be delivered (with the reason); None when it is not ours."""
    row = await session.get(OutboxMessage, row_id, with_for_update=dialect(session) == "postgresql")
    if row is None or row.status != OutboxStatus.PENDING:
        return None
    if owner is not None and row.lease_owner != owner:
        return None
    row.status = OutboxStatus.DEAD
    row.attempts += 1
    row.last_error = error[:ERROR_LIMIT]
    _unlease(row)
    session.add(row)
    return row


async def list_dead(
    *, session: AsyncSession, workspace_id: int | None, limit: int = 50
) -> list[OutboxMessage]:
    """Dead rows, newest first (all workspaces when `workspace_id` is None)."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.DEAD)
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    if workspace_id is not None:
        stmt = stmt.where(OutboxMessage.workspace_id == workspace_id)
    return list((await session.exec(stmt)).all())


async def status_counts(*, session: AsyncSession, workspace_id: int | None) -> dict[str, int]:
    """How many rows are pending, delivered and dead."""
    stmt = select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
    if workspace_id is not None:
        stmt = stmt.where(OutboxMessage.workspace_id == workspace_id)
    counts = {status.value: 0 for status in OutboxStatus}
    for status, count in (await session.exec(stmt)).all():
        counts[str(status)] = int(count)
    return counts


async def retry_dead(
    *, session: AsyncSession, workspace_id: int | None, row_id: int | None, at: datetime
) -> int:
    """Put dead rows (one, or all when row_id is None) back in the queue; returns how many.

    A row queued again gets a fresh retry window: `created_at` becomes `at` (the window is
    measured from it) and its attempts start from zero; its last error stays until the next.
    """
    stmt = (
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.DEAD)
        .values(status=OutboxStatus.PENDING, next_attempt_at=at, created_at=at, attempts=0)
    )
    if workspace_id is not None:
        stmt = stmt.where(col(OutboxMessage.workspace_id) == workspace_id)
    if row_id is not None:
        stmt = stmt.where(col(OutboxMessage.id) == row_id)
    result = await session.execute(stmt)
    session.info["outbox_dirty"] = True
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def replace_pending_payload(
    *, session: AsyncSession, row_id: int, payload: OutboxPayload, not_before_after: datetime
) -> bool:
    """Rewrite a row that is still waiting (not leased, due after `not_before_after`).

    Used to grow a digest while its window is open; False when the row already left.
    """
    stmt = (
        sa.update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == row_id,
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.lease_until).is_(None),
            col(OutboxMessage.next_attempt_at) > not_before_after,
        )
        .values(payload=payload_json(payload))
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def describe(row: OutboxMessage) -> str:
    """One plain line saying what a row would do, for lists of dead rows."""
    try:
        payload = parse_payload(row.kind, row.payload)
    except (PayloadError, TypeError, ValueError):
        return row.kind
    if isinstance(payload, SlackCall):
        args = payload.args
        target = args.get("channel") or args.get("user_id") or ""
        if payload.in_thread_of:
            target = f"thread of ticket {payload.in_thread_of}"
        elif payload.updates_card_of:
            target = f"card of ticket {payload.updates_card_of}"
        return f"{payload.method} {target}".strip()
    if isinstance(payload, EmailSend):
        return f"email to {', '.join(payload.to)}"
    return f"upload {payload.filename} to {payload.channel or ''}".strip()
