"""The card and ticket lists show each running SLA target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.blocks.tickets import build_ticket_card, list_line
from models.sla import Calendar, Mark, MarkKind, Policy, PriorityTargets, SlaInput, TicketClock
from models.tickets import TicketCard

# Monday 1 September 2025, 09:00 in London.
OPENED = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)
CAL = Calendar(zone=ZoneInfo("Europe/London"))
POLICY = Policy("default", targets={"high": PriorityTargets("1h", "4h")})


def card(*marks: Mark, policy: Policy | None = POLICY) -> TicketCard:
    clock = TicketClock(OPENED, "new", "high", True, marks)
    return TicketCard(
        id=7,
        number=12,
        title="VPN down",
        description="",
        status="open",
        priority="high",
        version=1,
        created_at=OPENED,
        sla=SlaInput(clock, policy, CAL),
    )


def _sla_context(blocks: list[dict[str, object]]) -> str:
    texts = [
        str(b["elements"][0]["text"])  # type: ignore[index]
        for b in blocks
        if b["type"] == "context" and ":stopwatch:" in str(b["elements"][0]["text"])  # type: ignore[index]
    ]
    assert len(texts) == 1
    return texts[0]


def test_card_shows_running_met_and_breached_targets() -> None:
    now = OPENED + timedelta(minutes=20)
    text = _sla_context(build_ticket_card(card(), now=now))
    assert "First response due Mon 10:00 (in 40m)" in text
    assert "Resolution due Mon 13:00 (in 3h 40m)" in text

    answered = card(Mark(OPENED + timedelta(minutes=35), MarkKind.REPLY))
    text = _sla_context(build_ticket_card(answered, now=now + timedelta(hours=1)))
    assert "First response met in 35m" in text

    late = OPENED + timedelta(minutes=75)
    text = _sla_context(build_ticket_card(card(), now=late))
    assert "First response breached 15m ago" in text


def test_no_policy_says_so_and_lists_show_the_clock() -> None:
    now = OPENED + timedelta(minutes=20)
    assert _sla_context(build_ticket_card(card(policy=None), now=now)) == ":stopwatch: No SLA"
    assert "First response due Mon 10:00 (in 40m)" in list_line(card(), now=now)
    plain = TicketCard(7, 12, "VPN down", "", "open", "high", 1, OPENED)
    assert "due" not in list_line(plain, now=now)


def test_service_levels_section() -> None:
    from decimal import Decimal

    from handlers.blocks.sla import build_service_levels
    from models.periods import week_of
    from models.sla import Target, TargetStatus
    from models.sla_report import CustomerLine, SlaReport

    fr, res = Target.FIRST_RESPONSE, Target.RESOLUTION
    acme = CustomerLine("Acme", {(fr, TargetStatus.MET): 3, (fr, TargetStatus.BREACHED): 1})
    acme.first_response_minutes.extend([10, 20, 30, 95])
    globex = CustomerLine("Globex", {(res, TargetStatus.MET): 2, (res, TargetStatus.RUNNING): 1})
    report = SlaReport(week_of(OPENED.date()), "UTC", OPENED, [], [acme, globex])
    (block,) = build_service_levels(report, {"Acme": Decimal("31.5"), "Globex": None})
    text = block["text"]["text"]
    assert (
        "83% of 6 finished targets met (first response 75%, resolution 100%); 1 still running"
        in text
    )
    assert "• Acme: 1 breached · 75% met · median first response 25m · margin 31.5%" in text
    assert "Globex" not in text
    empty = SlaReport(week_of(OPENED.date()), "UTC", OPENED, [], [CustomerLine("Acme")])
    assert build_service_levels(empty, {}) == []
