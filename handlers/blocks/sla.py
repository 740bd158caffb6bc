"""How SLA clocks read: one line per running target, and the warning and breach messages.

Pure builders: states in, text out (times in the workspace zone, passed in).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from handlers.blocks.common import Block, context, escape, header, section
from models.sla import (
    PRIORITIES,
    TARGET_LABELS,
    WEEKDAYS,
    Calendar,
    Policy,
    Target,
    TargetState,
    TargetStatus,
    format_minutes,
)
from models.sla_report import SlaReport
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


def build_sla_settings(
    *,
    calendar: Calendar,
    policies: list[Policy],
    holidays: list[tuple[date, str]],
    warning_pct: int,
    usage: str,
) -> list[Block]:
    """What `/docket sla` shows: hours, holidays, policies, the warning share, and how to
    change them."""
    days = []
    for index, name in enumerate(WEEKDAYS):
        hours = calendar.hours.get(index)
        when = f"{hours[0].strftime('%H:%M')}-{hours[1].strftime('%H:%M')}" if hours else "closed"
        days.append(f"{name.capitalize()} {when}")
    lines = [
        f"*Business hours* ({escape(calendar.zone.key)}): " + " · ".join(days),
        "*Holidays*: "
        + (", ".join(f"{d.isoformat()} {escape(n)}".rstrip() for d, n in holidays[:30]) or "none"),
        f"*Warning* at {warning_pct}% of a target",
    ]
    blocks: list[Block] = [header("Service levels"), section("\n".join(lines))]
    if not policies:
        blocks.append(section("*Policies*: none yet, so no ticket has an SLA clock."))
    for policy in sorted(policies, key=lambda p: p.name)[:40]:
        targets = [
            f"{priority}: {t.first_response or '-'} / {t.resolution or '-'}"
            for priority in PRIORITIES
            if (t := policy.targets.get(priority)) is not None
        ]
        blocks.append(
            section(
                f"*{escape(policy.name)}* ({policy.calendar}; first response / resolution) "
                + (" · ".join(targets) or "no targets")
            )
        )
    blocks.append(context(usage))
    return blocks


def _pct(met: int, breached: int) -> str:
    return f"{round(100 * met / (met + breached))}%" if met + breached else "–"


def build_service_levels(
    report: SlaReport, margins: Mapping[str, Decimal | None], *, limit: int = 10
) -> list[Block]:
    """The "Service levels" section of the managers' post and `/profit`: targets met, and the
    customers with breaches beside their margin. Empty when no ticket had an SLA."""
    counts = {(t, s): 0 for t in Target for s in TargetStatus}
    for customer in report.customers:
        for key, n in customer.counts.items():
            counts[key] += n
    met = {t: counts[(t, TargetStatus.MET)] for t in Target}
    breached = {t: counts[(t, TargetStatus.BREACHED)] for t in Target}
    running = sum(counts[(t, TargetStatus.RUNNING)] for t in Target)
    finished = sum(met.values()) + sum(breached.values())
    if finished + running == 0:
        return []
    fr, res = Target.FIRST_RESPONSE, Target.RESOLUTION
    lines = [
        f"*Service levels* ({report.period.key}): {_pct(sum(met.values()), sum(breached.values()))}"
        f" of {finished} finished targets met (first response {_pct(met[fr], breached[fr])}, "
        f"resolution {_pct(met[res], breached[res])}); {running} still running."
    ]
    breaching = sorted(
        (
            c
            for c in report.customers
            if c.count(fr, TargetStatus.BREACHED) + c.count(res, TargetStatus.BREACHED)
        ),
        key=lambda c: -(c.count(fr, TargetStatus.BREACHED) + c.count(res, TargetStatus.BREACHED)),
    )
    for c in breaching[:limit]:
        n = c.count(fr, TargetStatus.BREACHED) + c.count(res, TargetStatus.BREACHED)
        margin = margins.get(c.customer)
        median = c.median_first_response
        parts = [
            f"{n} breached",
            f"{_pct(c.count(fr, TargetStatus.MET) + c.count(res, TargetStatus.MET), n)} met",
            f"median first response {format_minutes(int(median))}" if median is not None else "",
            f"margin {margin}%" if margin is not None else "margin –",
        ]
        lines.append(f"• {escape(c.customer)}: " + " · ".join(p for p in parts if p))
    if not breaching:
        lines.append("No breaches.")
    return [section("\n".join(lines))]
