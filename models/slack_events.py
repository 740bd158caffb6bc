"""Events API deliveries: stored once (unique on team and event id), then processed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import insert_ignore, lease_pending
from models.tables import SlackEvent

MAX_ATTEMPTS = 5


async def store_event(*, session: AsyncSession, body: dict[str, Any], at: datetime) -> int | None:
    """Store an event_callback body; None when this event id was already stored."""
    event = body.get("event") or {}
    new_id = await insert_ignore(
        session,
        SlackEvent,
        {
            "team_id": str(body.get("team_id") or ""),
            "event_id": str(body.get("event_id") or ""),
            "event_type": str(event.get("type") or "")[:64],
            "body": body,
            "status": "pending",
            "attempts": 0,
            "received_at": at,
        },
        conflict=["team_id", "event_id"],
    )
    session.info["events_dirty"] = True
    return new_id


async def claim_pending(
    *, session: AsyncSession, team_id: str, now: datetime, limit: int = 20, lease_seconds: int = 60
) -> list[SlackEvent]:
    """Lease pending events of one Slack team (the one this process serves).

    `processed_at` doubles as the lease deadline while pending. Another team's events in the
    same database belong to that team's process: processing them here would answer with the
    wrong bot and store their people in the wrong workspace.
    """
    rows = await lease_pending(
        session,
        SlackEvent,
        SlackEvent.team_id == team_id,
        now=now,
        limit=limit,
        lease_seconds=lease_seconds,
    )
    await session.flush()
    return rows


async def finish_event(
    *, session: AsyncSession, event_row_id: int, at: datetime, error: str | None = None
) -> None:
    row = await session.get(SlackEvent, event_row_id)
    if row is None:
        return
    if error is None:
        row.status = "done"
        row.processed_at = at
    elif row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.last_error = error[:2000]
        row.processed_at = at
    else:
        row.last_error = error[:2000]
        # Retry after a short back-off (the lease field says when).
        row.processed_at = at + timedelta(seconds=5 * row.attempts)
    session.add(row)
