"""Workspaces: find or create the row for a Slack team, and read its settings."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Workspace


async def ensure_workspace(
    *,
    session: AsyncSession,
    team_id: str,
    name: str = "",
    timezone: str = "UTC",
    currency: str = "EUR",
    triage_channel: str | None = None,
    managers_channel: str | None = None,
    bot_user_id: str | None = None,
) -> Workspace:
    """Return the team's workspace, creating it with these defaults the first time.

    Channels and the bot user are filled in when unset; settings chosen in Slack win over
    the environment afterwards.
    """
    ws = (await session.exec(select(Workspace).where(Workspace.team_id == team_id))).first()
    if ws is None:
        ws = Workspace(
            team_id=team_id,
            name=name,
            timezone=timezone,
            currency=currency,
            triage_channel=triage_channel,
            managers_channel=managers_channel,
            bot_user_id=bot_user_id,
        )
        session.add(ws)
        await session.flush()
        return ws
    changed = False
    for attr, value in (
        ("triage_channel", triage_channel),
        ("managers_channel", managers_channel),
        ("bot_user_id", bot_user_id),
        ("name", name),
    ):
        if value and not getattr(ws, attr):
            setattr(ws, attr, value)
            changed = True
    if changed:
        session.add(ws)
        await session.flush()
    return ws


async def get_workspace(*, session: AsyncSession, workspace_id: int) -> Workspace:
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    return ws


def workspace_tz(ws: Workspace) -> ZoneInfo:
    return ZoneInfo(ws.timezone)


async def probe_write(*, session: AsyncSession, workspace_id: int) -> None:
    """Write to the workspace's row without changing it (health checks: a read-only file or a
    full disk fails here, while reads still work)."""
    await session.execute(
        sa.update(Workspace)
        .where(col(Workspace.id) == workspace_id)
        .values(name=Workspace.name)
        .execution_options(synchronize_session=False)
    )
