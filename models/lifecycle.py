"""The ticket lifecycle as data: which status may follow which.

new -> open -> waiting -> resolved -> closed, with reopen (resolved/closed -> open). Pure: no
I/O, so every rule is checked by plain, fast tests.
"""

from __future__ import annotations

from models.tables import TicketStatus

S = TicketStatus

# The transition table. A move not listed here is refused with LifecycleError.
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.NEW: frozenset({S.OPEN, S.WAITING, S.RESOLVED, S.CLOSED}),
    S.OPEN: frozenset({S.WAITING, S.RESOLVED, S.CLOSED}),
    S.WAITING: frozenset({S.OPEN, S.RESOLVED, S.CLOSED}),
    S.RESOLVED: frozenset({S.OPEN, S.CLOSED}),  # -> open is a reopen
    S.CLOSED: frozenset({S.OPEN}),  # reopen
}

# Statuses in which a ticket still needs work from the team or the customer.
ACTIVE: frozenset[TicketStatus] = frozenset({S.NEW, S.OPEN, S.WAITING})

LABELS: dict[TicketStatus, str] = {
    S.NEW: "New",
    S.OPEN: "Open",
    S.WAITING: "Waiting on customer",
    S.RESOLVED: "Resolved",
    S.CLOSED: "Closed",
}


class LifecycleError(ValueError):
    """An illegal status move; the message names the ticket and both statuses."""

    def __init__(self, number: int, current: str, target: str) -> None:
        self.number = number
        self.current = current
        self.target = target
        super().__init__(f"can't move #{number} from {current} to {target}")


def parse_status(value: str) -> TicketStatus:
    """A status from its stored or typed name; ValueError for anything else."""
    return TicketStatus(value.strip().lower())


def can_move(current: str, target: str) -> bool:
    """Whether `current -> target` is in the transition table (same status is not a move)."""
    try:
        return parse_status(target) in TRANSITIONS[parse_status(current)]
    except ValueError:
        return False


def check_move(number: int, current: str, target: str) -> TicketStatus:
    """Return the target status, or raise LifecycleError naming the illegal move."""
    if not can_move(current, target):
        raise LifecycleError(number, current, target)
    return parse_status(target)


def next_statuses(current: str) -> list[TicketStatus]:
    """The statuses a ticket may move to next, in lifecycle order."""
    try:
        allowed = TRANSITIONS[parse_status(current)]
    except ValueError:
        return []
    return [status for status in TicketStatus if status in allowed]


def is_reopen(current: str, target: str) -> bool:
    """Whether a move brings a finished ticket back to work."""
    return current in (S.RESOLVED, S.CLOSED) and target == S.OPEN


def label(status: str) -> str:
    """A human label for a status (unknown values are shown as stored)."""
    try:
        return LABELS[parse_status(status)]
    except ValueError:
        return status
