"""Who is acting: the Slack user behind a request, as a Docket member.

A Slack user seen for the first time becomes a member with the name and email from
`users.info` (the only Slack call, made once per person). People listed in DOCKET_ADMINS are
made admins whenever they are seen. Guests, people from another workspace and bots are
recorded but not made part of the support team (they may still create tickets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError

from bot.services import Services
from handlers.blocks.common import escape
from handlers.respond import tell
from models.people import (
    PermissionDenied,
    ensure_member,
    member_by_slack_id,
    members_by_slack_ids,
    require_agent,
    settle_membership,
)
from models.tables import Member, Role

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackProfile:
    """What Docket keeps from a `users.info` answer."""

    name: str
    email: str | None
    team_member: bool  # a full member of this workspace (not a guest, bot or outsider)


def profile_from_user(user: dict[str, Any], team_id: str) -> SlackProfile:
    """Read a `users.info` user object (pure, for tests)."""
    profile = user.get("profile") or {}
    name = (
        profile.get("real_name")
        or user.get("real_name")
        or profile.get("display_name")
        or user.get("name")
        or ""
    )
    email = profile.get("email") or None
    outsider = bool(user.get("team_id")) and user.get("team_id") != team_id
    guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
    bot = bool(user.get("is_bot") or user.get("is_app_user") or user.get("deleted"))
    return SlackProfile(
        name=str(name)[:200],
        email=str(email).lower()[:320] if email else None,
        team_member=not (outsider or guest or bot),
    )


async def fetch_profile(client: AsyncWebClient, user_id: str, team_id: str) -> SlackProfile | None:
    """Ask Slack who `user_id` is; None when Slack cannot say (the member is kept anyway)."""
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError as exc:
        logger.warning("users.info for a new member failed: %s", exc.response.get("error"))
        return None
    except Exception:
        logger.exception("users.info for a new member failed")
        return None
    user = response.get("user")
    return profile_from_user(user, team_id) if isinstance(user, dict) else None


async def resolve_member(
    services: Services,
    slack_user_id: str,
    *,
    client: AsyncWebClient | None = None,
    name_hint: str = "",
) -> Member:
    """The member for a Slack user, created (from users.info) the first time they are seen.

    Returned detached: read its fields, do not lazy-load. Every caller re-checks the role
    with models.people.require_* before changing anything.
    """
    admins = list(services.settings.docket_admins)
    async with services.read() as session:
        member = await member_by_slack_id(
            session=session, workspace_id=services.workspace_id, slack_user_id=slack_user_id
        )
    if member is not None and _settled(member, admins):
        return member
    profile = None
    if member is None:
        profile = await fetch_profile(client or services.slack, slack_user_id, services.team_id)
        if profile is None and slack_user_id not in admins:
            # Slack could not say who this is (an error, a rate limit): a colleague cannot be
            # told from a customer in a shared channel. Nothing is stored, so this request gets
            # no team rights and the next one asks Slack again.
            return Member(
                workspace_id=services.workspace_id,
                slack_user_id=slack_user_id,
                name=name_hint,
                active=False,
            )
    try:
        return await _save_member(services, slack_user_id, profile, name_hint, admins)
    except IntegrityError:
        # Another request saw this person first and created the member: use theirs.
        return await _save_member(services, slack_user_id, profile, name_hint, admins)


def _settled(member: Member, admins: list[str]) -> bool:
    """A stored member needs nothing more (an admin named in the settings is promoted)."""
    return member.slack_user_id not in admins or member.role == Role.ADMIN


async def command_member(
    services: Services, command: dict[str, Any], client: AsyncWebClient
) -> Member:
    """The member who ran a slash command."""
    return await resolve_member(services, str(command.get("user_id") or ""), client=client)


async def resolve_members(
    services: Services, users: dict[str, str], *, client: AsyncWebClient | None = None
) -> dict[str, Member]:
    """`resolve_member` for several Slack users ({user id: name hint}); one read for the known."""
    admins = list(services.settings.docket_admins)
    async with services.read() as session:
        known = await members_by_slack_ids(
            session=session, workspace_id=services.workspace_id, slack_user_ids=users
        )
    out: dict[str, Member] = {}
    for user_id, hint in users.items():
        member = known.get(user_id)
        if member is not None and _settled(member, admins):
            out[user_id] = member
        else:
            out[user_id] = await resolve_member(services, user_id, client=client, name_hint=hint)
    return out


async def _save_member(
    services: Services,
    slack_user_id: str,
    profile: SlackProfile | None,
    name_hint: str,
    admins: list[str],
) -> Member:
    now = services.now()
    async with services.transaction() as session:
        member = await ensure_member(
            session=session,
            workspace_id=services.workspace_id,
            slack_user_id=slack_user_id,
            name=profile.name if profile else name_hint,
            email=profile.email if profile else None,
            admins=admins,
            at=now,
            may_claim=profile is not None and profile.team_member,
        )
        settle_membership(
            member,
            listed_admin=slack_user_id in admins,
            first_seen=member.created_at == now,
            team_member=profile.team_member if profile is not None else None,
        )
    return member


def on_team(member: Member | None) -> bool:
    """A stored, active member of the support team (not a guest, outsider or unknown)."""
    return member is not None and member.id is not None and member.active


async def team_member(
    services: Services, slack_user_id: str, *, client: AsyncWebClient | None = None
) -> Member | None:
    """The member when they are on the support team, else None (for directory look-ups)."""
    if not slack_user_id:
        return None
    member = await resolve_member(services, slack_user_id, client=client)
    return member if on_team(member) else None


async def assignee_member(services: Services, slack_user_id: str | None) -> Member | None:
    """The member to assign a ticket to, picked in a users_select (None: nobody)."""
    if not slack_user_id:
        return None
    return await resolve_member(services, slack_user_id)


def user_of(body: dict[str, Any]) -> tuple[str, str]:
    """The Slack id and name of the person who clicked or submitted (`body["user"]`)."""
    user = body.get("user") or {}
    return str(user.get("id") or ""), str(user.get("name") or user.get("username") or "")


async def acting_agent(
    services: Services, user_id: str, client: AsyncWebClient, respond: AsyncRespond | None
) -> Member | None:
    """The acting member if they may update tickets; otherwise say why and return None."""
    member = await resolve_member(services, user_id, client=client)
    try:
        require_agent(member)
    except PermissionDenied as exc:
        await tell(respond, f":no_entry: {escape(str(exc))}")
        return None
    return member
