"""The `/profit` answer: the report table as code sections within Slack's limits. Pure."""

from __future__ import annotations

from handlers.blocks.common import Block, context, escape, header, section
from models.reporting import Report, render_table

CODE_CHUNK = 2800  # characters of table per section (Slack allows 3,000 with the fences)
MAX_TABLE_BLOCKS = 40


def table_blocks(table: str) -> list[Block]:
    """The report table as code sections, split at line ends within Slack's limits."""
    chunks: list[str] = []
    current: list[str] = []
    for line in table.rstrip("\n").split("\n"):
        if current and sum(len(x) + 1 for x in current) + len(line) > CODE_CHUNK:
            chunks.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("\n".join(current))
    blocks = [section(f"```\n{escape(chunk)}\n```") for chunk in chunks[:MAX_TABLE_BLOCKS]]
    if len(chunks) > MAX_TABLE_BLOCKS:
        blocks.append(context("The table is cut here: `/profit export` sends all of it."))
    return blocks


def build_profit_blocks(report: Report) -> list[Block]:
    """The `/profit` answer: the same table `docket report profitability` prints."""
    blocks = [header(report.title), *table_blocks(render_table(report))]
    blocks.append(
        context(
            "Revenue, labour cost and direct cost are rounded once each; contribution = "
            "revenue − direct cost − labour cost. `/profit export` sends the CSV to your DM."
        )
    )
    return blocks


def table_text(blocks: list[Block]) -> str:
    """The table text inside `build_profit_blocks`' code sections (for comparisons)."""
    parts = []
    for block in blocks:
        text = ((block.get("text") or {}).get("text")) or ""
        if text.startswith("```\n") and text.endswith("\n```"):
            parts.append(text[4:-4].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    return "\n".join(parts) + "\n"
