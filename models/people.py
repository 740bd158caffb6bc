"""Members and roles: who someone is in Docket and what they may see and do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Member, MemberGroup, Role


class PermissionDenied(Exception):
    """An action this member's role does not allow; the message says which role is needed."""


def can_see_money(member: Member | None) -> bool:
    """Cost, revenue and margin are for managers and admins only."""
    return member is not None and member.active and member.role in (Role.MANAGER, Role.ADMIN)


def is_admin(member: Member | None) -> bool:
    return member is not None and member.active and member.role == Role.ADMIN


def require_money(member: Member | None) -> None:
    if not can_see_money(member):
        raise PermissionDenied("Profitability figures are for managers and admins.")


def require_admin(member: Member | None) -> None:
    if not is_admin(member):
        raise PermissionDenied("Only Docket admins can do that.")


def require_agent(member: Member | None) -> None:
    if member is None or not member.active:
        raise PermissionDenied("Only members of the support team can update tickets.")


async def member_by_slack_id(
    *, session: AsyncSession, workspace_id: int, slack_user_id: str
) -> Member | None:
    stmt = select(Member).where(
        Member.workspace_id == workspace_id, Member.slack_user_id == slack_user_id
    )
    return (await session.exec(stmt)).first()


async def members_by_slack_ids(
    *, session: AsyncSession, workspace_id: int, slack_user_ids: Iterable[str]
) -> dict[str, Member]:
    """The workspace's members among these Slack users, by Slack id."""
    wanted = sorted(set(slack_user_ids))
    if not wanted:
        return {}
    stmt = select(Member).where(
        Member.workspace_id == workspace_id, col(Member.slack_user_id).in_(wanted)
    )
    return {m.slack_user_id: m for m in (await session.exec(stmt)).all() if m.slack_user_id}


async def ensure_member(
    *,
    session: AsyncSession,
    workspace_id: int,
    slack_user_id: str,
    name: str,
    email: str | None,
    admins: Iterable[str] = (),
    at: datetime,
    may_claim: bool = True,
) -> Member:
    """Return the member for a Slack user, creating them (or claiming an imported row by email).

    Only a full member of Docket's own workspace may claim an imported row (`may_claim`): a
    guest or a user of another organisation with the same address gets a row of their own.
    Users named in DOCKET_ADMINS are made admins; nobody else is promoted here.
    """
    member = await member_by_slack_id(
        session=session, workspace_id=workspace_id, slack_user_id=slack_user_id
    )
    if member is None and email and may_claim:
        stmt = select(Member).where(
            Member.workspace_id == workspace_id,
            Member.email == email.lower(),
            Member.slack_user_id.is_(None),  # type: ignore[union-attr]
        )
        member = (await session.exec(stmt)).first()
        if member is not None:
            member.slack_user_id = slack_user_id
    if member is None:
        member = Member(
            workspace_id=workspace_id,
            slack_user_id=slack_user_id,
            name=name,
            email=email.lower() if email else None,
            created_at=at,
        )
    if slack_user_id in set(admins) and member.role != Role.ADMIN:
        member.role = Role.ADMIN
    if name and not member.name:
        member.name = name
    if member.id is None:
        # Two first requests from one new user may race: the loser reads the winner's row.
        try:
            async with session.begin_nested():
                session.add(member)
                await session.flush()
        except IntegrityError:
            existing = await member_by_slack_id(
                session=session, workspace_id=workspace_id, slack_user_id=slack_user_id
            )
            if existing is None:
                raise
            return existing
        return member
    session.add(member)
    await session.flush()
    return member


async def ensure_group(*, session: AsyncSession, workspace_id: int, name: str) -> MemberGroup:
    stmt = select(MemberGroup).where(
        MemberGroup.workspace_id == workspace_id, MemberGroup.name == name
    )
    group = (await session.exec(stmt)).first()
    if group is None:
        group = MemberGroup(workspace_id=workspace_id, name=name)
        session.add(group)
        await session.flush()
    return group


async def member_by_id(
    *, session: AsyncSession, workspace_id: int, member_id: int
) -> Member | None:
    """The workspace's member with this id, or None."""
    member = await session.get(Member, member_id)
    return member if member is not None and member.workspace_id == workspace_id else None


async def roster(
    *, session: AsyncSession, workspace_id: int
) -> list[tuple[Member, MemberGroup | None]]:
    """Every member of the workspace with their group, active ones first, by name."""
    stmt = (
        select(Member, MemberGroup)
        .join(MemberGroup, col(Member.group_id) == col(MemberGroup.id), isouter=True)
        .where(Member.workspace_id == workspace_id)
        .order_by(col(Member.active).desc(), col(Member.name))
    )
    return [(member, group) for member, group in (await session.exec(stmt)).all()]


def settle_membership(
    member: Member, *, listed_admin: bool, first_seen: bool, team_member: bool | None
) -> None:
    """Whether a member resolved from Slack is active: a DOCKET_ADMINS admin always is; a
    guest or outsider seen for the first time is known by name but not part of the support
    team (`team_member` None: Slack's profile is unknown, nothing changes)."""
    if listed_admin:
        member.active = True
    elif first_seen and team_member is False:
        member.active = False
