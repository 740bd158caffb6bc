"""The ticket lifecycle: the transition table and the error that names an illegal move."""

from __future__ import annotations

import itertools

import pytest

from models.lifecycle import (
    ACTIVE,
    TRANSITIONS,
    LifecycleError,
    can_move,
    check_move,
    is_reopen,
    label,
    next_statuses,
)
from models.tables import TicketStatus as S

LEGAL = [
    (S.NEW, S.OPEN),
    (S.OPEN, S.WAITING),
    (S.WAITING, S.OPEN),
    (S.WAITING, S.RESOLVED),
    (S.RESOLVED, S.CLOSED),
    (S.RESOLVED, S.OPEN),
    (S.CLOSED, S.OPEN),
    (S.OPEN, S.CLOSED),
]
ILLEGAL = [
    (S.CLOSED, S.WAITING),
    (S.CLOSED, S.RESOLVED),
    (S.RESOLVED, S.WAITING),
    (S.OPEN, S.NEW),
    (S.WAITING, S.NEW),
    (S.CLOSED, S.NEW),
]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_the_documented_flow_is_allowed(current: S, target: S) -> None:
    assert can_move(current, target)
    assert check_move(7, current, target) == target


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_moves_are_refused_with_the_move_named(current: S, target: S) -> None:
    assert not can_move(current, target)
    with pytest.raises(LifecycleError) as info:
        check_move(12, current, target)
    assert str(info.value) == f"can't move #12 from {current} to {target}"
    assert (info.value.number, info.value.current, info.value.target) == (12, current, target)


def test_the_example_from_the_issue() -> None:
    with pytest.raises(LifecycleError, match=r"^can't move #12 from closed to waiting$"):
        check_move(12, "closed", "waiting")


def test_staying_put_is_not_a_move() -> None:
    for status in S:
        assert not can_move(status, status)


def test_the_table_agrees_with_check_move_for_every_pair() -> None:
    for current, target in itertools.product(S, S):
        allowed = target in TRANSITIONS[current]
        assert can_move(current, target) is allowed
        if not allowed:
            with pytest.raises(LifecycleError):
                check_move(1, current, target)


def test_every_status_is_reachable_from_new_and_closed_can_reopen() -> None:
    seen, frontier = {S.NEW}, [S.NEW]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(S)
    assert is_reopen(S.CLOSED, S.OPEN) and is_reopen(S.RESOLVED, S.OPEN)
    assert not is_reopen(S.WAITING, S.OPEN)


def test_unknown_statuses_are_refused_not_crashing() -> None:
    assert not can_move("frozen", "open")
    assert next_statuses("frozen") == []
    with pytest.raises(LifecycleError, match="from open to banana"):
        check_move(3, "open", "banana")


def test_next_statuses_are_in_lifecycle_order_and_labels_read_well() -> None:
    assert next_statuses(S.NEW) == [S.OPEN, S.WAITING, S.RESOLVED, S.CLOSED]
    assert next_statuses(S.CLOSED) == [S.OPEN]
    assert label(S.WAITING) == "Waiting on customer"
    assert label("odd") == "odd"
    assert frozenset({S.NEW, S.OPEN, S.WAITING}) == ACTIVE
