"""The SLA rules, with minutes worked out by hand (docs/sla.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from models.sla import (
    ALWAYS,
    Calendar,
    DurationError,
    Mark,
    MarkKind,
    Policy,
    PriorityTargets,
    Target,
    TargetStatus,
    TicketClock,
    add_business_minutes,
    business_minutes,
    evaluate,
    format_minutes,
    parse_duration,
)

LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")
# Monday 25 August 2025 is a bank holiday in England.
CAL = Calendar(zone=LONDON, holidays=frozenset({date(2025, 8, 25)}))
BERLIN_CAL = Calendar(zone=BERLIN)


def at(zone: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone)


def ldn(mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return at(LONDON, 2025, mo, d, h, mi)


POLICY = Policy(
    name="default",
    targets={
        "urgent": PriorityTargets("30m", "4h"),
        "high": PriorityTargets("1h", "1d"),
        "normal": PriorityTargets("4h", "2d"),
        "low": PriorityTargets("1d", None),
    },
)


@pytest.mark.parametrize(
    ("cal", "start", "end", "minutes"),
    [
        # Friday 16:45 before a Monday holiday, answered Tuesday 09:40: 15 + 40.
        (CAL, ldn(8, 22, 16, 45), ldn(8, 26, 9, 40), 55),
        # Opened on Sunday, answered Monday 09:20.
        (CAL, ldn(8, 31, 14), ldn(9, 1, 9, 20), 20),
        # Clocks go forward on Sunday 30 March 2025 (Berlin): Fri 16:00 -> Mon 10:00 local.
        (BERLIN_CAL, at(BERLIN, 2025, 3, 28, 16), at(BERLIN, 2025, 3, 31, 10), 120),
        # Clocks go back on Sunday 26 October 2025: Fri 16:30 -> Mon 09:30 local.
        (BERLIN_CAL, at(BERLIN, 2025, 10, 24, 16, 30), at(BERLIN, 2025, 10, 27, 9, 30), 60),
        # Both ends outside business hours on the same evening.
        (CAL, ldn(9, 1, 18), ldn(9, 1, 23), 0),
        # Across midnight into the next working day.
        (CAL, ldn(9, 1, 16), ldn(9, 2, 9, 30), 90),
        # 24x7 across midnight.
        (CAL.around_the_clock(), ldn(9, 1, 23, 50), ldn(9, 2, 0, 10), 20),
        # 24x7 across the spring change: 23:00 CET to 04:00 CEST is four real hours.
        (
            BERLIN_CAL.around_the_clock(),
            at(BERLIN, 2025, 3, 29, 23),
            at(BERLIN, 2025, 3, 30, 4),
            240,
        ),
        # A full working week.
        (CAL, ldn(9, 1, 0), ldn(9, 8, 0), 5 * 480),
        # End before start.
        (CAL, ldn(9, 2, 10), ldn(9, 1, 10), 0),
    ],
)
def test_business_minutes(cal: Calendar, start: datetime, end: datetime, minutes: int) -> None:
    assert business_minutes(cal, start, end) == minutes


@pytest.mark.parametrize(
    ("cal", "start", "minutes", "expected"),
    [
        (CAL, ldn(8, 22, 16, 45), 60, ldn(8, 26, 9, 45)),
        (CAL, ldn(8, 31, 14), 30, ldn(9, 1, 9, 30)),  # Sunday
        (CAL, ldn(9, 1, 8), 480, ldn(9, 1, 17)),  # exactly one day ends at closing
        (CAL, ldn(9, 1, 8), 481, ldn(9, 2, 9, 1)),
        (BERLIN_CAL, at(BERLIN, 2025, 3, 28, 16), 120, at(BERLIN, 2025, 3, 31, 10)),
        (BERLIN_CAL, at(BERLIN, 2025, 10, 24, 16, 30), 60, at(BERLIN, 2025, 10, 27, 9, 30)),
        (CAL.around_the_clock(), ldn(9, 1, 23, 50), 20, ldn(9, 2, 0, 10)),
        (
            BERLIN_CAL.around_the_clock(),
            at(BERLIN, 2025, 10, 26, 1),
            180,  # 01:00 CEST + 3 real hours = 03:00 CET (02:00-03:00 happens twice)
            at(BERLIN, 2025, 10, 26, 3),
        ),
    ],
)
def test_add_business_minutes(
    cal: Calendar, start: datetime, minutes: int, expected: datetime
) -> None:
    assert add_business_minutes(cal, start, minutes) == expected


def test_a_calendar_with_no_open_day_never_comes_due() -> None:
    closed = Calendar(zone=LONDON, hours={})
    assert add_business_minutes(closed, ldn(9, 1, 9), 30) is None


@pytest.mark.parametrize(
    ("text", "day", "minutes"),
    [("30m", 480, 30), ("4h", 480, 240), ("2d", 480, 960), ("2d", 1440, 2880), (" 1H ", 480, 60)],
)
def test_parse_duration(text: str, day: int, minutes: int) -> None:
    assert parse_duration(text, day_minutes=day) == minutes


@pytest.mark.parametrize("text", ["", "0h", "1.5h", "4 hours", "-3m", "h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text, day_minutes=480)


def test_day_is_one_business_day_or_24_hours() -> None:
    short_friday = Calendar(
        zone=LONDON,
        hours={**{d: (time(9), time(17)) for d in range(4)}, 4: (time(9), time(13))},
    )
    assert short_friday.day_minutes() == 480
    assert CAL.around_the_clock().day_minutes() == 1440
    assert POLICY.target_minutes(Target.RESOLUTION, "normal", CAL) == 960
    assert (
        Policy("x", ALWAYS, POLICY.targets).target_minutes(
            Target.RESOLUTION, "normal", CAL.around_the_clock()
        )
        == 2880
    )


@pytest.mark.parametrize(
    ("minutes", "text"), [(0, "0m"), (35, "35m"), (80, "1h 20m"), (120, "2h"), (1500, "1d 1h")]
)
def test_format_minutes(minutes: int, text: str) -> None:
    assert format_minutes(minutes) == text


def clock(
    created: datetime,
    *marks: tuple[datetime, MarkKind, str],
    priority: str = "high",
    customer: bool = True,
    status: str = "new",
) -> TicketClock:
    return TicketClock(
        created_at=created,
        status=status,
        priority=priority,
        customer_opened=customer,
        marks=[Mark(a, k, v) for a, k, v in marks],
    )


R, S, P = MarkKind.REPLY, MarkKind.STATUS, MarkKind.PRIORITY
FR, RES = Target.FIRST_RESPONSE, Target.RESOLUTION
MET, BREACHED, RUNNING, NONE = (
    TargetStatus.MET,
    TargetStatus.BREACHED,
    TargetStatus.RUNNING,
    TargetStatus.NONE,
)

CASES = [
    # (name, clock, now, target, status, target minutes, used minutes, due)
    (
        "friday 16:45 before a monday holiday, answered tuesday 09:40 (high: 1h)",
        clock(ldn(8, 22, 16, 45), (ldn(8, 26, 9, 40), R, "")),
        ldn(8, 26, 12),
        FR,
        MET,
        60,
        55,
        None,  # stopped short of the target: never due
    ),
    (
        "same ticket still unanswered at 09:50 on tuesday",
        clock(ldn(8, 22, 16, 45)),
        ldn(8, 26, 9, 50),
        FR,
        BREACHED,
        60,
        65,
        ldn(8, 26, 9, 45),
    ),
    (
        "opened on sunday, answered monday 09:20 (urgent: 30m)",
        clock(ldn(8, 31, 14), (ldn(9, 1, 9, 20), R, ""), priority="urgent"),
        ldn(9, 1, 12),
        FR,
        MET,
        30,
        20,
        None,  # stopped short of the target: never due
    ),
    (
        "answered across the spring change",
        clock(at(BERLIN, 2025, 3, 28, 16), (at(BERLIN, 2025, 3, 31, 10), R, ""), priority="normal"),
        at(BERLIN, 2025, 3, 31, 11),
        FR,
        MET,
        240,
        120,
        None,  # stopped short of the target: never due
    ),
    (
        "answered across the autumn change",
        clock(
            at(BERLIN, 2025, 10, 24, 16, 30),
            (at(BERLIN, 2025, 10, 27, 9, 30), R, ""),
            priority="high",
        ),
        at(BERLIN, 2025, 10, 27, 11),
        FR,
        MET,
        60,
        60,
        at(BERLIN, 2025, 10, 27, 9, 30),
    ),
    (
        "waits on the customer overnight: 15-16 plus 10:00-11:30 (urgent: 4h)",
        clock(
            ldn(9, 1, 15),
            (ldn(9, 1, 16), S, "waiting"),
            (ldn(9, 2, 10), S, "open"),
            (ldn(9, 2, 11, 30), S, "resolved"),
            priority="urgent",
            status="open",
        ),
        ldn(9, 3, 9),
        RES,
        MET,
        240,
        150,
        None,
    ),
    (
        "waiting with time left is paused, not met",
        clock(ldn(9, 1, 15), (ldn(9, 1, 16), S, "waiting"), priority="urgent", status="open"),
        ldn(9, 2, 12),
        RES,
        RUNNING,
        240,
        60,
        None,
    ),
    (
        "reopened: continues from 120 used minutes, due 11:00 wednesday (urgent: 4h)",
        clock(
            ldn(9, 1, 10),
            (ldn(9, 1, 12), S, "resolved"),
            (ldn(9, 3, 9), S, "open"),
            priority="urgent",
            status="open",
        ),
        ldn(9, 3, 9, 30),
        RES,
        RUNNING,
        240,
        150,
        ldn(9, 3, 11),
    ),
    (
        "reopened and resolved again inside the target",
        clock(
            ldn(9, 1, 10),
            (ldn(9, 1, 12), S, "resolved"),
            (ldn(9, 3, 9), S, "open"),
            (ldn(9, 3, 10, 30), S, "resolved"),
            priority="urgent",
            status="open",
        ),
        ldn(9, 3, 12),
        RES,
        MET,
        240,
        210,
        None,
    ),
    (
        "priority raised mid-way: the urgent 30m applies to the 20 minutes used",
        clock(ldn(9, 1, 9), (ldn(9, 1, 9, 20), P, "urgent"), priority="normal"),
        ldn(9, 1, 9, 25),
        FR,
        RUNNING,
        30,
        25,
        ldn(9, 1, 9, 30),
    ),
    (
        "priority raised after 60 minutes: breached at once, due in the past",
        clock(ldn(9, 1, 9), (ldn(9, 1, 10), P, "urgent"), priority="normal"),
        ldn(9, 1, 10, 1),
        FR,
        BREACHED,
        30,
        61,
        ldn(9, 1, 9, 30),
    ),
    (
        "24x7 urgent over a weekend night",
        clock(ldn(8, 30, 23, 50), (ldn(8, 31, 0, 25), R, ""), priority="urgent"),
        ldn(8, 31, 1),
        FR,
        BREACHED,
        30,
        35,
        ldn(8, 31, 0, 20),
    ),
    (
        "a ticket opened by the team has no first-response target",
        clock(ldn(9, 1, 9), customer=False),
        ldn(9, 1, 12),
        FR,
        NONE,
        None,
        0,
        None,
    ),
    (
        "low priority has no resolution target",
        clock(ldn(9, 1, 9), priority="low"),
        ldn(9, 1, 12),
        RES,
        NONE,
        None,
        180,
        None,
    ),
    (
        "resolved before any reply ends the first-response clock",
        clock(ldn(9, 1, 9), (ldn(9, 1, 9, 40), S, "resolved")),
        ldn(9, 1, 12),
        FR,
        MET,
        60,
        40,
        None,  # stopped short of the target: never due
    ),
]


@pytest.mark.parametrize(
    ("name", "ticket", "now", "target", "status", "minutes", "used", "due"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_target_state(
    name: str,
    ticket: TicketClock,
    now: datetime,
    target: Target,
    status: TargetStatus,
    minutes: int | None,
    used: int,
    due: datetime | None,
) -> None:
    policy = Policy("24", ALWAYS, POLICY.targets) if "24x7" in name else POLICY
    cal = BERLIN_CAL if "change" in name else CAL
    state = evaluate(ticket, policy, cal, now)[target]
    assert (state.status, state.target_minutes, state.used_minutes) == (status, minutes, used)
    assert state.due == due


def test_warning_at_the_share() -> None:
    ticket = clock(ldn(8, 22, 16, 45))
    state = evaluate(ticket, POLICY, CAL, ldn(8, 22, 17))[FR]
    assert state.warn_at == ldn(8, 26, 9, 30)  # 45 of 60 minutes
    half = evaluate(ticket, POLICY, CAL, ldn(8, 22, 17), warning_pct=50)[FR]
    assert half.warn_at == ldn(8, 26, 9, 15)


def test_reopening_starts_a_new_warning_round() -> None:
    ticket = clock(ldn(9, 1, 10), (ldn(9, 1, 12), S, "resolved"), (ldn(9, 3, 9), S, "open"))
    assert evaluate(ticket, POLICY, CAL, ldn(9, 1, 11))[RES].round == 0
    assert evaluate(ticket, POLICY, CAL, ldn(9, 3, 10))[RES].round == 1


def test_no_policy_no_clock() -> None:
    states = evaluate(clock(ldn(9, 1, 9)), None, CAL, ldn(9, 1, 12))
    assert {s.status for s in states.values()} == {NONE}
    assert all(s.due is None for s in states.values())


def test_instants_in_utc_and_local_agree() -> None:
    local = evaluate(clock(ldn(8, 22, 16, 45)), POLICY, CAL, ldn(8, 26, 9, 50))[FR]
    utc = evaluate(
        clock(ldn(8, 22, 16, 45).astimezone(UTC)), POLICY, CAL, ldn(8, 26, 9, 50).astimezone(UTC)
    )[FR]
    assert local == utc
