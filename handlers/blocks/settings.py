"""The `/docket settings` modal, reading its submission, and the view shown once it is saved.

Pure: no I/O. Field errors come back keyed by block id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handlers.blocks.common import Block, context, plain, section
from handlers.ids import View
from models.periods import previous, week_of
from models.tables import Workspace
from models.weekly import (
    WEEKDAYS,
    ReportTimeError,
    effective_report_time,
    parse_report_time,
    post_time,
)

MONTHLY_OPTION = "monthly"
_EMOJI_NAME = re.compile(r"[a-z0-9_+'-]{1,64}")


class Field(StrEnum):
    """Block ids of the settings modal (each input's action id is the same string)."""

    TIMEZONE = "settings_timezone"
    WEEKDAY = "settings_weekday"
    TIME = "settings_time"
    CHANNEL = "settings_channel"
    TARGET = "settings_target"
    CURRENCY = "settings_currency"
    MONTHLY = "settings_monthly"
    REACTION = "settings_reaction"


@dataclass(frozen=True)
class SettingsInput:
    """Validated values from the modal."""

    timezone: str
    report_weekday: int
    report_time: str
    managers_channel: str | None
    target_margin_pct: int
    currency: str
    monthly_post: bool
    ticket_reaction: str = "ticket"


def _input(field: Field, label: str, element: dict[str, Any], hint: str | None = None) -> Block:
    block: Block = {
        "type": "input",
        "block_id": field.value,
        "label": plain(label, 2000),
        "element": {**element, "action_id": field.value},
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, 75), "value": value}


def build_settings_modal(ws: Workspace) -> dict[str, Any]:
    """The settings modal filled with the workspace's current values (pure)."""
    days = [_option(name, str(i)) for i, name in enumerate(WEEKDAYS)]
    weekday = ws.report_weekday if 0 <= ws.report_weekday <= 6 else 0
    at, _ = effective_report_time(ws.report_time)
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "placeholder": plain("Choose the managers' channel"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if ws.managers_channel:
        channel["initial_conversation"] = ws.managers_channel
    monthly: dict[str, Any] = {
        "type": "checkboxes",
        "options": [_option("Post last month's report on the first working day", MONTHLY_OPTION)],
    }
    if ws.monthly_post:
        monthly["initial_options"] = [monthly["options"][0]]
    blocks: list[Block] = [
        section("Where and when managers get the profitability report."),
        _input(
            Field.TIMEZONE,
            "Time zone",
            {"type": "plain_text_input", "initial_value": ws.timezone, "max_length": 64},
            "An IANA name such as Europe/Berlin or America/New_York.",
        ),
        _input(
            Field.WEEKDAY,
            "Weekly report day",
            {"type": "static_select", "options": days, "initial_option": days[weekday]},
        ),
        _input(
            Field.TIME,
            "Report time",
            {"type": "timepicker", "initial_time": at.strftime("%H:%M")},
            "04:00 or later: clocks change between 00:00 and 04:00 on daylight-saving nights.",
        ),
        _input(Field.CHANNEL, "Managers' channel", channel, "Invite @Docket to it first."),
        _input(
            Field.TARGET,
            "Target margin (%)",
            {
                "type": "number_input",
                "is_decimal_allowed": False,
                "min_value": "0",
                "max_value": "100",
                "initial_value": str(ws.target_margin_pct),
            },
            "Customers below it are listed in the report.",
        ),
        _input(
            Field.CURRENCY,
            "Currency",
            {"type": "plain_text_input", "initial_value": ws.currency, "max_length": 3},
            "A 3-letter ISO code. Changing it does not convert amounts already recorded.",
        ),
        {
            "type": "input",
            "block_id": Field.MONTHLY.value,
            "optional": True,
            "label": plain("Monthly report"),
            "element": {**monthly, "action_id": Field.MONTHLY.value},
        },
        _input(
            Field.REACTION,
            "Ticket reaction",
            {"type": "plain_text_input", "initial_value": ws.ticket_reaction, "max_length": 64},
            "A team member's reaction with this emoji on a message in a customer's channel "
            "turns it into a ticket, e.g. ticket.",
        ),
    ]
    return {
        "type": "modal",
        "callback_id": View.SETTINGS.value,
        "title": plain("Docket settings", 24),
        "submit": plain("Save", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }


def _state(values: dict[str, Any], field: Field) -> dict[str, Any]:
    found = (values.get(field.value) or {}).get(field.value)
    return found if isinstance(found, dict) else {}


def parse_settings(values: dict[str, Any]) -> tuple[SettingsInput | None, dict[str, str]]:
    """Read and check the submitted values; field errors keyed by block id (pure)."""
    errors: dict[str, str] = {}
    tz = str(_state(values, Field.TIMEZONE).get("value") or "").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        errors[Field.TIMEZONE] = f"Unknown time zone {tz!r}: use a name such as Europe/Berlin."
    option = _state(values, Field.WEEKDAY).get("selected_option") or {}
    weekday_text = str(option.get("value", ""))
    weekday = int(weekday_text) if weekday_text.isdigit() else -1
    if not 0 <= weekday <= 6:
        errors[Field.WEEKDAY] = "Pick a day."
    report_time = ""
    try:
        picked = parse_report_time(str(_state(values, Field.TIME).get("selected_time") or ""))
        report_time = picked.strftime("%H:%M")
    except ReportTimeError as exc:
        errors[Field.TIME] = str(exc)
    channel = _state(values, Field.CHANNEL).get("selected_conversation") or None
    target_text = str(_state(values, Field.TARGET).get("value") or "").strip()
    target = int(target_text) if target_text.isdigit() else -1
    if not 0 <= target <= 100:
        errors[Field.TARGET] = "A whole number from 0 to 100."
    currency = str(_state(values, Field.CURRENCY).get("value") or "").strip().upper()
    if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
        errors[Field.CURRENCY] = "A 3-letter ISO code such as EUR, USD or GBP."
    selected = _state(values, Field.MONTHLY).get("selected_options") or []
    monthly = any(isinstance(o, dict) and o.get("value") == MONTHLY_OPTION for o in selected)
    reaction = str(_state(values, Field.REACTION).get("value") or "ticket").strip().strip(":")
    reaction = reaction.lower()
    if not _EMOJI_NAME.fullmatch(reaction):
        errors[Field.REACTION] = "An emoji name such as ticket or raising_hand."
    if errors:
        return None, errors
    return (
        SettingsInput(
            timezone=tz,
            report_weekday=weekday,
            report_time=report_time,
            managers_channel=str(channel) if channel else None,
            target_margin_pct=target,
            currency=currency,
            monthly_post=monthly,
            ticket_reaction=reaction,
        ),
        {},
    )


def build_saved_view(ws: Workspace, *, now: datetime) -> dict[str, Any]:
    """What the modal shows after saving: the schedule in words, with the next post (pure)."""
    tz = ZoneInfo(ws.timezone)
    at, _ = effective_report_time(ws.report_time)
    this_week = week_of(now.astimezone(tz).date())
    upcoming = post_time("weekly", previous(this_week), tz=tz, weekday=ws.report_weekday, at=at)
    if upcoming <= now:
        upcoming = post_time("weekly", this_week, tz=tz, weekday=ws.report_weekday, at=at)
    local = upcoming.astimezone(tz)
    channel = f"<#{ws.managers_channel}>" if ws.managers_channel else "no channel (set one)"
    lines = [
        "*Saved.*",
        f"Weekly report: {WEEKDAYS[ws.report_weekday]}s at {at:%H:%M} ({ws.timezone}) "
        f"in {channel}. Next: {local:%a %-d %b %Y, %H:%M}.",
        "Monthly report: first working day of each month."
        if ws.monthly_post
        else "Monthly report: off.",
        f"Target margin {ws.target_margin_pct} %, amounts in {ws.currency}.",
    ]
    return {
        "type": "modal",
        "callback_id": View.SETTINGS.value,
        "title": plain("Docket settings", 24),
        "close": plain("Done", 24),
        "blocks": [section("\n".join(lines)), context("Changes apply at once; no restart.")],
    }
