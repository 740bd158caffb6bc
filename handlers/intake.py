"""Which Slack requests change state (stored before the ack) and what their ack says.

The HTTP ingress asks `classify` about every slash command and interactivity request. A
request that only reads or opens a modal (`trigger_id` is good for 3 s) runs inline through
Bolt. A request that writes is stored first and answered with the acknowledgement given
here; the intake worker later runs it through the same Bolt listeners. A form submission
is validated here first: field errors go back in the response and nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers.blocks.intake import (
    build_clear_view,
    build_received_message,
    build_received_view,
)
from handlers.blocks.tickets import form_errors, parse_ticket_form
from handlers.blocks.time import read_form
from handlers.docket_cmd import split_subcommand
from handlers.ids import Action, Command, View
from handlers.ticket_text import parse_ticket_text
from models.timeparse import DeleteTime, EditTime, LogTime, TimeTextError, parse_command

# Buttons whose work writes (assign, status, close, retry); the ack is empty. The others
# open a modal (their trigger_id is good for 3 s), page a list, or only read: inline.
DURABLE_ACTIONS = frozenset(
    {
        Action.ASSIGN_TO_ME.value,
        Action.TAKE_TICKET.value,
        Action.STATUS.value,
        Action.CLOSE.value,
        Action.OUTBOX_RETRY.value,
    }
)
# Every form Docket opens is stored when submitted (its listener runs at once, so what it
# answers, field errors included, still goes back in the response when it is quick).
SUBMITTED_VIEWS = frozenset(v.value for v in View)


@dataclass(frozen=True)
class Decision:
    """`store`: keep the request and answer `ack`; otherwise answer `ack` (errors) as is."""

    store: bool
    ack: dict[str, Any] | None = None


def request_kind(payload: dict[str, Any]) -> str:
    """slash_command, block_actions, view_submission, shortcut, ... ('' when unknown)."""
    if "command" in payload:
        return "slash_command"
    return str(payload.get("type") or "")


def request_name(kind: str, payload: dict[str, Any]) -> str:
    """The command, the first action's id, or the callback id."""
    if kind == "slash_command":
        return str(payload.get("command") or "")
    if kind == "block_actions":
        actions = payload.get("actions") or [{}]
        first = actions[0] if isinstance(actions[0], dict) else {}
        return str(first.get("action_id") or "")
    if kind == "view_submission":
        return str((payload.get("view") or {}).get("callback_id") or "")
    return str(payload.get("callback_id") or "")


def classify(kind: str, name: str, payload: dict[str, Any]) -> Decision | None:
    """None: run inline. Otherwise store (with this ack) or refuse (with these errors)."""
    if kind == "slash_command":
        return _command(name, str(payload.get("text") or ""))
    if kind == "block_actions":
        actions = payload.get("actions") or []
        if len(actions) == 1 and name in DURABLE_ACTIONS:
            return Decision(store=True)
        return None
    if kind == "view_submission":
        values = ((payload.get("view") or {}).get("state") or {}).get("values") or {}
        return _submission(name, values)
    return None


def _command(name: str, text: str) -> Decision | None:
    if name == Command.TICKET.value:
        # `/ticket reply ...` opens the reply form (handlers.conversation): inline.
        if split_subcommand(text)[0] != "reply" and parse_ticket_text(text).kind == "create":
            return Decision(store=True, ack=build_received_message("Creating ticket…"))
        return None
    if name == Command.TIME.value:
        try:
            # Only the kind matters here; the worker parses again with the workspace's date.
            parsed = parse_command(text, today=datetime.now(UTC).date())
        except TimeTextError:
            return None
        if isinstance(parsed, LogTime | EditTime | DeleteTime):
            return Decision(store=True, ack=build_received_message("Saving your time…"))
    return None


def _submission(callback_id: str, values: dict[str, Any]) -> Decision | None:
    if callback_id == View.TICKET.value:
        errors = form_errors(parse_ticket_form(values))
        if errors:
            return Decision(store=False, ack={"response_action": "errors", "errors": errors})
        return Decision(store=True, ack=build_received_view("Saving ticket", "Saving the ticket…"))
    if callback_id == View.LOG_TIME.value:
        form = read_form(values)
        if form.errors:
            return Decision(store=False, ack={"response_action": "errors", "errors": form.errors})
        return Decision(store=True, ack=build_clear_view())
    if callback_id in SUBMITTED_VIEWS:
        return Decision(store=True, ack=build_received_view("Saving", "Saving…"))
    return None
