"""Which target an outbox row counts against (the worker holds a few rows per target)."""

from __future__ import annotations

import pytest

from models.outbox import EMAIL, SLACK, UPLOAD, delivery_target, slack_call


@pytest.mark.parametrize(
    ("kind", "payload", "target"),
    [
        (SLACK, slack_call("chat.postMessage", channel="C1", text="x"), "slack:C1"),
        (SLACK, slack_call("chat.postMessage", channel="U1", text="dm"), "slack:U1"),
        (SLACK, {**slack_call("chat.postMessage", text="x"), "thread_of_ticket": 3}, "slack:cards"),
        (SLACK, {**slack_call("chat.update", text="x"), "card_of_ticket": 3}, "slack:cards"),
        (EMAIL, {"to": ["a@b.c"], "raw": ""}, "email"),
        (UPLOAD, {"channel": "CMGR", "filename": "c.png"}, "slack:CMGR"),
        (SLACK, slack_call("views.publish", user_id="U1"), None),
    ],
)
def test_rows_count_against_their_channel(kind: str, payload: dict, target: str | None) -> None:
    assert delivery_target(kind, payload) == target
