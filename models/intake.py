"""Slack requests that change state: stored before they are acknowledged, processed once.

A slash command, button press, modal submission or shortcut whose work writes is stored
(its verified raw body) in the request's own short transaction, keyed by Slack's own
identifiers so a retried delivery stores nothing new. A worker leases rows per workspace and
runs them; the first transaction of that run which changes the product's state (it queues
outbox rows, marks profit periods stale, or flags `intake_effect`) also marks the row done,
so a crash before that commit leaves the row pending and a crash after it never repeats it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import dialect, insert_ignore_statement, new_ids
from models.tables import SlackIntake

MAX_ATTEMPTS = 5
LEASE_SECONDS = 30
# A delivery is the same request again when its team and key are (Slack's retries).
INTAKE_CONFLICT = ["team_id", "intake_key"]
# session.info flags that mean "this transaction changed the product's state".
EFFECT_FLAGS = ("intake_effect", "outbox_dirty", "profit_dirty", "mail_dirty")


class IntakeLost(Exception):
    """The row was finished by another run (its lease had passed): this run's work is undone."""


@dataclass
class IntakeClaim:
    """The leased row the current task is running; `finished` once its effect committed."""

    intake_id: int
    owner: str
    finished: bool = False


# The stored requests whose work the current task is doing: one, or a batch of quick
# creates done in one transaction (all finished by that transaction's commit).
current_claims: ContextVar[tuple[IntakeClaim, ...]] = ContextVar(
    "current_intake_claims", default=()
)


@dataclass(frozen=True)
class IntakeRequest:
    """What the ingress stores for one request (the body exactly as Slack signed it)."""

    team_id: str
    kind: str
    name: str
    user_id: str
    response_url: str | None
    trigger_id: str | None
    content_type: str
    body: str


def intake_key(kind: str, payload: dict[str, Any], raw_body: str) -> str:
    """A key from Slack's identifiers: the same delivery sent again gives the same key.

    Slack's `trigger_id` is unique per invocation; an action adds its `action_ts`. A body
    without them (a shortcut from an old client) falls back to the hash of the whole body.
    """
    trigger = str(payload.get("trigger_id") or "")
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        trigger += ":" + str(actions[0].get("action_ts") or "")
    if trigger.strip(":"):
        return f"{kind[:16]}:{trigger}"[:128]
    return f"{kind[:16]}:sha256:{hashlib.sha256(raw_body.encode()).hexdigest()}"


async def store_request(
    *,
    session: AsyncSession,
    workspace_id: int,
    request: IntakeRequest,
    key: str,
    at: datetime,
    owner: str | None = None,
    lease_seconds: int = LEASE_SECONDS,
) -> int | None:
    """Store a request before its acknowledgement; None when this delivery was stored before.

    With `owner` the row is stored already leased to that process (it runs it at once).
    """
    (new_id,) = await store_requests(
        session=session,
        workspace_id=workspace_id,
        items=[(request, key, owner, lease_seconds)],
        at=at,
    )
    return new_id


async def claim_requests(
    *,
    session: AsyncSession,
    workspace_id: int,
    owner: str,
    now: datetime,
    limit: int,
    lease_seconds: int = LEASE_SECONDS,
    only: tuple[str, str] | None = None,
    excluding: tuple[str, str] | None = None,
) -> list[SlackIntake]:
    """Lease pending rows of one workspace, oldest first; rows leased by others are skipped.

    A row whose lease has passed (its replica died or hung) is taken again. `only` takes
    just the rows of one (kind, name); `excluding` takes every other row.
    """
    if limit <= 0:
        return []
    stmt = (
        select(SlackIntake)
        .where(
            SlackIntake.workspace_id == workspace_id,
            SlackIntake.status == "pending",
            sa.or_(col(SlackIntake.lease_until).is_(None), col(SlackIntake.lease_until) < now),
        )
        .order_by(col(SlackIntake.id))
        .limit(limit)
    )
    if only is not None:
        stmt = stmt.where(SlackIntake.kind == only[0], SlackIntake.name == only[1])
    if excluding is not None:
        stmt = stmt.where(
            sa.not_(
                sa.and_(
                    col(SlackIntake.kind) == excluding[0], col(SlackIntake.name) == excluding[1]
                )
            )
        )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.exec(stmt)).all())
    for row in rows:
        row.owner = owner
        row.lease_until = now + timedelta(seconds=lease_seconds)
        row.attempts += 1
        session.add(row)
    await session.flush()
    return rows


async def finish_claimed(*, session: AsyncSession, claim: IntakeClaim, at: datetime) -> None:
    """Mark the claimed row done in `session`'s transaction; IntakeLost if it was not ours."""
    await finish_claims(session=session, claims=[claim], at=at)


async def finish_claims(
    *, session: AsyncSession, claims: Sequence[IntakeClaim], at: datetime
) -> None:
    """Mark claimed rows done in `session`'s transaction (one statement per owner);
    IntakeLost if any of them is no longer held by its owner (the caller's work is undone)."""
    table = SlackIntake.__table__  # type: ignore[attr-defined]
    by_owner: dict[str, list[int]] = {}
    for claim in claims:
        by_owner.setdefault(claim.owner, []).append(claim.intake_id)
    for owner, ids in by_owner.items():
        result = await session.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), table.c.status == "pending", table.c.owner == owner)
            .values(status="done", processed_at=at, lease_until=None)
        )
        if result.rowcount != len(set(ids)):  # type: ignore[attr-defined]
            raise IntakeLost(f"intake rows {ids} are no longer all held by {owner}")


def has_effect(info: dict[str, Any]) -> bool:
    """Whether a transaction's session flags say it changed the product's state."""
    return any(info.get(flag) for flag in EFFECT_FLAGS)


async def settle_failure(
    *, session: AsyncSession, claim: IntakeClaim, at: datetime, error: str
) -> SlackIntake | None:
    """Record a failed run: retried with back-off, or failed for good after MAX_ATTEMPTS.

    Returns the row when it has just failed for good and its person was not told yet
    (`notified_at` is set here, so they are told at most once).
    """
    row = await session.get(SlackIntake, claim.intake_id, with_for_update=True)
    if row is None or row.status != "pending" or row.owner != claim.owner:
        return None
    row.last_error = error[:2000]
    if row.attempts < MAX_ATTEMPTS:
        row.lease_until = at + timedelta(seconds=5 * row.attempts)
        session.add(row)
        return None
    row.status = "failed"
    row.processed_at = at
    row.lease_until = None
    tell = row.notified_at is None
    row.notified_at = row.notified_at or at
    session.add(row)
    return row if tell else None


async def release_claim(*, session: AsyncSession, claim: IntakeClaim, at: datetime) -> None:
    """A run that changed nothing (a read, a refusal): mark its row done."""
    try:
        await finish_claimed(session=session, claim=claim, at=at)
    except IntakeLost:
        return


async def store_requests(
    *,
    session: AsyncSession,
    workspace_id: int,
    items: list[tuple[IntakeRequest, str, str | None, int]],
    at: datetime,
) -> list[int | None]:
    """Store many requests in one statement: (request, key, owner, lease seconds) each.

    Returns the new row's id per item, None for a delivery stored before (or earlier in the
    same list).
    """
    if not items:
        return []
    ids = await session.run_sync(
        lambda sync: store_requests_now(
            connection=sync.connection(), workspace_id=workspace_id, items=items, at=at
        )
    )
    session.info["intake_dirty"] = True
    return ids


def store_requests_now(
    *,
    connection: sa.Connection,
    workspace_id: int,
    items: list[tuple[IntakeRequest, str, str | None, int]],
    at: datetime,
) -> list[int | None]:
    """`store_requests` as one statement on a blocking connection (the ingress's own), in
    whatever transaction the caller holds (or autocommit)."""
    if not items:
        return []
    rows = _intake_rows(workspace_id, items, at)
    stmt = insert_ignore_statement(
        connection.dialect.name, SlackIntake, conflict=INTAKE_CONFLICT, key="intake_key"
    )
    returned = connection.execute(stmt, rows).all()
    return new_ids(returned, rows, "intake_key")


def _intake_rows(
    workspace_id: int, items: list[tuple[IntakeRequest, str, str | None, int]], at: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "workspace_id": workspace_id,
            "team_id": request.team_id[:32],
            "intake_key": key[:128],
            "kind": request.kind[:32],
            "name": request.name[:255],
            "user_id": request.user_id[:32],
            "response_url": (request.response_url or None) and request.response_url[:1000],
            "trigger_id": (request.trigger_id or None) and request.trigger_id[:255],
            "content_type": request.content_type[:64],
            "body": request.body,
            "status": "pending",
            "attempts": 0 if owner is None else 1,
            "owner": owner,
            "lease_until": None if owner is None else at + timedelta(seconds=lease),
            "last_error": None,
            "received_at": at,
            "processed_at": None,
            "notified_at": None,
        }
        for request, key, owner, lease in items
    ]
