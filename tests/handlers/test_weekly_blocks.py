"""The weekly post's Block Kit: Slack's limits, escaping, "and N more", the figures shown."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from handlers.blocks.weekly import build_weekly_blocks, listing, weekly_fallback_text
from models.money import format_amount
from models.periods import week_of
from models.profitability import Figures, sum_figures
from models.reporting import Line, Quality, Report, RestatementItem
from models.weekly import BreakEvenLine, TicketGaps, WeeklySummary, build_summary
from tests.slack_emulator import validate_blocks

W23 = week_of(date(2025, 6, 2))
EVIL = "<!channel> Evil & Co <https://phish.example|bank>"


def fig(revenue: int, labour: int) -> Figures:
    return Figures(
        minutes=600, billable_minutes=600, revenue_60=revenue * 60, labour_cost_60=labour * 60
    )


def _summary(customers: int = 40, *, name: str = "Customer {i}") -> WeeklySummary:
    rows = tuple(
        Line(i, name.format(i=i), fig(50_000 + 1_000 * i, 45_000 + 2_000 * i))
        for i in range(1, customers + 1)
    )
    total = sum_figures(r.figures for r in rows)
    history = [
        Report(
            week_of(W23.start - timedelta(weeks=n)), "EUR", fig(900_000, 600_000), (), (), Quality()
        )
        for n in range(4, 0, -1)
    ]
    restated = RestatementItem(1, "2025-W21", 9, EVIL, fig(10_000, 0), fig(7_500, 0))
    current = Report(W23, "EUR", total, rows, (), Quality(unattributed_minutes=90), (restated,))
    return build_summary(
        kind="weekly",
        current=current,
        history=history,
        target_margin_pct=30,
        gaps=TicketGaps(tickets=3),
    )


def _text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_blocks_stay_within_slacks_limits_with_many_customers() -> None:
    blocks = build_weekly_blocks(_summary(200, name="Customer {i} " + "x" * 150))
    assert validate_blocks(blocks) == []
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000


def test_long_lists_end_with_and_n_more() -> None:
    summary = _summary(40)
    assert len(summary.under_target) > 10
    text = _text(build_weekly_blocks(summary))
    assert f"and {len(summary.under_target) - 10} more" in text


def test_listing_cuts_by_size_and_counts_what_is_left() -> None:
    items = [f"item {i} " + "y" * 900 for i in range(8)]
    body = listing("Title", items)
    assert len(body) <= 3000
    shown = body.count("\n• ")
    assert body.endswith(f"_and {8 - shown} more_") and 0 < shown < 8


def test_customer_names_are_escaped_everywhere() -> None:
    summary = _summary(3, name=EVIL + " {i}")
    blocks = build_weekly_blocks(summary)
    text = _text(blocks)
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; Evil &amp; Co" in text
    assert validate_blocks(blocks) == []


def test_the_post_shows_this_weeks_figures_and_the_definitions() -> None:
    summary = _summary(12)
    text = _text(build_weekly_blocks(summary, chart_follows=True))
    revenue = summary.metric("revenue").value
    contribution = summary.metric("contribution").value
    assert isinstance(revenue, int) and isinstance(contribution, int)
    assert format_amount(revenue, "EUR") in text
    assert format_amount(contribution, "EUR") in text
    assert "Contribution = revenue" in text and "chart follows" in text
    assert "Top customers" in text and "Bottom customers" in text
    assert "Restated earlier periods" in text and "Data quality" in text
    assert format_amount(revenue, "EUR") in weekly_fallback_text(summary)


def test_a_period_without_activity_says_so_in_a_sentence() -> None:
    empty = Report(W23, "EUR", Figures(), (), (), Quality())
    summary = build_summary(kind="weekly", current=empty, history=[], target_margin_pct=30)
    blocks = build_weekly_blocks(summary)
    assert validate_blocks(blocks) == []
    assert "No time, fees or costs were recorded" in _text(blocks)
    assert "no activity" in weekly_fallback_text(summary)


def test_break_even_lines_escape_contract_names() -> None:
    summary = _summary(2)
    line = BreakEvenLine(1, "A<b>", "Care & <Support>", hours=10, break_even_hours=5)  # type: ignore[arg-type]
    patched = WeeklySummary(**{**summary.__dict__, "past_break_even": (line,)})
    text = _text(build_weekly_blocks(patched))
    assert "A&lt;b&gt; (Care &amp; &lt;Support&gt;)" in text
