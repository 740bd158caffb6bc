"""Members kept in step with the Slack directory (`users.list`: daily, or `docket sync`).

Rules:
- Only people of the workspace's own team count. Slack Connect users (another team id, or
  `is_stranger`), bots, apps and Slackbot are never added, linked or changed.
- A deactivated Slack user (`deleted`) makes their member inactive (never deleted: tickets,
  time and figures stay). Their open tickets are listed once in the triage channel for
  reassignment, through the outbox, keyed by the Slack user's `updated` stamp so a second run
  or another replica cannot list them again.
- Name and email changes in Slack follow to the member.
- A member imported before they joined Slack (no Slack id yet) is linked by email. New Slack
  users are not made members here, and nobody's role changes: roles stay with admins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.lifecycle import ACTIVE
from models.outbox import SLACK, enqueue, slack_call
from models.tables import Member, Ticket, Workspace

SLACKBOT = "USLACKBOT"
NAME_MAX = 200


@dataclass(frozen=True)
class SlackUser:
    """What the sync reads of a `users.list` member."""

    id: str
    team_id: str
    name: str
    email: str | None
    deleted: bool
    is_bot: bool
    is_stranger: bool
    updated: int = 0


def parse_user(data: Mapping[str, Any]) -> SlackUser | None:
    """A Slack user object as a `SlackUser` (None when it has no id)."""
    user_id = str(data.get("id") or "")
    if not user_id:
        return None
    profile = data.get("profile") or {}
    name = str(
        profile.get("real_name") or data.get("real_name") or profile.get("display_name") or ""
    )
    email = profile.get("email")
    return SlackUser(
        id=user_id,
        team_id=str(data.get("team_id") or profile.get("team") or ""),
        name=" ".join(name.split())[:NAME_MAX],
        email=str(email).strip().lower() if email else None,
        deleted=bool(data.get("deleted")),
        is_bot=bool(data.get("is_bot") or data.get("is_app_user")) or user_id == SLACKBOT,
        is_stranger=bool(data.get("is_stranger")),
        updated=int(data.get("updated") or 0),
    )


def is_colleague(user: SlackUser, team_id: str) -> bool:
    """True for a person of our own team (not a bot, not a Slack Connect user)."""
    return not user.is_bot and not user.is_stranger and user.team_id == team_id


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reassignment_text(name: str, tickets: Iterable[tuple[int, str]]) -> str:
    """The triage post listing a deactivated person's open tickets (Slack mrkdwn)."""
    lines = [f"• #{number} {_escape(title)}" for number, title in tickets]
    return (
        f":warning: {_escape(name)} was deactivated in Slack. Their open tickets need a new "
        "assignee:\n" + "\n".join(lines)
    )


@dataclass
class SyncResult:
    """What a directory sync changed."""

    seen: int = 0
    skipped_external: int = 0
    deactivated: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    not_members: int = 0
    posts: int = 0

    def summary(self) -> str:
        return (
            f"{self.seen} Slack user(s): {len(self.deactivated)} deactivated, "
            f"{len(self.updated)} updated, {len(self.linked)} linked by email, "
            f"{self.not_members} not members (left alone), "
            f"{self.skipped_external} from other teams skipped; "
            f"{self.posts} reassignment post(s) queued"
        )


async def apply_slack_users(
    *,
    session: AsyncSession,
    workspace_id: int,
    team_id: str,
    users: Iterable[SlackUser],
    at: datetime,
) -> SyncResult:
    """Bring members in step with Slack's directory (see the module rules)."""
    result = SyncResult()
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    members = list(
        (await session.exec(select(Member).where(Member.workspace_id == workspace_id))).all()
    )
    by_slack = {m.slack_user_id: m for m in members if m.slack_user_id}
    by_email = {m.email.lower(): m for m in members if m.email and not m.slack_user_id}
    for user in users:
        result.seen += 1
        if not is_colleague(user, team_id):
            if not user.is_bot:
                result.skipped_external += 1
            continue
        member = by_slack.get(user.id)
        if member is None and user.email and not user.deleted:
            member = by_email.pop(user.email, None)
            if member is not None:
                member.slack_user_id = user.id
                result.linked.append(member.email or user.id)
        if member is None:
            result.not_members += 1
            continue
        if user.deleted:
            if member.active:
                member.active = False
                session.add(member)
                result.deactivated.append(member.name or member.email or user.id)
                if await _queue_reassignment(session, ws, member, user, at):
                    result.posts += 1
            continue
        changed = False
        if user.name and member.name != user.name:
            member.name, changed = user.name, True
        if user.email and member.email != user.email:
            member.email, changed = user.email, True
        if changed:
            session.add(member)
            result.updated.append(member.name or user.id)
    await session.flush()
    return result


async def _queue_reassignment(
    session: AsyncSession, ws: Workspace, member: Member, user: SlackUser, at: datetime
) -> bool:
    assert ws.id is not None
    tickets = (
        await session.exec(
            select(Ticket)
            .where(
                Ticket.workspace_id == ws.id,
                Ticket.assignee_id == member.id,
                col(Ticket.status).in_([str(s) for s in ACTIVE]),
            )
            .order_by(col(Ticket.number))
        )
    ).all()
    if not tickets or not ws.triage_channel:
        return False
    text = reassignment_text(member.name or user.name, [(t.number, t.title) for t in tickets])
    new = await enqueue(
        session=session,
        workspace_id=ws.id,
        kind=SLACK,
        key=f"member-deactivated:{ws.id}:{user.id}:{user.updated}",
        payload=slack_call("chat.postMessage", channel=ws.triage_channel, text=text),
        at=at,
    )
    return new is not None
