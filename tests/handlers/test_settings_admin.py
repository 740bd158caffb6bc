"""`/docket settings`: the modal, its validation, admins only, and rescheduling on save."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from handlers.blocks.settings import Field, build_saved_view, build_settings_modal, parse_settings
from handlers.ids import View
from handlers.settings_admin import NOT_ADMIN, apply_settings
from models.tables import Workspace
from tests.slack_emulator import validate_view

NOW = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)


def form(
    *,
    tz: str = "Europe/Berlin",
    weekday: str = "4",
    at: str = "09:30",
    channel: str | None = "CMGRS2",
    target: str = "35",
    currency: str = "usd",
    monthly: bool = False,
    reaction: str | None = None,
) -> dict[str, Any]:
    """Slack's view.state.values for the settings modal."""
    options = [{"value": "monthly", "text": {"type": "plain_text", "text": "x"}}] if monthly else []
    return {
        Field.TIMEZONE: {Field.TIMEZONE: {"type": "plain_text_input", "value": tz}},
        Field.WEEKDAY: {
            Field.WEEKDAY: {"type": "static_select", "selected_option": {"value": weekday}}
        },
        Field.TIME: {Field.TIME: {"type": "timepicker", "selected_time": at}},
        Field.CHANNEL: {
            Field.CHANNEL: {"type": "conversations_select", "selected_conversation": channel}
        },
        Field.TARGET: {Field.TARGET: {"type": "number_input", "value": target}},
        Field.CURRENCY: {Field.CURRENCY: {"type": "plain_text_input", "value": currency}},
        Field.MONTHLY: {Field.MONTHLY: {"type": "checkboxes", "selected_options": options}},
        Field.REACTION: {Field.REACTION: {"type": "plain_text_input", "value": reaction}},
    }


def test_the_modal_is_valid_and_shows_the_current_settings() -> None:
    ws = Workspace(
        team_id="T1",
        timezone="America/New_York",
        report_weekday=2,
        report_time="07:45",
        managers_channel="CMGRS",
        target_margin_pct=25,
        currency="USD",
        monthly_post=True,
    )
    view = build_settings_modal(ws)
    assert validate_view(view) == []
    assert view["callback_id"] == View.SETTINGS
    elements = {b["block_id"]: b.get("element", {}) for b in view["blocks"] if "block_id" in b}
    assert elements[Field.TIMEZONE]["initial_value"] == "America/New_York"
    assert elements[Field.WEEKDAY]["initial_option"]["value"] == "2"
    assert elements[Field.TIME]["initial_time"] == "07:45"
    assert elements[Field.CHANNEL]["initial_conversation"] == "CMGRS"
    assert elements[Field.TARGET]["initial_value"] == "25"
    assert elements[Field.MONTHLY]["initial_options"][0]["value"] == "monthly"
    assert elements[Field.REACTION]["initial_value"] == "ticket"


def test_valid_settings_are_read() -> None:
    data, errors = parse_settings(form(monthly=True))
    assert errors == {} and data is not None
    assert (data.timezone, data.report_weekday, data.report_time) == ("Europe/Berlin", 4, "09:30")
    assert (data.managers_channel, data.target_margin_pct, data.currency) == ("CMGRS2", 35, "USD")
    assert data.monthly_post is True
    assert data.ticket_reaction == "ticket"  # left empty: the default
    named, _ = parse_settings(form(reaction=" :Raising_Hand: "))
    assert named is not None and named.ticket_reaction == "raising_hand"
    ws = Workspace(team_id="T1")
    apply_settings(ws, named, now=NOW)
    assert ws.ticket_reaction == "raising_hand"


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"at": "02:30"}, Field.TIME, "daylight-saving"),
        ({"at": "00:00"}, Field.TIME, "daylight-saving"),
        ({"tz": "Mars/Olympus"}, Field.TIMEZONE, "Unknown time zone"),
        ({"currency": "EURO"}, Field.CURRENCY, "3-letter"),
        ({"target": "101"}, Field.TARGET, "0 to 100"),
        ({"weekday": "9"}, Field.WEEKDAY, "Pick a day"),
        ({"reaction": "<!channel>"}, Field.REACTION, "emoji name"),
    ],
)
def test_bad_values_are_field_errors(values: dict[str, str], field: Field, words: str) -> None:
    data, errors = parse_settings(form(**values))  # type: ignore[arg-type]
    assert data is None and words in errors[field]


def test_switching_the_monthly_post_on_records_since_when() -> None:
    ws = Workspace(team_id="T1", monthly_post=False)
    data, _ = parse_settings(form(monthly=True))
    assert data is not None
    assert apply_settings(ws, data, now=NOW) is True
    assert ws.settings["monthly_post_since"] == NOW.isoformat()
    later, _ = parse_settings(form(monthly=True, target="40"))
    assert later is not None
    assert apply_settings(ws, later, now=datetime(2025, 7, 1, tzinfo=UTC)) is False
    assert ws.settings["monthly_post_since"] == NOW.isoformat()  # unchanged: it stayed on


def test_the_saved_view_names_the_next_post() -> None:
    ws = Workspace(
        team_id="T1",
        timezone="Europe/Berlin",
        report_weekday=4,
        report_time="09:30",
        managers_channel="CMGRS2",
        monthly_post=False,
    )
    view = build_saved_view(ws, now=NOW)  # Wednesday 4 June
    assert validate_view(view) == []
    text = view["blocks"][0]["text"]["text"]
    assert "Fridays at 09:30" in text and "Next: Fri 6 Jun 2025, 09:30" in text
    assert "<#CMGRS2>" in text and "Monthly report: off" in text


# --- through the real app ------------------------------------------------------------------


async def test_an_admin_opens_the_modal_and_saving_reschedules(docket: Any) -> None:
    calls: list[int] = []
    docket.services.on_reschedule = calls.append
    reply = await docket.command("/docket", "settings", user_id="UADMIN")
    assert reply.status == 200
    opened = await docket.emulator.wait_for(lambda c: c.method == "views.open")
    view = opened.response["view"]
    assert view["callback_id"] == View.SETTINGS

    submission = docket.requests.view_submission(
        View.SETTINGS, form(at="10:15", monthly=True), view=view, user_id="UADMIN"
    )
    answer = await docket.interact(submission)
    assert answer.status == 200
    body = answer.json()
    assert body["response_action"] == "update" and "Saved" in str(body["view"])
    async with docket.services.read() as session:
        ws = await session.get(Workspace, docket.services.workspace_id)
    assert ws is not None
    assert (ws.report_weekday, ws.report_time, ws.currency) == (4, "10:15", "USD")
    assert ws.managers_channel == "CMGRS2" and ws.target_margin_pct == 35
    assert calls == [docket.services.workspace_id]


async def test_a_time_in_the_quiet_window_is_refused_in_the_modal(docket: Any) -> None:
    calls: list[int] = []
    docket.services.on_reschedule = calls.append
    submission = docket.requests.view_submission(View.SETTINGS, form(at="02:30"), user_id="UADMIN")
    answer = await docket.interact(submission)
    body = answer.json()
    assert body["response_action"] == "errors"
    assert "daylight-saving" in body["errors"][Field.TIME]
    assert calls == []


async def test_non_admins_can_neither_open_nor_save(docket: Any) -> None:
    calls: list[int] = []
    docket.services.on_reschedule = calls.append
    await docket.command("/docket", "settings", user_id="UAGENT")
    response = await docket.emulator.wait_for(lambda c: c.method == "response_url")
    assert NOT_ADMIN in str(response.args)
    assert docket.emulator.calls_to("views.open") == []
    forged = docket.requests.view_submission(View.SETTINGS, form(), user_id="UAGENT")
    body = (await docket.interact(forged)).json()
    assert body["response_action"] == "errors" and NOT_ADMIN in str(body["errors"])
    assert calls == []
