"""`/docket members`: admins give people a role (agent, manager, admin) and a group, or take
them off the support team.

The command and the submission each re-check that the person acting is an admin: Slack
authenticates the app, not the person. DOCKET_ADMINS bootstraps the first admins.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import Block, context, cut, plain, safe, section
from handlers.docket_cmd import subcommand
from handlers.ids import Command, View
from handlers.people import resolve_member
from models.directory import DirectoryError, LastAdminError, change_member_access
from models.people import PermissionDenied, require_admin, roster
from models.tables import Member, Role

logger = logging.getLogger(__name__)

USER_BLOCK = "member_user"
ACCESS_BLOCK = "member_access"
GROUP_BLOCK = "member_group"
INACTIVE = "inactive"
ROSTER_LIMIT = 40
GROUP_MAX = 100
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")

ACCESS_LABELS: dict[str, str] = {
    Role.AGENT: "Agent: works tickets, logs time",
    Role.MANAGER: "Manager: also sees money",
    Role.ADMIN: "Admin: also manages people and settings",
    INACTIVE: "Not on the support team",
}


@dataclass(frozen=True)
class RosterLine:
    """One member as the roster shows them."""

    slack_user_id: str | None
    name: str
    access: str
    group: str | None


def _who(line: RosterLine) -> str:
    if line.slack_user_id and _USER_ID.match(line.slack_user_id):
        return f"<@{line.slack_user_id}>"
    return safe(line.name, 100) or "someone"


def access_of(member: Member) -> str:
    """A member's role, or INACTIVE when they are off the support team."""
    return member.role if member.active else INACTIVE


def build_member_modal(roster: list[RosterLine], total: int) -> dict[str, Any]:
    """The members modal: pick a person, their access and group; the current roster below."""
    options = [{"text": plain(label), "value": value} for value, label in ACCESS_LABELS.items()]
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": USER_BLOCK,
            "label": plain("Person"),
            "element": {
                "type": "users_select",
                "action_id": "user_input",
                "placeholder": plain("Choose someone"),
            },
        },
        {
            "type": "input",
            "block_id": ACCESS_BLOCK,
            "label": plain("Access"),
            "element": {
                "type": "static_select",
                "action_id": "access_input",
                "options": options,
                "initial_option": options[0],
            },
        },
        {
            "type": "input",
            "block_id": GROUP_BLOCK,
            "optional": True,
            "label": plain("Group"),
            "hint": plain("For cost rates per group, e.g. Field engineers. Empty: no group."),
            "element": {
                "type": "plain_text_input",
                "action_id": "group_input",
                "max_length": GROUP_MAX,
            },
        },
        {"type": "divider"},
    ]
    lines = []
    for line in roster[:ROSTER_LIMIT]:
        who = _who(line)
        group = f" · {safe(line.group, 100)}" if line.group else ""
        lines.append(f"• {who}: {ACCESS_LABELS.get(line.access, line.access).split(':')[0]}{group}")
    heading = f"*Members* ({total})"
    blocks.append(section(heading + ("\n" + "\n".join(lines) if lines else "\nNobody yet.")))
    if total > len(lines):
        blocks.append(context(f"…and {total - len(lines)} more."))
    return {
        "type": "modal",
        "callback_id": View.MEMBER.value,
        "title": plain("Docket members"),
        "submit": plain("Save"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def build_member_saved(line: RosterLine) -> dict[str, Any]:
    """What the members modal turns into after saving."""
    who = _who(line)
    group = f" in group *{safe(line.group, 100)}*" if line.group else ""
    access = ACCESS_LABELS.get(line.access, line.access)
    return {
        "type": "modal",
        "callback_id": f"{View.MEMBER.value}_done",
        "title": plain("Docket members"),
        "close": plain("Done"),
        "blocks": [section(f":white_check_mark: {who} is now *{cut(access, 200)}*{group}.")],
    }


@dataclass(frozen=True)
class MemberForm:
    """A submitted members form."""

    slack_user_id: str | None
    access: str
    group: str


def parse_member_form(values: dict[str, Any]) -> MemberForm:
    """Read the members form's state values."""
    user = (values.get(USER_BLOCK) or {}).get("user_input") or {}
    access = ((values.get(ACCESS_BLOCK) or {}).get("access_input") or {}).get("selected_option")
    group = ((values.get(GROUP_BLOCK) or {}).get("group_input") or {}).get("value")
    return MemberForm(
        slack_user_id=user.get("selected_user") or None,
        access=str((access or {}).get("value") or ""),
        group=" ".join(str(group or "").split())[:GROUP_MAX],
    )


def member_form_errors(form: MemberForm, *, admins: list[str]) -> dict[str, str]:
    """Checks that need no database, keyed by block id."""
    errors: dict[str, str] = {}
    if not form.slack_user_id or not _USER_ID.match(form.slack_user_id):
        errors[USER_BLOCK] = "Choose a person."
    if form.access not in ACCESS_LABELS:
        errors[ACCESS_BLOCK] = "Choose their access."
    elif form.slack_user_id in admins and form.access != Role.ADMIN:
        errors[ACCESS_BLOCK] = "They are listed in DOCKET_ADMINS and stay an admin."
    return errors


async def _roster(session: AsyncSession, workspace_id: int) -> tuple[list[RosterLine], int]:
    rows = await roster(session=session, workspace_id=workspace_id)
    lines = [
        RosterLine(m.slack_user_id, m.name or m.email or "", access_of(m), g.name if g else None)
        for m, g in rows
    ]
    return lines, len(lines)


async def handle_members_command(
    ack: AsyncAck,
    command: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    services: Services,
) -> None:
    """`/docket members`: the members modal, for admins."""
    await ack()
    try:
        actor = await resolve_member(services, str(command.get("user_id") or ""), client=client)
        require_admin(actor)
        async with services.read() as session:
            roster, total = await _roster(session, services.workspace_id)
        await client.views_open(
            trigger_id=command["trigger_id"], view=build_member_modal(roster, total)
        )
    except PermissionDenied as exc:
        await respond(text=f":no_entry: {exc}", response_type="ephemeral")
    except Exception:
        logger.exception("/docket members failed")
        await respond(
            text="Sorry, Docket could not open the members list.", response_type="ephemeral"
        )


async def handle_member_submission(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    services: Services,
) -> None:
    """Save a person's access and group (re-checking that the submitter is an admin)."""
    form = parse_member_form(((view.get("state") or {}).get("values")) or {})
    admins = list(services.settings.docket_admins)
    errors = member_form_errors(form, admins=admins)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    actor_id = str((body.get("user") or {}).get("id") or "")
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
    actor_id = str((body.get("user") or {}).get("id") or "")
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
