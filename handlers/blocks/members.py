"""The `/docket members` modal (the roster and the access form), reading its submission, and
the view shown once a change is saved. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from handlers.blocks.common import Block, context, cut, plain, safe, section
from handlers.ids import View
from models.tables import Member, Role

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
