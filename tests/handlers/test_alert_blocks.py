"""The alert part of a ticket card and the sources list (pure builders)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from handlers.blocks.alerts import (
    alert_card_text,
    build_alert_card,
    build_sources_list,
    cleared_text,
)
from handlers.blocks.common import SECTION_LIMIT
from handlers.blocks.tickets import card_actions
from models.alerts import AlertInfo
from models.tables import AlertSource
from models.tickets import TicketCard
from tests.slack_emulator import validate_blocks

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CARD = TicketCard(
    id=7,
    number=12,
    title="Disk full <!channel>",
    description="",
    status="new",
    priority="urgent",
    version=1,
    created_at=AT,
)


def info(**kw: object) -> AlertInfo:
    values: dict[str, object] = {
        "source": "prom",
        "kind": "alert",
        "status": "firing",
        "severity": "critical",
        "occurrences": 3,
        "details": "disk at 99% <@U0EVIL>",
        "url": None,
        "customer_unknown": False,
        "customer_value": None,
        "last_at": AT,
    }
    values.update(kw)
    return AlertInfo(**values)  # type: ignore[arg-type]


def test_alert_card_shows_counter_details_above_the_buttons_escaped() -> None:
    blocks = build_alert_card(CARD, info(), now=AT)
    text = json.dumps(blocks)
    assert "*3* occurrences" in text and "critical" in text
    assert "&lt;@U0EVIL&gt;" in text and "<@U0EVIL>" not in text
    assert blocks[-1] == card_actions(CARD)
    assert validate_blocks(blocks) == []
    assert "Alert #12" in alert_card_text(CARD, info())


def test_unknown_customer_is_flagged_with_the_label_value() -> None:
    text = json.dumps(
        build_alert_card(CARD, info(customer_unknown=True, customer_value="Initech"), now=AT)
    )
    assert "Customer unknown" in text and "Initech" in text
    assert "(customer unknown)" in alert_card_text(CARD, info(customer_unknown=True))


def test_storm_lists_twenty_and_counts_the_rest_within_limits() -> None:
    listed = tuple(f"Check{i} " + "x" * 300 for i in range(200))
    blocks = build_alert_card(CARD, info(kind="storm", listed=listed, listed_total=250), now=AT)
    text = json.dumps(blocks)
    assert "250 new alerts" in text and "and 230 more" in text
    assert "Check19" in text and "Check20 " not in text
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_LIMIT for b in blocks)
    assert validate_blocks(blocks) == []


def test_sources_list_and_cleared_notice() -> None:
    source = AlertSource(
        workspace_id=1, name="prom", secret="s" * 20, secret_hash="h", auto_resolve=True
    )
    text = json.dumps(build_sources_list([source]))
    assert "/integrations/alerts/prom" in text and "auto-resolves" in text
    assert validate_blocks(build_sources_list([])) == []
    assert "#12" in cleared_text(CARD, info()) and "cleared" in cleared_text(CARD, info())


def test_parse_add() -> None:
    from handlers.integrations_admin import AddSource, parse_add

    assert parse_add("add prom") == AddSource("prom")
    assert parse_add("add prom --auto-resolve --customer-label tenant") == AddSource(
        "prom", True, "tenant"
    )
    assert parse_add("add prom --customer-label=site") == AddSource("prom", False, "site")
    assert parse_add("") is None and parse_add("list") is None
    assert "integrations add NAME" in str(parse_add("add"))
    assert "understand" in str(parse_add("add prom --bogus"))
    assert "quotes" in str(parse_add('add "prom'))
