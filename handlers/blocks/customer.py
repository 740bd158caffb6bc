"""What Docket says in a customer's own (shared) channel: plain, customer-facing text only.

Pure: no I/O. Nothing here carries buttons, menus or internal fields (contract, priority,
assignee, time): a customer's channel only ever gets these short texts, in the thread of the
customer's message. Names come through safe(), so nobody can ping a channel through them.
"""

from __future__ import annotations

from handlers.blocks.common import safe
from handlers.blocks.tickets import ref
from models.customer_channel import Notice

NAME_LIMIT = 80


def acknowledgement_text(number: int) -> str:
    """The answer under a customer's message that opened a ticket."""
    return (
        f":ticket: Thanks, this is ticket *{ref(number)}*. "
        "We'll answer in this thread; add anything else here too."
    )


def taken_text(number: int, name: str) -> str:
    who = safe(name, NAME_LIMIT) or "Someone from the team"
    return f":raising_hand: {who} is looking at *{ref(number)}*."


def waiting_text(number: int) -> str:
    return (
        f":hourglass_flowing_sand: *{ref(number)}* is waiting on you: "
        "reply in this thread when you can."
    )


def resolved_text(number: int) -> str:
    return f":white_check_mark: *{ref(number)}* is resolved. Reply here to reopen it."


def notice_text(notice: Notice, number: int, *, name: str = "") -> str:
    """The customer-facing text of `notice` for ticket `number`."""
    if notice is Notice.ACK:
        return acknowledgement_text(number)
    if notice is Notice.TAKEN:
        return taken_text(number, name)
    if notice is Notice.WAITING:
        return waiting_text(number)
    return resolved_text(number)
