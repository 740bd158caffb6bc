"""`/docket members`: admins give people a role (agent, manager, admin) and a group, or take
them off the support team.

The command and the submission each re-check that the person acting is an admin: Slack
authenticates the app, not the person. DOCKET_ADMINS bootstraps the first admins.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import form_values, safe
from handlers.blocks.members import (
    ACCESS_BLOCK,
    GROUP_BLOCK,
    INACTIVE,
    USER_BLOCK,
    MemberForm,
    RosterLine,
    access_of,
    build_member_modal,
    build_member_saved,
    member_form_errors,
    parse_member_form,
)
from handlers.docket_cmd import subcommand
from handlers.ids import Command, View
from handlers.listeners import Slash, on_command
from handlers.people import command_member, resolve_member, user_of
from handlers.respond import answering_failures
from models.directory import DirectoryError, LastAdminError, change_member_access
from models.people import PermissionDenied, require_admin, roster
from models.tables import Role

logger = logging.getLogger(__name__)


async def _roster(session: AsyncSession, workspace_id: int) -> tuple[list[RosterLine], int]:
    rows = await roster(session=session, workspace_id=workspace_id)
    lines = [
        RosterLine(m.slack_user_id, m.name or m.email or "", access_of(m), g.name if g else None)
        for m, g in rows
    ]
    return lines, len(lines)


async def _members_command(slash: Slash) -> None:
    """`/docket members`: the members modal, for admins."""
    command, respond, client, services = slash

    async def say(text: str) -> None:
        await respond(text=text, response_type="ephemeral")

    async with answering_failures(
        say,
        log=logger,
        doing="/docket members",
        sorry="Sorry, Docket could not open the members list.",
        refusals=(PermissionDenied,),
    ):
        require_admin(await command_member(services, command, client))
        async with services.read() as session:
            roster, total = await _roster(session, services.workspace_id)
        await client.views_open(
            trigger_id=command["trigger_id"], view=build_member_modal(roster, total)
        )


handle_members_command = on_command(_members_command)


async def handle_member_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save a person's access and group (re-checking that the submitter is an admin)."""
    form = parse_member_form(form_values(view))
    admins = list(services.settings.docket_admins)
    errors = member_form_errors(form, admins=admins)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    actor_id = user_of(body)[0]
    await answer_within_budget(
        ack, client, actor_id, _save_member_answer(services, client, body, form)
    )


async def _save_member_answer(
    services: Services, client: AsyncWebClient, body: dict[str, Any], form: MemberForm
) -> Answer:
    try:
        return await _save_member(services, client, body, form)
    except Exception:
        logger.exception("saving a member failed")
        return _refused({USER_BLOCK: "Sorry, Docket could not save that. Please try again."})


def _refused(errors: dict[str, str]) -> Answer:
    reasons = " ".join(errors.values())
    return Answer(errors=errors, late=safe(f"The member change was not saved: {reasons}", 2000))


async def _save_member(
    services: Services, client: AsyncWebClient, body: dict[str, Any], form: MemberForm
) -> Answer:
    actor_id = user_of(body)[0]
    actor = await resolve_member(services, actor_id, client=client)
    try:
        require_admin(actor)
    except PermissionDenied as exc:
        return _refused({USER_BLOCK: str(exc)})
    assert form.slack_user_id is not None
    target = await resolve_member(services, form.slack_user_id, client=client)
    assert target.id is not None
    try:
        async with services.transaction() as session:
            member = await change_member_access(
                session=session,
                workspace_id=services.workspace_id,
                member_id=target.id,
                role=None if form.access == INACTIVE else Role(form.access),
                active=form.access != INACTIVE,
                group_name=form.group,
                at=services.now(),
            )
    except LastAdminError as exc:
        return _refused({ACCESS_BLOCK: str(exc)})
    except DirectoryError as exc:
        return _refused({GROUP_BLOCK: str(exc)})
    line = RosterLine(member.slack_user_id, member.name, form.access, form.group or None)
    return Answer(view=build_member_saved(line))


def register(app: AsyncApp) -> None:
    """Wire `/docket members` and its modal."""
    app.command(Command.DOCKET.value, matchers=[subcommand("members")])(handle_members_command)
    app.view(View.MEMBER.value)(handle_member_submission)
