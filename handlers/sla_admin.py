"""`/docket sla`: managers and admins set the business hours, holidays, SLA policies and the
warning share; without arguments it shows them.

    /docket sla hours mon-fri 09:00-17:00      (or `sat closed`)
    /docket sla holiday 2025-12-25 Christmas   (or `holiday remove 2025-12-25`)
    /docket sla policy default urgent 30m 4h   (optional calendar: `policy gold 24x7 urgent 15m 2h`;
                                                `-` for no target)
    /docket sla warning 80

Every change re-evaluates the clocks of unfinished tickets.
"""

from __future__ import annotations

import logging
import re
from datetime import date

from slack_bolt.async_app import AsyncApp

from bot.services import Services
from handlers.blocks.common import escape, section
from handlers.blocks.sla import build_sla_settings
from handlers.docket_cmd import split_subcommand, subcommand
from handlers.ids import Command
from handlers.listeners import Slash, on_command
from handlers.people import command_member
from models.people import can_see_money
from models.sla import ALWAYS, BUSINESS, DEFAULT_HOURS, PRIORITIES, PriorityTargets
from models.sla_import import parse_weekday
from models.sla_store import (
    SlaInputError,
    check_clock,
    list_holidays,
    refresh_open_tickets,
    remove_holiday,
    replace_business_hours,
    save_holiday,
    save_policy,
    set_warning_pct,
    workspace_calendar,
    workspace_policies,
)
from models.workspaces import get_workspace

logger = logging.getLogger(__name__)

NOT_MANAGER = "Only managers and admins can change service levels."
USAGE = (
    "`/docket sla hours mon-fri 09:00-17:00` · `/docket sla hours sat closed` · "
    "`/docket sla holiday 2025-12-25 Christmas` · `/docket sla holiday remove 2025-12-25` · "
    "`/docket sla policy default urgent 30m 4h` (add `24x7` after the name for round-the-clock; "
    "`-` for no target) · `/docket sla warning 75`"
)
_HOURS = re.compile(r"^(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})$")


def parse_days(text: str) -> list[int]:
    """`mon-fri`, `sat`, `mon,wed,fri` -> weekday numbers (0 = Monday)."""
    days: list[int] = []
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        start = parse_weekday(first)
        end = parse_weekday(last) if last else start
        if end < start:
            raise SlaInputError(f"{part!r}: the days run backwards")
        days.extend(range(start, end + 1))
    return days


async def _apply(services: Services, text: str) -> str:
    """Carry out one `/docket sla ...` change; returns what was saved."""
    what, rest = split_subcommand(text)
    args = rest.split()
    ws = services.workspace_id
    async with services.transaction() as session:
        if what == "hours" and len(args) == 2:
            days = parse_days(args[0])
            calendar = await workspace_calendar(session=session, workspace_id=ws)
            hours = {
                d: (start.strftime("%H:%M"), end.strftime("%H:%M"))
                for d, (start, end) in (calendar.hours or DEFAULT_HOURS).items()
            }
            if args[1].lower() == "closed":
                for weekday in days:
                    hours.pop(weekday, None)
                done = f"closed on {args[0]}"
            else:
                match = _HOURS.match(args[1])
                if match is None:
                    raise SlaInputError(f"{args[1]!r} is not hours like 09:00-17:00")
                start, end = check_clock(match.group(1)), check_clock(match.group(2))
                hours.update({weekday: (start, end) for weekday in days})
                done = f"hours {start}-{end} on {args[0]}"
            await replace_business_hours(session=session, workspace_id=ws, hours=hours)
        elif what == "holiday" and len(args) >= 2 and args[0].lower() == "remove":
            removed = _date(args[1])
            await remove_holiday(session=session, workspace_id=ws, day=removed)
            done = f"holiday {removed.isoformat()} removed"
        elif what == "holiday" and args:
            day = _date(args[0])
            name = " ".join(args[1:])
            await save_holiday(session=session, workspace_id=ws, day=day, name=name)
            done = f"holiday {day.isoformat()} {name}".rstrip()
        elif what == "policy" and len(args) in (4, 5):
            name = args[0]
            calendar_kind = BUSINESS
            if len(args) == 5:
                calendar_kind = args.pop(1).lower()
                if calendar_kind not in (BUSINESS, ALWAYS):
                    raise SlaInputError(f"{calendar_kind!r} is not business or 24x7")
            else:
                existing = await workspace_policies(session=session, workspace_id=ws)
                if name in existing:
                    calendar_kind = existing[name][1].calendar
            priority = args[1].lower()
            if priority not in PRIORITIES:
                raise SlaInputError(f"priority {args[1]!r} is not {', '.join(PRIORITIES)}")
            first, resolution = (None if a == "-" else a for a in args[2:4])
            await save_policy(
                session=session,
                workspace_id=ws,
                name=name,
                calendar=calendar_kind,
                targets={priority: PriorityTargets(first, resolution)},
            )
            done = f"policy {name} ({calendar_kind}): {priority} {args[2]} / {args[3]}"
        elif what == "warning" and len(args) == 1 and args[0].rstrip("%").isdigit():
            pct = int(args[0].rstrip("%"))
            await set_warning_pct(session=session, workspace_id=ws, pct=pct)
            done = f"warning at {pct}% of a target"
        else:
            raise SlaInputError(f"I did not understand that. {USAGE}")
        await refresh_open_tickets(session=session, workspace_id=ws, at=services.now())
    return done


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SlaInputError(f"{text!r} is not a date like 2025-12-25") from None


async def _sla_command(slash: Slash) -> None:
    """`/docket sla [...]`: show or change the service-level settings (managers, admins)."""
    command, respond, client, services = slash
    try:
        if not can_see_money(await command_member(services, command, client)):
            await respond(text=f":no_entry: {NOT_MANAGER}", response_type="ephemeral")
            return
        _, rest = split_subcommand(command.get("text"))
        saved = await _apply(services, rest) if rest else None
        async with services.read() as session:
            ws = await get_workspace(session=session, workspace_id=services.workspace_id)
            calendar = await workspace_calendar(session=session, workspace_id=services.workspace_id)
            policies = await workspace_policies(session=session, workspace_id=services.workspace_id)
            holidays = await list_holidays(session=session, workspace_id=services.workspace_id)
        blocks = build_sla_settings(
            calendar=calendar,
            policies=[p for _, p in policies.values()],
            holidays=holidays,
            warning_pct=ws.sla_warning_pct,
            usage=USAGE,
        )
        if saved:
            blocks.insert(0, section(f":white_check_mark: Saved: {escape(saved)}."))
        await respond(blocks=blocks, text="Service levels", response_type="ephemeral")
    except SlaInputError as exc:
        await respond(text=f":warning: {escape(str(exc))}", response_type="ephemeral")
    except Exception:
        logger.exception("/docket sla failed")
        await respond(text="Sorry, Docket could not do that.", response_type="ephemeral")


handle_sla_command = on_command(_sla_command)


def register(app: AsyncApp) -> None:
    """Wire `/docket sla`."""
    app.command(Command.DOCKET.value, matchers=[subcommand("sla")])(handle_sla_command)
