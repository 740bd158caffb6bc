"""How SLA clocks read: one line per running target, and the warning and breach messages.

Pure builders: states in, text out (times in the workspace zone, passed in).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.blocks.common import escape
from models.sla import TARGET_LABELS, Target, TargetState, TargetStatus, format_minutes
from models.sla_store import NoticeFacts


def _wall_minutes(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()) // 60)


def local_moment(at: datetime, zone: ZoneInfo) -> str:
    """`Tue 09:40` in the workspace's zone."""
    return at.astimezone(zone).strftime("%a %H:%M")


def target_line(state: TargetState, *, zone: ZoneInfo, now: datetime) -> str | None:
    """A line such as "First response due Tue 09:40 (in 1h 20m)", "met in 35m" or "breached
    15m ago"; None for a target that does not apply."""
    label = TARGET_LABELS[state.target]
    if state.status == TargetStatus.NONE:
        return None
    if state.status == TargetStatus.MET:
        return f"{label} met in {format_minutes(state.used_minutes)}"
    if state.status == TargetStatus.BREACHED:
        if state.due is not None and state.stopped_at is None:
            return f"{label} breached {format_minutes(_wall_minutes(state.due, now))} ago"
        return f"{label} breached (took {format_minutes(state.used_minutes)})"
    if state.due is None:
        used, target = format_minutes(state.used_minutes), format_minutes(state.target_minutes or 0)
        return f"{label} paused ({used} of {target} used)"
    in_ = format_minutes(_wall_minutes(now, state.due))
    return f"{label} due {local_moment(state.due, zone)} (in {in_})"


def sla_lines(states: Mapping[Target, TargetState], *, zone: ZoneInfo, now: datetime) -> list[str]:
    """The lines a card or App Home shows for a ticket's targets (empty without an SLA)."""
    return [
        line
        for target in Target
        if target in states
        and (line := target_line(states[target], zone=zone, now=now)) is not None
    ]


def sla_context_text(
    states: Mapping[Target, TargetState] | None, *, zone: ZoneInfo, now: datetime
) -> str:
    """One context line for a card: the targets, or that the ticket has no SLA."""
    if states is None:
        return ""
    lines = sla_lines(states, zone=zone, now=now)
    return " · ".join(lines) if lines else "No SLA"


def notice_text(facts: NoticeFacts) -> str:
    """The message of a warning (to the assignee, or the card's thread) or a breach."""
    ticket, state = facts.ticket, facts.state
    subject = f"#{ticket.number} {escape(ticket.title)}"
    line = target_line(state, zone=facts.zone, now=facts.now) or ""
    target = format_minutes(state.target_minutes or 0)
    if facts.kind == "breach":
        return f":rotating_light: SLA breached on {subject}: {line} (target {target})."
    return f":hourglass_flowing_sand: SLA warning on {subject}: {line} (target {target})."
