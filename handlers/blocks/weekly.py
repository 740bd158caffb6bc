"""Block Kit for the managers' profitability post (weekly, monthly, and `/profit week`).

Pure: a `WeeklySummary` in, blocks out. Stays inside Slack's limits (50 blocks, 3,000
characters per section); long lists end with "and N more"; every name is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.blocks.common import (
    SECTION_LIMIT,
    Block,
    context,
    cut,
    escape,
    header,
    safe,
    section,
)
from models.money import format_amount
from models.weekly import (
    NO_DATA_SENTENCE,
    Unit,
    WeeklySummary,
    format_break_even,
    format_customer,
    format_restatement,
    format_value,
    metric_table,
)

MAX_BLOCKS = 50
LIST_LIMIT = 10
NAME_LIMIT = 80
DIVIDER: Block = {"type": "divider"}


def _name(text: str) -> str:
    return safe(text, NAME_LIMIT)


def listing(title: str, items: Sequence[str], *, limit: int = LIST_LIMIT) -> str:
    """``*title*`` and one bullet per item, ending in "and N more" when cut by count or size.

    Items must already be escaped; the result always fits in one section.
    """
    head = f"*{title}*"
    lines: list[str] = []
    used = len(head)
    for index, item in enumerate(items):
        line = "\n• " + cut(item, 600)
        remaining = len(items) - index - 1
        # Room for this line and, if anything follows, the "and N more" line.
        reserve = len(f"\n_and {len(items)} more_") if remaining else 0
        if index >= limit or used + len(line) + reserve > SECTION_LIMIT:
            lines.append(f"\n_and {len(items) - index} more_")
            break
        lines.append(line)
        used += len(line)
    return head + "".join(lines)


def weekly_fallback_text(summary: WeeklySummary) -> str:
    """The notification text (and what screen readers announce) for the post."""
    if not summary.has_data:
        return f"Profitability {summary.title}: no activity recorded."
    cur = summary.currency
    revenue = summary.metric("revenue")
    contribution = summary.metric("contribution")
    margin = summary.metric("margin")
    return (
        f"Profitability {summary.title}: revenue {format_value(revenue.value, Unit.MONEY, cur)}, "
        f"contribution {format_value(contribution.value, Unit.MONEY, cur)}, "
        f"margin {format_value(margin.value, Unit.PERCENT, cur)}"
    )


def build_weekly_blocks(summary: WeeklySummary, *, chart_follows: bool = False) -> list[Block]:
    """The post: headline table, customers, break-even, data quality, restatements, definitions.

    ``chart_follows`` adds a line saying the chart is posted with it.
    """
    cur = summary.currency
    blocks: list[Block] = [header(f"Profitability: {summary.title}")]
    if not summary.has_data:
        blocks.append(section(NO_DATA_SENTENCE))
    # Only our own figures are in the table; escaping keeps "<" or "&" literal regardless.
    blocks.append(section("```" + escape(metric_table(summary)) + "```"))

    customer_lists: list[tuple[str, Sequence[str]]] = [
        (
            "Top customers by contribution",
            [format_customer(c, cur, name=_name(c.name)) for c in summary.top],
        ),
        (
            "Bottom customers by contribution",
            [format_customer(c, cur, name=_name(c.name)) for c in summary.bottom],
        ),
        (
            f"Under the {summary.target_margin_pct} % target margin",
            [format_customer(c, cur, name=_name(c.name)) for c in summary.under_target],
        ),
        (
            "Fixed-fee contracts past break-even this month",
            [
                format_break_even(b, _name(b.customer_name), _name(b.contract_name))
                for b in summary.past_break_even
            ],
        ),
    ]
    shown = [(title, items) for title, items in customer_lists if items]
    if shown:
        blocks.append(DIVIDER)
        blocks.extend(section(listing(title, items)) for title, items in shown)

    if summary.quality:
        blocks.append(
            section(listing(":warning: Data quality", [safe(line) for line in summary.quality]))
        )
    if summary.restatements:
        total = sum(r.change_minor for r in summary.restatements)
        sign = "+" if total >= 0 else "-"
        blocks.append(
            section(
                listing(
                    f"Restated earlier periods (contribution {sign}"
                    f"{format_amount(abs(total), cur)} in total)",
                    [
                        format_restatement(r, _name(r.customer_name), cur)
                        for r in summary.restatements
                    ],
                )
            )
        )
    if chart_follows:
        blocks.append(context("The chart follows in this channel."))
    blocks.append(context(summary.definitions))
    # The layout above has a fixed number of blocks far under the limit; keep it honest.
    return blocks[:MAX_BLOCKS]
