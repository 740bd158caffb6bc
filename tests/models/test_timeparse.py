"""Reading `/time` text: durations, days, tickets, notes and sub-commands."""

from __future__ import annotations

from datetime import date

import pytest

from models.timeparse import (
    DeleteTime,
    EditTime,
    ListTime,
    LogTime,
    OpenForm,
    TimeHelp,
    TimeText,
    TimeTextError,
    format_minutes,
    parse_command,
    parse_day,
    parse_duration,
    parse_log,
)

WED = date(2025, 6, 4)  # a Wednesday


@pytest.mark.parametrize(
    ("token", "minutes"),
    [
        ("1h30", 90),
        ("1h30m", 90),
        ("1H05", 65),
        ("90m", 90),
        ("90min", 90),
        ("45mins", 45),
        ("1.5h", 90),
        ("1,5h", 90),
        ("0.25h", 15),
        ("1.33h", 80),  # 79.8 minutes rounds half up to 80
        ("0.0083h", 0),  # 0.498 minutes
        ("2h", 120),
        ("2hrs", 120),
        ("1:30", 90),
        ("0:05", 5),
        ("0m", 0),
        ("-1h", -60),
        ("-30m", -30),
    ],
)
def test_durations(token: str, minutes: int) -> None:
    assert parse_duration(token) == minutes


@pytest.mark.parametrize("token", ["fixed", "1", "h", "1.5", "#12", "1h30x", "yesterday", ""])
def test_not_durations(token: str) -> None:
    assert parse_duration(token) is None


@pytest.mark.parametrize("token", ["1h75", "1:60"])
def test_impossible_minutes_are_refused(token: str) -> None:
    with pytest.raises(TimeTextError, match="under 60"):
        parse_duration(token)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("today", WED),
        ("yesterday", date(2025, 6, 3)),
        ("wed", WED),  # the day itself, not a week ago
        ("mon", date(2025, 6, 2)),
        ("Monday", date(2025, 6, 2)),
        ("thu", date(2025, 5, 29)),  # most recent Thursday on or before today
        ("sun", date(2025, 6, 1)),
        ("2025-05-31", date(2025, 5, 31)),
        ("2025-07-01", date(2025, 7, 1)),  # future dates parse; logging refuses them
    ],
)
def test_days(token: str, expected: date) -> None:
    assert parse_day(token, today=WED) == expected


def test_impossible_iso_date() -> None:
    with pytest.raises(TimeTextError, match="not a date"):
        parse_day("2025-02-30", today=WED)


def test_the_example_from_the_help() -> None:
    assert parse_log("1h30 #123 fixed the VPN", today=WED) == TimeText(
        minutes=90, work_date=WED, ticket_number=123, note="fixed the VPN"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m yesterday nb training", TimeText(90, date(2025, 6, 3), None, "training", False)),
        ("#7 mon 1:30", TimeText(90, date(2025, 6, 2), 7, "")),
        ("1h 30m call with #9 later", TimeText(90, WED, None, "call with #9 later")),
        ("2h 2025-06-01   spaced   note", TimeText(120, date(2025, 6, 1), None, "spaced   note")),
        ("1.5h today today", TimeText(90, WED, None, "today")),  # second day word is the note
        ("30m billable", TimeText(30, WED, None, "")),
    ],
)
def test_logs(text: str, expected: TimeText) -> None:
    assert parse_log(text, today=WED) == expected


def test_a_log_needs_a_duration_first() -> None:
    with pytest.raises(TimeTextError, match="how long"):
        parse_log("fixed the VPN 1h", today=WED)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", OpenForm()),
        ("  ", OpenForm()),
        ("#42", OpenForm(42)),
        ("help", TimeHelp()),
        ("list", ListTime()),
        ("LIST", ListTime()),
        ("delete 12", DeleteTime(12)),
        ("delete #12", DeleteTime(12)),
        ("edit 12 2h", EditTime(12, minutes=120)),
        ("edit 12 yesterday", EditTime(12, work_date=date(2025, 6, 3))),
        ("edit 12 45m nb new note", EditTime(12, minutes=45, billable=False, note="new note")),
        ("edit 12 just a note", EditTime(12, note="just a note")),
        ("1h30 #123 fixed", LogTime(TimeText(90, WED, 123, "fixed"))),
    ],
)
def test_commands(text: str, expected: object) -> None:
    assert parse_command(text, today=WED) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("delete", "which entry"), ("delete x", "which entry"), ("edit 12", "what to change")],
)
def test_command_errors_say_what_to_type(text: str, hint: str) -> None:
    with pytest.raises(TimeTextError, match=hint):
        parse_command(text, today=WED)


@pytest.mark.parametrize(
    ("minutes", "text"), [(90, "1h30"), (45, "45m"), (120, "2h"), (65, "1h05"), (-30, "-30m")]
)
def test_format_minutes(minutes: int, text: str) -> None:
    assert format_minutes(minutes) == text
    assert parse_duration(text) == minutes
