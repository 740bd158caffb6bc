"""The outbox: side effects (Slack calls, emails) stored with the change that causes them.

A row is written in the caller's transaction, so a ticket and its announcement are one fact.
The worker in jobs/outbox.py claims due rows with a lease, delivers them, and records the
outcome. Rows sharing an `ordering_key` (e.g. one ticket) are delivered strictly in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import dialect, insert_ignore
from models.tables import OutboxMessage, OutboxStatus

# Kinds of outbox rows. Payloads:
#   slack: {"method": str, "args": dict, "card_of_ticket": id?, "thread_of_ticket": id?,
#           "store_card_for_ticket": id?}
#   email: {"to": str, "raw": str (the RFC 5322 message), "email_id": int}
#   upload: {"channel": str, "filename": str, "content_b64": str, "initial_comment": str, ...}
SLACK = "slack"
EMAIL = "email"
UPLOAD = "upload"


async def enqueue(
    *,
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    key: str,
    payload: dict[str, Any],
    at: datetime,
    ordering_key: str | None = None,
) -> int | None:
    """Queue a side effect; a second call with the same `key` is a no-op (returns None)."""
    new_id = await insert_ignore(
        session,
        OutboxMessage,
        {
            "workspace_id": workspace_id,
            "idempotency_key": key,
            "kind": kind,
            "ordering_key": ordering_key,
            "payload": payload,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        },
        conflict=["idempotency_key"],
    )
    session.info["outbox_dirty"] = True
    return new_id


def slack_call(method: str, **args: Any) -> dict[str, Any]:
    """The payload of a Slack Web API call."""
    return {"method": method, "args": args}


async def claim_due(
    *, session: AsyncSession, now: datetime, owner: str, limit: int = 50, lease_seconds: int = 120
) -> list[OutboxMessage]:
    """Lease up to `limit` due rows, each the oldest pending one of its ordering key.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` keeps replicas from claiming the same row; the lease
    keeps a crashed worker's rows from being stuck for longer than `lease_seconds`.
    """
    earlier = sa.orm.aliased(OutboxMessage)
    head_of_line = ~sa.exists().where(
        col(earlier.ordering_key) == col(OutboxMessage.ordering_key),
        col(earlier.status) == OutboxStatus.PENDING,
        col(earlier.id) < col(OutboxMessage.id),
    )
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            col(OutboxMessage.next_attempt_at) <= now,
            sa.or_(col(OutboxMessage.lease_until).is_(None), col(OutboxMessage.lease_until) < now),
            sa.or_(col(OutboxMessage.ordering_key).is_(None), head_of_line),
        )
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
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


async def next_due_at(*, session: AsyncSession) -> datetime | None:
    """When the earliest pending row becomes due (for the worker's sleep)."""
    stmt = select(sa.func.min(OutboxMessage.next_attempt_at)).where(
        OutboxMessage.status == OutboxStatus.PENDING
    )
    return (await session.exec(stmt)).first()


async def _owned(session: AsyncSession, row_id: int, owner: str) -> OutboxMessage | None:
    row = await session.get(OutboxMessage, row_id, with_for_update=dialect(session) == "postgresql")
    if row is None or row.status != OutboxStatus.PENDING or row.lease_owner != owner:
        return None
    return row


async def mark_delivered(
    *, session: AsyncSession, row_id: int, owner: str, at: datetime, result: dict[str, Any] | None
) -> OutboxMessage | None:
    row = await _owned(session, row_id, owner)
    if row is None:
        return None
    row.status = OutboxStatus.DELIVERED
    row.delivered_at = at
    row.attempts += 1
    row.result = result
    row.lease_owner = None
    row.lease_until = None
    session.add(row)
    return row


async def mark_retry(
    *, session: AsyncSession, row_id: int, owner: str, error: str, retry_at: datetime
) -> None:
    row = await _owned(session, row_id, owner)
    if row is None:
        return
    row.attempts += 1
    row.last_error = error[:2000]
    row.next_attempt_at = retry_at
    row.lease_owner = None
    row.lease_until = None
    session.add(row)


async def mark_dead(*, session: AsyncSession, row_id: int, owner: str | None, error: str) -> bool:
    row = await session.get(OutboxMessage, row_id)
    if row is None or row.status != OutboxStatus.PENDING:
        return False
    if owner is not None and row.lease_owner != owner:
        return False
    row.status = OutboxStatus.DEAD
    row.attempts += 1
    row.last_error = error[:2000]
    row.lease_owner = None
    row.lease_until = None
    session.add(row)
    return True


async def list_dead(
    *, session: AsyncSession, workspace_id: int, limit: int = 50
) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.workspace_id == workspace_id, OutboxMessage.status == OutboxStatus.DEAD
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def retry_dead(
    *, session: AsyncSession, workspace_id: int, row_id: int | None, at: datetime
) -> int:
    """Put dead rows (one, or all when row_id is None) back in the queue; returns how many."""
    stmt = (
        sa.update(OutboxMessage)
        .where(
            col(OutboxMessage.workspace_id) == workspace_id,
            col(OutboxMessage.status) == OutboxStatus.DEAD,
        )
        .values(status=OutboxStatus.PENDING, next_attempt_at=at, attempts=0)
    )
    if row_id is not None:
        stmt = stmt.where(col(OutboxMessage.id) == row_id)
    result = await session.execute(stmt)
    session.info["outbox_dirty"] = True
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
