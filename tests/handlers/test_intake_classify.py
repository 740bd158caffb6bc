"""Which requests are stored before their ack, and what the ack says."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.ids import Action, Command, View
from handlers.intake import classify, request_kind, request_name
from tests.handlers.test_tickets_e2e import form_values


@pytest.mark.parametrize(
    ("command", "text", "store", "ack_text"),
    [
        (Command.TICKET, "Printer on fire", True, "Creating ticket…"),
        (Command.TICKET, "new Printer on fire", True, "Creating ticket…"),
        (Command.TICKET, "", None, None),  # opens the form: inline
        (Command.TICKET, "list mine", None, None),
        (Command.TICKET, "123", None, None),
        (Command.TICKET, "help", None, None),
        (Command.TICKET, "reply 12", None, None),  # opens the reply form
        (Command.TIME, "1h30 #12 fixed the VPN", True, "Saving your time…"),
        (Command.TIME, "delete 4", True, "Saving your time…"),
        (Command.TIME, "list", None, None),
        (Command.TIME, "", None, None),
        (Command.TIME, "#12", None, None),
        (Command.PROFIT, "", None, None),
        (Command.DOCKET, "help", None, None),
    ],
)
def test_commands(command: Command, text: str, store: bool | None, ack_text: str | None) -> None:
    payload = {"command": command.value, "text": text, "trigger_id": "t"}
    kind = request_kind(payload)
    decision = classify(kind, request_name(kind, payload), payload)
    if store is None:
        assert decision is None
        return
    assert decision is not None and decision.store is store
    assert decision.ack == {"response_type": "ephemeral", "text": ack_text}


@pytest.mark.parametrize(
    ("action_id", "durable"),
    [
        (Action.ASSIGN_TO_ME, True),
        (Action.TAKE_TICKET, True),
        (Action.STATUS, True),
        (Action.CLOSE, True),
        (Action.OUTBOX_RETRY, True),
        (Action.REPLY, False),
        (Action.EDIT, False),  # opens a modal
        (Action.LOG_TIME, False),
        (Action.NEW_TICKET, False),
    ],
)
def test_buttons(action_id: Action, durable: bool) -> None:
    payload = {"type": "block_actions", "actions": [{"action_id": action_id.value}]}
    decision = classify("block_actions", request_name("block_actions", payload), payload)
    assert (decision is not None and decision.store) is durable


def _submission(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "view": {"callback_id": View.TICKET.value, "state": {"values": values}},
    }


def test_a_valid_ticket_form_is_stored_and_shows_saving() -> None:
    payload = _submission(form_values(title="Printer"))
    decision = classify("view_submission", request_name("view_submission", payload), payload)
    assert decision is not None and decision.store
    assert decision.ack is not None and decision.ack["response_action"] == "update"


def test_field_errors_come_back_without_storing() -> None:
    payload = _submission(form_values(title=""))
    decision = classify("view_submission", View.TICKET.value, payload)
    assert decision is not None and not decision.store
    assert decision.ack is not None and decision.ack["response_action"] == "errors"


def test_every_docket_form_is_stored_and_others_run_inline() -> None:
    settings = classify("view_submission", View.SETTINGS.value, _submission({}))
    assert settings is not None and settings.store
    assert classify("view_submission", "someone_elses_modal", _submission({})) is None
    assert classify("message_action", "create_ticket_from_message", {}) is None
