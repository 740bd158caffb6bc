"""What `/ticket <text>` asks for (pure parsing, shared by the listener and the intake)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from handlers.blocks.tickets import title_from_text
from models.tickets import TITLE_MAX

_NUMBER = re.compile(r"^#?(\d{1,9})$")
_HELP_WORDS = frozenset({"help", "?", "-h", "--help"})


@dataclass(frozen=True)
class TicketCommand:
    """What `/ticket <text>` asks for."""

    kind: Literal["form", "create", "show", "list", "help"]
    title: str = ""
    number: int | None = None
    query: str = ""
    problem: str | None = None


def parse_ticket_text(text: str | None) -> TicketCommand:
    """`""` form; `"123"`/`"show 123"` show; `"list ..."` list; `"help"`; else a new title."""
    text = " ".join((text or "").split())
    if not text:
        return TicketCommand("form")
    word, _, rest = text.partition(" ")
    lower = word.lower()
    if lower in _HELP_WORDS:
        return TicketCommand("help")
    number = _NUMBER.match(text)
    if number:
        return TicketCommand("show", number=int(number.group(1)))
    if lower == "show":
        number = _NUMBER.match(rest)
        if number:
            return TicketCommand("show", number=int(number.group(1)))
        return TicketCommand(
            "help", problem="`/ticket show` needs a ticket number, e.g. `/ticket show 123`."
        )
    if lower == "list":
        return TicketCommand("list", query=rest)
    if lower in ("new", "create"):
        return TicketCommand("create", title=rest) if rest else TicketCommand("form")
    return TicketCommand("create", title=text)


def split_title(text: str) -> tuple[str, str]:
    """A title that fits; text too long for one keeps the whole of it in the description."""
    if len(text) <= TITLE_MAX:
        return text, ""
    return title_from_text(text, TITLE_MAX), text
