"""The `/docket outbox` list: messages that could not be delivered, with Retry buttons. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.blocks.common import Block, button, context, cut, escape, header, section
from handlers.ids import Action
from models.outbox import describe
from models.tables import OutboxMessage

# Two blocks per row plus a few around them stays under Slack's 50 blocks per message.
MAX_LISTED = 20
RETRY_ALL = "all"


def build_outbox_list(
    rows: Sequence[OutboxMessage], counts: dict[str, int], *, note: str | None = None
) -> list[Block]:
    """The dead rows, newest first, each with its reason and a Retry button."""
    blocks: list[Block] = [
        header("Docket outbox"),
        context(
            f"{counts.get('pending', 0)} waiting · {counts.get('delivered', 0)} delivered · "
            f"{counts.get('dead', 0)} could not be delivered"
        ),
    ]
    if note:
        blocks.append(section(note))
    if not rows:
        blocks.append(section("Nothing is stuck: every message was delivered or is on its way."))
        return blocks
    for row in rows[:MAX_LISTED]:
        queued = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
        error = escape(cut(row.last_error or "unknown error", 500))
        text = (
            f"*{row.id}* · {escape(describe(row))}\n"
            f"{error}\n_{row.attempts} attempt(s), queued {queued}_"
        )
        block = section(text)
        block["accessory"] = button("Retry", Action.OUTBOX_RETRY.value, str(row.id))
        blocks.append(block)
    if len(rows) > MAX_LISTED:
        blocks.append(context(f"Showing the newest {MAX_LISTED} of {len(rows)}."))
    if len(rows) > 1:
        retry_all = button("Retry all", Action.OUTBOX_RETRY.value, RETRY_ALL, "primary")
        blocks.append({"type": "actions", "elements": [retry_all]})
    return blocks
