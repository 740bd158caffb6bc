"""Pure tests of the ticket Block Kit builders and the /ticket parser: plain asserts, Slack's
limits (the emulator's checks) and safe text for everything a person typed."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers.blocks.common import CUT_MARKER
from handlers.blocks.home import build_home
from handlers.blocks.members import RosterLine, build_member_modal, build_member_saved
from handlers.blocks.tickets import (
    Choice,
    Field,
    FormMeta,
    TicketForm,
    assigned_text,
    build_saved_view,
    build_ticket_card,
    build_ticket_help,
    build_ticket_list,
    build_ticket_modal,
    card_text,
    form_errors,
    format_age,
    list_page_value,
    message_to_plain,
    parse_list_page_value,
    parse_status_value,
    parse_ticket_form,
    source_reply_text,
    title_from_text,
)
from handlers.ids import Action, View
from handlers.ticket_text import parse_ticket_text, split_title
from models.tickets import HomeData, TicketCard, TicketPage
from models.timeparse import format_minutes, parse_duration
from tests.slack_emulator import validate_blocks, validate_view
from tests.slack_signing import select_value, text_value

NOW = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)
INJECTIONS = ("<!channel>", "<!everyone>", "<@U0EVIL1>", "<http://evil.example|bank>")
EVIL = " ".join(INJECTIONS)


def make_card(**overrides: Any) -> TicketCard:
    values: dict[str, Any] = dict(
        id=42,
        number=12,
        title="Printer on 3rd floor jams",
        description="It eats every page.",
        status="open",
        priority="high",
        version=3,
        created_at=NOW - timedelta(hours=26),
        customer_id=7,
        customer_name="Acme GmbH",
        contact_name="Ann",
        contact_email="ann@acme.test",
        contract_id=9,
        contract_name="Support Gold",
        assignee_id=5,
        assignee_slack_id="UBOB",
        assignee_name="Bob",
    )
    values.update(overrides)
    return TicketCard(**values)


def evil_card() -> TicketCard:
    return make_card(
        title=f"Help {EVIL}",
        description=f"Body {EVIL}",
        customer_name=f"Cust {EVIL}",
        contract_name=f"Contract {EVIL}",
        contact_name=f"Ann {EVIL}",
        contact_email="<!here>@acme.test",
        assignee_slack_id=None,
        assignee_name=f"Bob {EVIL}",
        source_permalink="https://acme.slack.com/archives/C1/p1|<!channel>",
    )


def texts(obj: Any) -> list[str]:
    """Every mrkdwn string in blocks or a view (what Slack parses for mentions and links)."""
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
            found.append(obj["text"])
        for value in obj.values():
            found += texts(value)
    elif isinstance(obj, list):
        for value in obj:
            found += texts(value)
    return found


def assert_escaped(strings: list[str]) -> None:
    joined = "\n".join(strings)
    for raw in INJECTIONS:
        assert raw not in joined, f"{raw} reached Slack unescaped"
    assert "&lt;!channel&gt;" in joined and "&lt;@U0EVIL1&gt;" in joined
    assert "&lt;http://evil.example|bank&gt;" in joined
    assert "<!here>" not in joined


def actions_of(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        element["action_id"]: element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


# -- the card ----------------------------------------------------------------------------------


def test_card_shows_every_field_and_the_buttons() -> None:
    blocks = build_ticket_card(make_card(), now=NOW)
    assert validate_blocks(blocks) == []
    text = "\n".join(texts(blocks))
    for expected in ("#12", "Printer on 3rd floor jams", "Acme GmbH", "Support Gold", "High"):
        assert expected in text
    assert "Open" in text and "<@UBOB>" in text and "1d 2h" in text
    assert "Ann (ann@acme.test)" in text
    buttons = actions_of(blocks)
    assert set(buttons) == {
        Action.ASSIGN_TO_ME,
        Action.STATUS,
        Action.EDIT,
        Action.LOG_TIME,
        Action.REPLY,
        Action.CLOSE,
    }
    assert buttons[Action.REPLY]["value"] == "42"
    assert buttons[Action.CLOSE]["confirm"]["confirm"]["text"] == "Close"
    status = buttons[Action.STATUS]
    assert status["initial_option"]["value"] == "42:open"
    assert [o["value"] for o in status["options"]] == [
        "42:open",
        "42:waiting",
        "42:resolved",
        "42:closed",
    ]


def test_a_closed_card_offers_reopen_and_no_close_button() -> None:
    blocks = build_ticket_card(make_card(status="closed"), now=NOW)
    buttons = actions_of(blocks)
    assert Action.CLOSE not in buttons
    assert [o["value"] for o in buttons[Action.STATUS]["options"]] == ["42:closed", "42:open"]


def test_a_card_without_contract_or_assignee_says_so() -> None:
    blocks = build_ticket_card(
        make_card(contract_name=None, contract_id=None, assignee_id=None, assignee_slack_id=None),
        now=NOW,
    )
    text = "\n".join(texts(blocks))
    assert "billable" in text and "_Unassigned_" in text


def test_long_text_is_cut_with_a_marker_within_slacks_limits() -> None:
    card = make_card(title="T" * 300, description="word " * 3000)
    blocks = build_ticket_card(card, now=NOW)
    assert validate_blocks(blocks) == []
    description = next(t for t in texts(blocks) if t.startswith("word"))
    assert description.endswith(CUT_MARKER) and len(description) <= 1500
    assert len(card_text(card)) <= 400


def test_status_values_round_trip() -> None:
    assert parse_status_value("42:waiting") == (42, "waiting")
    assert parse_status_value("x:waiting") is None and parse_status_value("42") is None


@pytest.mark.parametrize(
    ("created", "age"),
    [
        (NOW, "just now"),
        (NOW - timedelta(minutes=5), "5m"),
        (NOW - timedelta(hours=3), "3h"),
        (NOW - timedelta(days=2, hours=4), "2d 4h"),
        (NOW - timedelta(days=10, hours=4), "10d"),
    ],
)
def test_age_reads_short(created: datetime, age: str) -> None:
    assert format_age(created, NOW) == age


# -- safe text everywhere ----------------------------------------------------------------------


def test_every_builder_escapes_what_people_typed() -> None:
    card = evil_card()
    page = TicketPage(cards=[card], total=1, page=1, per_page=10)
    home = HomeData(
        member_name=f"Eve {EVIL}",
        mine=page,
        waiting=page,
        unassigned=page,
        week_start=NOW.date(),
        minutes_this_week=0,
    )
    roster = [RosterLine(None, f"Mallory {EVIL}", "agent", f"Group {EVIL}")]
    produced = {
        "card": texts(build_ticket_card(card, now=NOW)),
        "card_text": [card_text(card)],
        "source_reply": [source_reply_text(card)],
        "assigned": [assigned_text(card)],
        "list": texts(build_ticket_list(page, heading="Tickets", query=EVIL, now=NOW)),
        "help": texts(build_ticket_help(f"No customer matches “{EVIL}”.")),
        "saved": texts(build_saved_view(card, created=True, channel="CTRIAGE")),
        "home": texts(build_home(home, now=NOW)),
        "members": texts(build_member_modal(roster, 1)),
        "member_saved": texts(build_member_saved(roster[0])),
    }
    for name, strings in produced.items():
        joined = "\n".join(strings)
        for raw in INJECTIONS:
            assert raw not in joined, f"{name}: {raw} unescaped"
        assert "&lt;" in joined, f"{name}: the user text is missing"
    assert_escaped(produced["card"])
    assert "<https://acme.slack.com" not in "\n".join(produced["card"]), "a forged permalink"


def test_plain_text_fields_are_only_cut() -> None:
    """Input values and option labels are plain text (never parsed): kept as typed, cut."""
    form = TicketForm(
        title=f"Help {EVIL}",
        customer=Choice(7, "C" * 200),
        contacts=(Choice(1, "x" * 200),),
        contracts=(Choice(2, "y" * 200),),
    )
    view = build_ticket_modal(form)
    assert validate_view(view) == []
    blocks = _blocks_by_id(view)
    assert blocks[Field.TITLE]["element"]["initial_value"] == f"Help {EVIL}"
    label = blocks["contact-7"]["element"]["options"][0]["text"]
    assert label["type"] == "plain_text" and len(label["text"]) <= 75


# -- the form ----------------------------------------------------------------------------------


def _blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def test_new_form_without_customer_says_work_is_billable() -> None:
    view = build_ticket_modal(TicketForm())
    assert validate_view(view) == []
    assert view["callback_id"] == View.TICKET and view["title"]["text"] == "New ticket"
    blocks = _blocks_by_id(view)
    customer = blocks[Field.CUSTOMER]
    assert customer["dispatch_action"] is True and customer["optional"] is True
    assert customer["element"]["type"] == "external_select"
    assert customer["element"]["action_id"] == Action.TICKET_CUSTOMER
    assert blocks[Field.ASSIGNEE]["element"]["type"] == "users_select"
    assert "billable" in "\n".join(texts(view))
    assert not any(k.startswith(("contact-", "contract-")) for k in blocks)


def test_form_for_a_customer_lists_its_contacts_and_contracts() -> None:
    form = TicketForm(
        meta=FormMeta(ticket_id=42, version=3, number=12),
        title="Printer",
        priority="urgent",
        customer=Choice(7, "Acme"),
        contacts=(Choice(1, "Ann (ann@acme.test)"), Choice(2, "Ben")),
        contact_id=2,
        contracts=(Choice(9, "Support (hourly)"),),
        contract_id=9,
        assignee_slack_id="UBOB",
    )
    view = build_ticket_modal(form)
    assert validate_view(view) == []
    blocks = _blocks_by_id(view)
    assert view["title"]["text"] == "Edit #12" and view["submit"]["text"] == "Save"
    assert blocks["contact-7"]["element"]["initial_option"]["value"] == "2"
    assert blocks["contract-7"]["element"]["initial_option"]["value"] == "9"
    assert "billable" in blocks["contract-7"]["hint"]["text"]
    assert blocks[Field.PRIORITY]["element"]["initial_option"]["value"] == "urgent"
    assert blocks[Field.ASSIGNEE]["element"]["initial_user"] == "UBOB"
    assert blocks[Field.CUSTOMER]["element"]["initial_option"]["value"] == "7"
    assert FormMeta.decode(view["private_metadata"]) == form.meta


def test_a_customer_without_active_contracts_gets_the_billable_warning() -> None:
    view = build_ticket_modal(TicketForm(customer=Choice(7, "Acme <b>")))
    joined = "\n".join(texts(view))
    assert "No active contract covers Acme &lt;b&gt;: the work will be billable." in joined
    assert "contract-7" not in _blocks_by_id(view)


def test_a_description_too_long_for_the_form_is_shown_and_kept() -> None:
    form = TicketForm(meta=FormMeta(ticket_id=1, version=1, number=1), description="x" * 5000)
    view = build_ticket_modal(form)
    assert validate_view(view) == []
    assert Field.DESCRIPTION not in _blocks_by_id(view)
    meta = FormMeta.decode(view["private_metadata"])
    assert meta.keep_description
    assert "too long to edit here" in "\n".join(texts(view))
    # The rebuilt form (after a customer change) still keeps it; the submission leaves it.
    again = build_ticket_modal(TicketForm(meta=meta, customer=Choice(7, "Acme")))
    assert Field.DESCRIPTION not in _blocks_by_id(again)
    parsed = parse_ticket_form({Field.TITLE: {"title_input": text_value("t")}})
    assert parsed.description is None


def test_metadata_is_robust_and_small() -> None:
    meta = FormMeta(
        source_channel="C1", source_ts="1.2", source_thread_ts="1.1", permalink="https://x/" * 100
    )
    encoded = meta.encode()
    assert len(encoded) < 3000
    assert FormMeta.decode(encoded).permalink is None, "overlong permalinks are dropped"
    assert FormMeta.decode("not json") == FormMeta()
    assert FormMeta.decode('{"t": "1", "v": true}') == FormMeta()


def test_the_form_state_is_parsed_only_for_the_selected_customer() -> None:
    values = {
        Field.CUSTOMER: {Action.TICKET_CUSTOMER.value: select_value("7", "Acme")},
        "contact-7": {"contact_input": select_value("2")},
        "contract-3": {"contract_input": select_value("9")},  # left from an earlier customer
        Field.TITLE: {"title_input": text_value("  Printer jams ")},
        Field.DESCRIPTION: {"description_input": text_value(None)},
        Field.PRIORITY: {"priority_input": select_value("high")},
        Field.ASSIGNEE: {"assignee_input": {"type": "users_select", "selected_user": "UBOB"}},
    }
    form = parse_ticket_form(values)
    assert (form.customer_id, form.contact_id, form.contract_id) == (7, 2, None)
    assert (form.title, form.description, form.priority) == ("Printer jams", "", "high")
    assert form.assignee_slack_id == "UBOB" and form_errors(form) == {}
    assert form.contact_block() == "contact-7"


def test_form_errors_point_at_their_block() -> None:
    form = parse_ticket_form({Field.TITLE: {"title_input": text_value("   ")}})
    assert form_errors(form) == {Field.TITLE: "A ticket needs a title."}
    bad = replace(form, title="ok", priority="soon")
    assert set(form_errors(bad)) == {Field.PRIORITY}


def test_saved_view_names_the_ticket_and_channel() -> None:
    view = build_saved_view(make_card(), created=True, channel="CTRIAGE")
    assert validate_view(view) == []
    assert "#12" in "\n".join(texts(view)) and "<#CTRIAGE>" in "\n".join(texts(view))
    assert "posted in" not in "\n".join(
        texts(build_saved_view(make_card(), created=True, channel="UBOB"))
    )


# -- lists, help, parsing ----------------------------------------------------------------------


def test_list_pages_have_previous_and_next_with_distinct_ids() -> None:
    cards = [make_card(id=i, number=i) for i in range(10)]
    page = TicketPage(cards=cards, total=35, page=2, per_page=10)
    blocks = build_ticket_list(page, heading="Open tickets", query="open", now=NOW)
    assert validate_blocks(blocks) == []
    assert "page 2 of 4" in texts(blocks)[0]
    nav = actions_of(blocks)
    assert set(nav) == {f"{Action.LIST_PAGE}-prev", f"{Action.LIST_PAGE}-next"}
    assert parse_list_page_value(nav[f"{Action.LIST_PAGE}-next"]["value"]) == ("open", 3)
    assert parse_list_page_value("junk") is None
    assert json.loads(list_page_value("x" * 500, 1))["q"] == "x" * 200
    empty = build_ticket_list(TicketPage([], 0, 1, 10), heading="Mine", query="", now=NOW)
    assert "Nothing here" in "\n".join(texts(empty)) and not actions_of(empty)


@pytest.mark.parametrize(
    ("text", "kind", "extra"),
    [
        ("", "form", {}),
        ("   ", "form", {}),
        ("new", "form", {}),
        ("help", "help", {}),
        ("123", "show", {"number": 123}),
        ("#123", "show", {"number": 123}),
        ("show 7", "show", {"number": 7}),
        ("show seven", "help", {}),
        ("list", "list", {"query": ""}),
        ("list Acme GmbH", "list", {"query": "Acme GmbH"}),
        ("Printer  on 3rd floor jams", "create", {"title": "Printer on 3rd floor jams"}),
        ("new VPN down", "create", {"title": "VPN down"}),
        ("<!channel> help me", "create", {"title": "<!channel> help me"}),
    ],
)
def test_ticket_text_is_parsed(text: str, kind: str, extra: dict[str, Any]) -> None:
    parsed = parse_ticket_text(text)
    assert parsed.kind == kind
    for key, value in extra.items():
        assert getattr(parsed, key) == value
    if text == "show seven":
        assert parsed.problem and "ticket number" in parsed.problem


def test_help_mentions_every_form_of_the_command() -> None:
    text = "\n".join(texts(build_ticket_help()))
    for form in ("/ticket 123", "/ticket list", "mine", "waiting", "/ticket Printer"):
        assert form in text


def test_an_overlong_title_keeps_the_whole_text_in_the_description() -> None:
    title, description = split_title("word " * 100)
    assert len(title) <= 300 and title.endswith("…") and description.startswith("word word")
    assert split_title("short") == ("short", "")


def test_message_text_is_made_readable_for_the_form() -> None:
    raw = "Hi <@U123>, see <https://x.test/a|the doc> in <#C1|ops> &lt;now&gt; <!here>"
    assert message_to_plain(raw) == "Hi @U123, see the doc (https://x.test/a) in #ops <now> @here"
    assert title_from_text("\n\n  First line  \nsecond") == "First line"
    long = title_from_text("word " * 50, limit=20)
    assert len(long) <= 20 and long.endswith("…")


# -- home ----------------------------------------------------------------------------------------


def test_minutes_read_as_hours() -> None:
    # App Home writes durations the way /time does (and reads them back).
    assert [format_minutes(m) for m in (0, 45, 60, 95, 600)] == ["0m", "45m", "1h", "1h35", "10h"]
    assert [parse_duration(format_minutes(m)) for m in (45, 60, 95, 600)] == [45, 60, 95, 600]


def test_members_modal_fits_slack() -> None:
    roster = [RosterLine(f"U{i:04d}", f"P{i}", "agent", None) for i in range(60)]
    view = build_member_modal(roster, 60)
    assert validate_view(view) == []
    assert "…and 20 more." in "\n".join(texts(view))
