"""Which target an outbox row counts against (the worker holds a few rows per target), and how
typed payloads are stored."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from models.outbox import (
    EMAIL,
    SLACK,
    UPLOAD,
    EmailSend,
    FileUpload,
    OutboxPayload,
    PayloadError,
    ReplyDigest,
    SlackCall,
    delivery_target,
    parse_payload,
    payload_json,
    slack_call,
)


@pytest.mark.parametrize(
    ("payload", "target"),
    [
        (slack_call("chat.postMessage", channel="C1", text="x"), "slack:C1"),
        (slack_call("chat.postMessage", channel="U1", text="dm"), "slack:U1"),
        (replace(slack_call("chat.postMessage", text="x"), in_thread_of=3), "slack:cards"),
        (replace(slack_call("chat.update", text="x"), updates_card_of=3), "slack:cards"),
        (EmailSend(to=("a@b.c",), raw=""), "email"),
        (FileUpload(channel="CMGR", filename="c.png", content_b64=""), "slack:CMGR"),
        (FileUpload(filename="c.png", content_b64="", in_thread_of=4), "slack:cards"),
        (slack_call("views.publish", user_id="U1"), None),
    ],
)
def test_rows_count_against_their_channel(payload: OutboxPayload, target: str | None) -> None:
    assert delivery_target(payload) == target


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        (
            replace(slack_call("chat.postMessage", channel="C1", text="x"), posts_card_of=7),
            {
                "method": "chat.postMessage",
                "args": {"channel": "C1", "text": "x"},
                "store_card_for_ticket": 7,
            },
        ),
        (
            replace(slack_call("chat.update", text="v2"), updates_card_of=7),
            {"method": "chat.update", "args": {"text": "v2"}, "card_of_ticket": 7},
        ),
        (
            replace(slack_call("chat.postMessage", text="t"), in_thread_of=7, alert_for=3),
            {
                "method": "chat.postMessage",
                "args": {"text": "t"},
                "thread_of_ticket": 7,
                "alert_for": 3,
            },
        ),
        (
            replace(slack_call("chat.postMessage", channel="U1"), digest=ReplyDigest(7, (1, 2))),
            {
                "method": "chat.postMessage",
                "args": {"channel": "U1"},
                "digest": {"ticket_id": 7, "event_ids": [1, 2]},
            },
        ),
        (
            EmailSend(to=("a@b.c",), sender="s@d.e", raw="R", email_id=5),
            {"to": ["a@b.c"], "from": "s@d.e", "raw": "R", "email_id": 5},
        ),
        (
            FileUpload(channel="C1", filename="f.png", content_b64="aGk=", title="T"),
            {"channel": "C1", "filename": "f.png", "content_b64": "aGk=", "title": "T"},
        ),
    ],
)
def test_payloads_are_stored_under_their_json_keys_and_read_back(
    payload: OutboxPayload, stored: dict[str, Any]
) -> None:
    assert payload_json(payload) == stored
    assert parse_payload(payload.kind, stored) == payload


@pytest.mark.parametrize(
    ("kind", "data", "error"),
    [
        (SLACK, {}, "no Slack method"),
        (SLACK, {"method": "chat.postMessage", "args": []}, "not an object"),
        (SLACK, {"method": "chat.update", "card_of_ticket": "x"}, "card_of_ticket"),
        ("fax", {}, "unknown outbox kind"),
    ],
)
def test_a_payload_that_cannot_be_read_says_why(
    kind: str, data: dict[str, Any], error: str
) -> None:
    with pytest.raises(PayloadError, match=error):
        parse_payload(kind, data)


def test_an_old_email_row_with_one_address_reads_as_one_recipient() -> None:
    assert parse_payload(EMAIL, {"to": "a@b.c", "raw": "R"}) == EmailSend(to=("a@b.c",), raw="R")
    assert isinstance(parse_payload(UPLOAD, {"filename": "f", "content_b64": ""}), FileUpload)
    assert isinstance(parse_payload(SLACK, {"method": "m"}), SlackCall)
