"""`/docket settings`: admins set the time zone, report schedule, managers' channel, target
margin, currency, monthly post and the ticket reaction. A saved change reschedules the reports
at once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from handlers.ack import Answer, answer_within_budget
from handlers.blocks.common import form_values
from handlers.blocks.settings import (
    Field,
    SettingsInput,
    build_saved_view,
    build_settings_modal,
    parse_settings,
)
from handlers.docket_cmd import subcommand
from handlers.ids import Command, View
from handlers.listeners import Slash, on_command
from handlers.people import resolve_member
from models.people import is_admin
from models.tables import Member, Workspace
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

NOT_ADMIN = "Only Docket admins can change the settings."


def apply_settings(ws: Workspace, data: SettingsInput, *, now: datetime) -> bool:
    """Copy the values onto the workspace; True when the report schedule changed."""
    before = (ws.timezone, ws.report_weekday, ws.report_time, ws.monthly_post, ws.managers_channel)
    if data.monthly_post and not ws.monthly_post:
        # Months due before this moment are not caught up: the post was off then.
        ws.settings = {**(ws.settings or {}), "monthly_post_since": now.isoformat()}
    ws.timezone = data.timezone
    ws.report_weekday = data.report_weekday
    ws.report_time = data.report_time
    ws.managers_channel = data.managers_channel
    ws.target_margin_pct = data.target_margin_pct
    ws.currency = data.currency
    ws.monthly_post = data.monthly_post
    ws.ticket_reaction = data.ticket_reaction
    after = (ws.timezone, ws.report_weekday, ws.report_time, ws.monthly_post, ws.managers_channel)
    return before != after


async def _settings_command(slash: Slash) -> None:
    """`/docket settings`: open the modal for admins, explain to everyone else."""
    command, respond, client, services = slash
    member = await resolve_member(
        services, command["user_id"], client=client, name_hint=command.get("user_name", "")
    )
    if not is_admin(member):
        await respond(text=NOT_ADMIN, response_type="ephemeral")
        return
    async with services.read() as session:
        ws = await get_workspace(session=session, workspace_id=services.workspace_id)
    await client.views_open(trigger_id=command["trigger_id"], view=build_settings_modal(ws))


handle_settings_command = on_command(_settings_command)


async def handle_settings_submission(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, services: Services
) -> None:
    """Save the settings (admins only: the role is checked again here) and reschedule."""
    values = form_values(body.get("view", {}))
    data, errors = parse_settings(values)
    if data is None:
        await ack(response_action="errors", errors=errors)
        return
    now = services.now()
    user_id = str(body["user"]["id"])

    saved: tuple[Member | None, Workspace | None, bool] = (None, None, False)

    async def save() -> Answer:
        nonlocal saved
        member = await resolve_member(services, user_id, client=client)
        if not is_admin(member):
            saved = (member, None, False)
            return Answer(errors={Field.TIMEZONE.value: NOT_ADMIN}, late=NOT_ADMIN)
        async with services.transaction() as session:
            ws = await get_workspace(session=session, workspace_id=services.workspace_id)
            # The workspace row belongs to this session: its changes are written at commit.
            changed = apply_settings(ws, data, now=now)
        saved = (member, ws, changed)
        return Answer(view=build_saved_view(ws, now=now), late="Settings saved.")

    await answer_within_budget(ack, client, user_id, save())
    member, ws, changed = saved
    if ws is None or member is None:
        return
    services.timezone = ZoneInfo(ws.timezone)
    if changed and services.on_reschedule is not None:
        services.on_reschedule(services.workspace_id)
    logger.info("workspace %s: settings saved by %s", services.workspace_id, member.id)


def register(app: AsyncApp) -> None:
    app.command(Command.DOCKET.value, matchers=[subcommand("settings")])(handle_settings_command)
    app.view(View.SETTINGS.value)(handle_settings_submission)
