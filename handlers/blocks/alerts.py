"""Block Kit for monitoring alerts: the alert part of a ticket card, and alert notices. Pure.

Alert text comes from a monitoring system (labels, annotations): it is escaped like anything a
person typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handlers.blocks.common import Block, context, escape, header, safe, section
from handlers.blocks.tickets import build_ticket_card, ref
from models.alerts import AlertInfo
from models.tables import AlertSource
from models.tickets import TicketCard

DETAILS_LIMIT = 1000
STORM_LINES = 20
STORM_TEXT_BUDGET = 2600  # the list's share of a 3,000-character section
INTEGRATIONS_USAGE = (
    "Add one with `/docket integrations add NAME [--auto-resolve] [--customer-label LABEL]`."
)


def _when(at: datetime) -> str:
    stamp = int(at.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def alert_blocks(info: AlertInfo) -> list[Block]:
    """What the card shows about its alert: state, occurrences, latest details, the customer
    flag, and for a storm the alerts it folded."""
    source = safe(info.source, 64)
    blocks: list[Block] = []
    if info.kind == "storm":
        lines: list[str] = []
        for line in info.listed[:STORM_LINES]:
            entry = f"• {safe(line, 120)}"
            if sum(len(x) + 1 for x in lines) + len(entry) > STORM_TEXT_BUDGET:
                break
            lines.append(entry)
        more = info.listed_total - len(lines)
        if more > 0:
            lines.append(f"_… and {more} more_")
        blocks.append(
            section(
                f":cyclone: *Alert storm* from `{source}`: {info.listed_total} new alert"
                f"{'s' if info.listed_total != 1 else ''} folded into this ticket "
                f"(last {_when(info.last_at)})\n" + "\n".join(lines)
            )
        )
    else:
        state = (
            ":rotating_light: Firing" if info.status == "firing" else ":white_check_mark: Cleared"
        )
        severity = f" · severity `{safe(info.severity, 32)}`" if info.severity else ""
        times = "occurrence" if info.occurrences == 1 else "occurrences"
        blocks.append(
            context(
                f"{state} · alert from `{source}`{severity} · *{info.occurrences}* {times}"
                f" · last {_when(info.last_at)}"
            )
        )
        if info.details:
            blocks.append(section(f"*Latest:* {safe(info.details, DETAILS_LIMIT)}"))
    if info.customer_unknown:
        value = f" (label value `{safe(info.customer_value, 100)}`)" if info.customer_value else ""
        blocks.append(
            context(f":warning: *Customer unknown*{value}: set the customer on the ticket")
        )
    return blocks


def build_alert_card(card: TicketCard, info: AlertInfo, *, now: datetime) -> list[Block]:
    """The ticket card with its alert part above the buttons."""
    blocks = build_ticket_card(card, now=now)
    extra = alert_blocks(info)
    if blocks and blocks[-1].get("type") == "actions":
        return [*blocks[:-1], *extra, blocks[-1]]
    return [*blocks, *extra]


def alert_card_text(card: TicketCard, info: AlertInfo) -> str:
    """The notification text of an alert card."""
    what = "Alert storm" if info.kind == "storm" else "Alert"
    unknown = " (customer unknown)" if info.customer_unknown else ""
    return f"{what} {ref(card.number)}: {escape(card.title)}{unknown}"


def cleared_text(card: TicketCard, info: AlertInfo) -> str:
    """The DM to the assignee of a ticket whose alert cleared."""
    return (
        f":white_check_mark: The alert on {ref(card.number)} · {safe(card.title, 200)} cleared "
        f"(`{safe(info.source, 64)}`). The ticket stays open for you to close."
    )


def severity_rose_text(card: TicketCard, info: AlertInfo) -> str:
    """The notice that an open alert became more urgent."""
    return (
        f":arrow_double_up: The alert on {ref(card.number)} · {safe(card.title, 200)} is now "
        f"`{safe(info.severity, 32)}` (priority {card.priority})."
    )


def build_sources_list(sources: Sequence[AlertSource], *, note: str | None = None) -> list[Block]:
    """`/docket integrations`: the alert sources and how to add one."""
    blocks: list[Block] = [header("Monitoring alert sources")]
    if note:
        blocks.append(section(note))
    if not sources:
        blocks.append(section("No alert sources yet."))
    for source in sources[:40]:
        resolve = "auto-resolves untouched tickets" if source.auto_resolve else "manual resolve"
        blocks.append(
            section(
                f"*{safe(source.name, 64)}* · `/integrations/alerts/{safe(source.name, 64)}`\n"
                f"customer label `{safe(source.customer_label, 100)}` · {resolve} · storm over "
                f"{source.storm_per_minute} new alerts a minute"
            )
        )
    blocks.append(context(INTEGRATIONS_USAGE))
    return blocks


def source_created_text(source: AlertSource) -> str:
    """The answer to `/docket integrations add`: where to post and the secret (shown once)."""
    return (
        f"Alert source *{safe(source.name, 64)}* created. Point the monitoring system at "
        f"`<Docket URL>/integrations/alerts/{safe(source.name, 64)}` with the header "
        f"`Authorization: Bearer <secret>` (or sign bodies, see the docs).\nSecret: "
        f"`{source.secret}`"
    )
