"""Reading what people type after `/time`. Pure: text and `today` in, plain values out.

Rules:

- A log starts with its duration, then optionally (in any order) a day, a ticket `#123` and
  `nb` (not billable); the first other word starts the note:
  `/time 1h30 #123 fixed the VPN`, `/time 90m yesterday nb training`.
- Durations: `1h30` (`1h30m`, `1h 30m`), `90m` (`90min`), `1.5h` (`1,5h`), `1:30`, `2h`.
  Decimal hours round to the nearest minute, half up. A leading `-` is read (and refused later
  with a clear reason) rather than taken for a note.
- Days: `today`, `yesterday`, a weekday (`mon`, `monday`, `tue`...: the most recent such day
  on or before today, so `mon` on a Monday is today) or an ISO date `2025-06-03`.
- Sub-commands: `list`, `delete 12`, `edit 12 2h [day] [nb|billable] [new note]`, `help`.
  An empty text (or only `#123`) opens the log-time form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

EXAMPLE = "`/time 1h30 #123 fixed the VPN`"

_HM_RE = re.compile(r"(?P<sign>-)?(?P<h>\d{1,3})h(?P<m>\d{1,2})(?:m|min)?")
_HOURS_RE = re.compile(r"(?P<sign>-)?(?P<h>\d{1,3}(?:[.,]\d{1,4})?)(?:h|hr|hrs|hour|hours)")
_MINUTES_RE = re.compile(r"(?P<sign>-)?(?P<m>\d{1,5})(?:m|min|mins|minute|minutes)")
_CLOCK_RE = re.compile(r"(?P<sign>-)?(?P<h>\d{1,3}):(?P<m>\d{2})")
_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TICKET_RE = re.compile(r"#(?P<n>\d{1,9})")
_ID_RE = re.compile(r"#?(?P<n>\d{1,12})")

_WEEKDAYS: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("mon", "monday"),
        ("tue", "tues", "tuesday"),
        ("wed", "weds", "wednesday"),
        ("thu", "thur", "thurs", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
        ("sun", "sunday"),
    )
):
    for _name in _names:
        _WEEKDAYS[_name] = _index

_NOT_BILLABLE = frozenset({"nb", "non-billable", "nonbillable", "unbillable"})
_BILLABLE = frozenset({"billable", "b"})


class TimeTextError(ValueError):
    """Text `/time` cannot read; the message tells the person what to type instead."""


@dataclass(frozen=True)
class TimeText:
    """A time entry as typed: `work_date` is already resolved (today when not given)."""

    minutes: int
    work_date: date
    ticket_number: int | None = None
    note: str = ""
    billable: bool = True


@dataclass(frozen=True)
class LogTime:
    """`/time 1h30 ...`: record an entry."""

    entry: TimeText


@dataclass(frozen=True)
class OpenForm:
    """`/time` or `/time #123`: open the log-time form (for a ticket when given)."""

    ticket_number: int | None = None


@dataclass(frozen=True)
class ListTime:
    """`/time list`: the person's recent entries."""


@dataclass(frozen=True)
class DeleteTime:
    """`/time delete 12`."""

    entry_id: int


@dataclass(frozen=True)
class EditTime:
    """`/time edit 12 2h ...`: only the fields given change (None keeps the old value)."""

    entry_id: int
    minutes: int | None = None
    work_date: date | None = None
    billable: bool | None = None
    note: str | None = None


@dataclass(frozen=True)
class TimeHelp:
    """`/time help`."""


TimeCommand = LogTime | OpenForm | ListTime | DeleteTime | EditTime | TimeHelp


def _signed(sign: str | None, minutes: int) -> int:
    return -minutes if sign else minutes


def parse_duration(token: str) -> int | None:
    """Minutes in a duration token (`1h30`, `90m`, `1.5h`, `1:30`); None when it is not one.

    Raises TimeTextError for a token shaped like a duration with impossible minutes (`1h75`).
    """
    text = token.strip().lower()
    if match := _HM_RE.fullmatch(text):
        minutes = int(match["m"])
        if minutes >= 60:
            raise TimeTextError(f"`{token}`: minutes after the hours must be under 60")
        return _signed(match["sign"], int(match["h"]) * 60 + minutes)
    if match := _CLOCK_RE.fullmatch(text):
        minutes = int(match["m"])
        if minutes >= 60:
            raise TimeTextError(f"`{token}`: minutes after the colon must be under 60")
        return _signed(match["sign"], int(match["h"]) * 60 + minutes)
    if match := _HOURS_RE.fullmatch(text):
        try:
            hours = Decimal(match["h"].replace(",", "."))
        except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
            return None
        minutes = int((hours * 60).to_integral_value(rounding=ROUND_HALF_UP))
        return _signed(match["sign"], minutes)
    if match := _MINUTES_RE.fullmatch(text):
        return _signed(match["sign"], int(match["m"]))
    return None


def parse_day(token: str, *, today: date) -> date | None:
    """The date a day token names, relative to `today`; None when it is not a day token.

    Raises TimeTextError for an ISO-shaped date that does not exist (`2025-02-30`).
    """
    text = token.strip().lower()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    if text in _WEEKDAYS:
        back = (today.weekday() - _WEEKDAYS[text]) % 7
        return today - timedelta(days=back)
    if _ISO_RE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise TimeTextError(f"`{token}` is not a date on the calendar") from None
    return None


def format_minutes(minutes: int) -> str:
    """Minutes as people write them: `90 -> "1h30"`, `45 -> "45m"`, `120 -> "2h"`."""
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    if hours == 0:
        return f"{sign}{rest}m"
    if rest == 0:
        return f"{sign}{hours}h"
    return f"{sign}{hours}h{rest:02d}"


@dataclass
class _Fields:
    minutes: int | None = None
    work_date: date | None = None
    ticket_number: int | None = None
    billable: bool | None = None
    note: str | None = None


def _read_fields(text: str, *, today: date, allow_ticket: bool) -> _Fields:
    """Leading tokens (duration, day, ticket, billable flag) in any order, then the note."""
    fields = _Fields()
    rest = text.strip()
    while rest:
        token, _, after = rest.partition(" ")
        lowered = token.lower()
        if fields.minutes is None and (minutes := parse_duration(token)) is not None:
            # "1h 30m" written as two tokens.
            nxt, _, after_next = after.strip().partition(" ")
            more = _MINUTES_RE.fullmatch(nxt.lower()) if re.fullmatch(r"-?\d+h", lowered) else None
            if more is not None and int(more["m"]) < 60 and not more["sign"]:
                minutes += -int(more["m"]) if minutes < 0 else int(more["m"])
                after = after_next
            fields.minutes = minutes
        elif fields.work_date is None and (day := parse_day(token, today=today)) is not None:
            fields.work_date = day
        elif allow_ticket and fields.ticket_number is None and _TICKET_RE.fullmatch(token):
            fields.ticket_number = int(token[1:])
        elif fields.billable is None and lowered in _NOT_BILLABLE:
            fields.billable = False
        elif fields.billable is None and lowered in _BILLABLE:
            fields.billable = True
        else:
            fields.note = rest
            break
        rest = after.strip()
    return fields


def parse_log(text: str, *, today: date) -> TimeText:
    """Read a time entry (`1h30 #123 fixed the VPN`); raises TimeTextError with a hint."""
    fields = _read_fields(text, today=today, allow_ticket=True)
    if fields.minutes is None:
        raise TimeTextError(
            f"Start with how long you worked, e.g. {EXAMPLE} (also `90m`, `1.5h`, `1:30`)."
        )
    return TimeText(
        minutes=fields.minutes,
        work_date=fields.work_date or today,
        ticket_number=fields.ticket_number,
        note=(fields.note or "").strip(),
        billable=True if fields.billable is None else fields.billable,
    )


def _entry_id(token: str, verb: str) -> int:
    match = _ID_RE.fullmatch(token.strip())
    if match is None:
        raise TimeTextError(
            f"Say which entry to {verb}: `/time {verb} 12` (the numbers are in `/time list`)."
        )
    return int(match["n"])


def parse_command(text: str | None, *, today: date) -> TimeCommand:
    """Read the whole `/time` text into one command; raises TimeTextError with a hint."""
    cleaned = (text or "").strip()
    if not cleaned:
        return OpenForm()
    if match := _TICKET_RE.fullmatch(cleaned):
        return OpenForm(int(match["n"]))
    verb, _, rest = cleaned.partition(" ")
    verb = verb.lower()
    rest = rest.strip()
    if verb == "help":
        return TimeHelp()
    if verb == "list":
        return ListTime()
    if verb in ("delete", "del", "remove", "rm"):
        return DeleteTime(_entry_id(rest, "delete"))
    if verb == "edit":
        id_token, _, changes = rest.partition(" ")
        entry_id = _entry_id(id_token, "edit")
        fields = _read_fields(changes, today=today, allow_ticket=False)
        if (
            fields.minutes is None
            and fields.work_date is None
            and fields.billable is None
            and fields.note is None
        ):
            raise TimeTextError(
                f"Say what to change, e.g. `/time edit {entry_id} 2h`, "
                f"`/time edit {entry_id} yesterday` or `/time edit {entry_id} 45m new note`."
            )
        return EditTime(
            entry_id=entry_id,
            minutes=fields.minutes,
            work_date=fields.work_date,
            billable=fields.billable,
            note=None if fields.note is None else fields.note.strip(),
        )
    return LogTime(parse_log(cleaned, today=today))
