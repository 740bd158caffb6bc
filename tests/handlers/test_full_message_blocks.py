"""The "Show full message" button on the reply DM and the modal it opens (pure builders)."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.blocks.notify import build_full_message_modal, build_reply_dm
from handlers.ids import Action, View
from models.inbound_store import FullMessage
from models.notify import ReplyNotice
from tests.slack_emulator import validate_blocks, validate_view


def message(text: str, **kw: object) -> FullMessage:
    fields: dict[str, object] = {
        "ticket_id": 7,
        "ticket_number": 42,
        "title": "Printer <!channel>",
        "sender": "Alice <@U123>",
        "subject": "Re: [#42] Printer",
        "text": text,
        "from_mail": True,
    }
    fields.update(kw)
    return FullMessage(**fields)  # type: ignore[arg-type]


def sections(view: dict[str, object]) -> list[str]:
    return [
        b["text"]["text"]  # type: ignore[index]
        for b in view["blocks"]  # type: ignore[attr-defined]
        if b["type"] == "section"
    ]


def test_dm_has_the_button_with_the_event_id() -> None:
    notice = ReplyNotice(
        ticket_id=7,
        ticket_number=42,
        title="Printer",
        customer="Acme",
        text="It works.",
        event_id=99,
        at=datetime(2025, 3, 3, tzinfo=UTC),
    )
    dm = build_reply_dm(notice)
    assert validate_blocks(dm["blocks"]) == []
    buttons = [e for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]]
    [show] = [b for b in buttons if b.get("action_id") == Action.SHOW_FULL_MESSAGE]
    assert show["value"] == "99" and show["text"]["text"] == "Show full message"


def test_short_message_is_one_plain_text_section() -> None:
    text = "Hi *all* <@U999>\n\nOn Mon, Agnes wrote:\n> old"
    view = build_full_message_modal(message(text))
    assert validate_view(view) == []
    assert view["callback_id"] == View.FULL_MESSAGE
    assert sections(view) == [text]  # plain text: no formatting, pings or links
    head = view["blocks"][0]["elements"][0]["text"]
    assert "&lt;@U123&gt;" in head and "&lt;!channel&gt;" in head
    assert "not shown" not in str(view["blocks"])


def test_long_message_is_split_at_line_ends_within_limits() -> None:
    lines = [f"line {i:05d} " + "x" * 60 for i in range(1_000)]
    text = "\n".join(lines)
    view = build_full_message_modal(message(text))
    assert validate_view(view) == []
    parts = sections(view)
    assert len(parts) > 20 and all(len(p) <= 3000 for p in parts)
    assert all(p.endswith("x") for p in parts)  # whole lines only
    assert "\n".join(parts) == text


def test_over_long_message_keeps_100_blocks_and_says_what_is_missing() -> None:
    text = "y" * 400_000
    view = build_full_message_modal(message(text))
    assert validate_view(view) == []
    assert len(view["blocks"]) == 100
    shown = "".join(sections(view))
    assert text.startswith(shown)
    note = view["blocks"][-1]["elements"][0]["text"]
    assert f"last {len(text) - len(shown):,} characters are not shown" in note


def test_truncated_mail_says_so() -> None:
    view = build_full_message_modal(message("short", truncated=True))
    assert "longer than Docket keeps" in str(view["blocks"][-1])
    empty = build_full_message_modal(message(""))
    assert sections(empty) == ["(no text)"]
