"""Customer channels end to end: the card goes to the team, the customer sees only what is
meant for them.

Pure rules first (table-driven), then real signed requests into the running app with the
Slack emulator answering: a Slack Connect customer writes in their shared channel, the team
works the ticket from triage, and nothing internal ever lands in the customer's channel.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select

from handlers.blocks.customer import notice_text
from handlers.customer_channels import message_from
from handlers.ids import Action
from handlers.people import profile_from_user
from models.customer_channel import (
    Notice,
    is_external,
    is_ticket_reaction,
    status_notices,
)
from models.routing import card_channel
from models.tables import Customer, EventKind, Member
from tests.handlers.test_conversation import _events, _processed, _tickets
from tests.handlers.test_tickets_e2e import card_posted, click, status_click

SHARED = "CSHARED"
INTERNAL = "CACMEINT"
EXTERNAL_USER = "UEXT"
EXTERNAL_TEAM = "TOTHERORG"
AGENT = "UAGENT"
# Words of the internal card that must never reach a customer's channel.
INTERNAL_WORDS = ("Contract", "billable", "Priority", "Assignee", "Log time", "Assign to me")

# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("internal", "triage", "fallback", "expected"),
    [
        ("CINT", "CTRIAGE", "U1", "CINT"),
        (None, "CTRIAGE", "U1", "CTRIAGE"),
        (None, None, "U1", "U1"),
        (SHARED, "CTRIAGE", None, "CTRIAGE"),  # an internal channel equal to the shared one
        (None, SHARED, None, None),  # triage misconfigured as the customer's channel
    ],
)
def test_card_channel_is_never_the_customers(
    internal: str | None, triage: str | None, fallback: str | None, expected: str | None
) -> None:
    found = card_channel(
        customer_channel=SHARED,
        internal_channel=internal,
        triage_channel=triage,
        creator_slack_id=fallback,
    )
    assert found == expected


@pytest.mark.parametrize(
    ("before", "after", "assignee_changed", "has_assignee", "expected"),
    [
        ("new", "open", True, True, [Notice.TAKEN]),
        ("open", "open", True, False, []),  # unassigned: nobody took it
        ("open", "waiting", False, True, [Notice.WAITING]),
        ("waiting", "resolved", False, True, [Notice.RESOLVED]),
        ("open", "closed", False, True, [Notice.RESOLVED]),
        ("resolved", "closed", False, True, []),  # already told
        ("open", "open", False, True, []),
        ("new", "resolved", True, True, [Notice.RESOLVED]),
    ],
)
def test_status_notices(
    before: str, after: str, assignee_changed: bool, has_assignee: bool, expected: list[Notice]
) -> None:
    assert (
        status_notices(
            before_status=before,
            after_status=after,
            assignee_changed=assignee_changed,
            has_assignee=has_assignee,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("reaction", "configured", "expected"),
    [
        ("ticket", "ticket", True),
        ("ticket", ":ticket:", True),
        ("TICKET", "ticket", True),
        ("raised_hand::skin-tone-2", "raised_hand", True),
        ("tickets", "ticket", False),
        ("", "ticket", False),
        ("eyes", "ticket", False),
    ],
)
def test_is_ticket_reaction(reaction: str, configured: str, expected: bool) -> None:
    assert is_ticket_reaction(reaction, configured) is expected


def test_external_and_message_lookup() -> None:
    assert is_external(user_team="TOTHER", our_team="T1")
    assert not is_external(user_team="T1", our_team="T1")
    assert not is_external(user_team=None, our_team="T1")
    data = {"messages": [{"ts": "2.0", "text": "b"}, {"ts": "1.0", "text": "a", "user": "U9"}]}
    found = message_from(data, "1.0")
    assert found is not None and found.text == "a" and found.user == "U9"
    assert message_from(data, "3.0") is None and message_from(None, "1.0") is None


@pytest.mark.parametrize(
    "user",
    [
        {"id": "UEXT", "team_id": "TOTHERORG", "is_stranger": True},
        {"id": "UEXT", "team_id": "TOTHERORG", "profile": {"real_name": "Carl"}},
        {"id": "UEXT", "team_id": "T1", "is_restricted": True},
    ],
)
def test_slack_connect_people_are_never_team_members(user: dict[str, Any]) -> None:
    assert profile_from_user(user, "T1").team_member is False


def test_customer_notices_say_nothing_internal() -> None:
    texts = [notice_text(n, 12, name="<!channel> Agnes") for n in Notice]
    assert all("#12" in text for text in texts)
    assert "Reply here to reopen" in notice_text(Notice.RESOLVED, 12)
    assert "<!channel>" not in " ".join(texts)  # a name cannot ping the customer's channel
    assert not any(word in text for text in texts for word in INTERNAL_WORDS)


# -- through the app ------------------------------------------------------------------------------


@pytest.fixture
async def acme(docket: Any) -> int:
    services = docket.services
    docket.emulator.add_user(AGENT, name="agnes", real_name="Agnes Agent")
    docket.emulator.add_user(EXTERNAL_USER, name="carl", team_id=EXTERNAL_TEAM, is_stranger=True)
    async with services.transaction() as session:
        customer = Customer(workspace_id=services.workspace_id, name="Acme", slack_channel=SHARED)
        session.add(customer)
        session.add(Member(workspace_id=services.workspace_id, slack_user_id=AGENT, name="Agnes"))
        await session.flush()
        assert customer.id is not None
        return customer.id


def _from_customer(docket: Any, text: str, ts: str, thread_ts: str | None = None) -> dict[str, Any]:
    event = docket.requests.message_event(
        text, channel=SHARED, user=EXTERNAL_USER, ts=ts, thread_ts=thread_ts
    )
    return {**event, "user_team": EXTERNAL_TEAM, "source_team": EXTERNAL_TEAM}


# What Docket may ask about a customer's channel without posting anything there.
READS = ("chat.getPermalink", "conversations.history", "conversations.replies")


def _customer_channel_posts(docket: Any) -> list[dict[str, Any]]:
    return [
        c.args
        for c in docket.emulator.calls
        if c.args.get("channel") == SHARED and c.method not in READS
    ]


def assert_nothing_internal(docket: Any) -> None:
    """Everything Docket sent to the customer's channel is a plain customer-facing text."""
    for call in docket.emulator.calls:
        if call.args.get("channel") != SHARED or call.method in READS:
            continue
        assert call.method == "chat.postMessage", call.method
        assert call.args.get("thread_ts"), "a post outside the customer's thread"
        dumped = json.dumps(call.args)
        for forbidden in (
            '"actions"',
            '"button"',
            "static_select",
            "users_select",
            *INTERNAL_WORDS,
        ):
            assert forbidden not in dumped, (forbidden, call.args)


async def test_shared_channel_ticket_lives_in_triage(docket: Any, acme: int) -> None:
    emulator = docket.emulator
    first = _from_customer(docket, "Our printer is on fire", ts="1700000100.000100")
    # Slack retries the same event (same event_id): one ticket.
    for retry in (None, 1, 2):
        body, headers = docket.requests.event(first, event_id="EvShared1", retry_num=retry)
        assert (await docket.send(body, headers)).status == 200
    await _processed(docket)
    [ticket] = await _tickets(docket)
    assert ticket.customer_id == acme and ticket.source_permalink
    assert f"archives/{SHARED}/p1700000100000100" in ticket.source_permalink

    # One card, in triage, linking to the customer's message.
    card = await card_posted(docket, ticket.number)
    assert "Source message" in json.dumps(card["blocks"])
    assert f"archives/{SHARED}" in json.dumps(card["blocks"])
    ack = await emulator.wait_for(
        lambda c: c.args.get("channel") == SHARED and c.args.get("thread_ts") == first["ts"]
    )
    assert f"#{ticket.number}" in ack.args["text"] and "blocks" not in ack.args
    cards = [c for c in emulator.calls_to("chat.postMessage") if "blocks" in c.args]
    assert [c.args["channel"] for c in cards] == ["CTRIAGE"]

    # The team takes it and puts it on the customer: the customer is told, nothing else.
    await docket.interact(click(docket, Action.ASSIGN_TO_ME.value, card, user=AGENT))
    await emulator.wait_for(
        lambda c: c.args.get("channel") == SHARED and "Agnes is looking" in c.args.get("text", "")
    )
    await docket.interact(status_click(docket, card, ticket.id, "waiting", user=AGENT))
    await emulator.wait_for(
        lambda c: c.args.get("channel") == SHARED and "waiting on you" in c.args.get("text", "")
    )

    # An internal note in the card's thread is recorded and never reaches the customer.
    stored = (await _tickets(docket))[0]
    note = docket.requests.message_event(
        "Internal: their contract is overdue",
        channel="CTRIAGE",
        user=AGENT,
        ts="1700000100.000300",
        thread_ts=stored.card_ts,
    )
    await docket.event(note)
    await _processed(docket)
    kinds = [e.kind for e in await _events(docket, ticket.id)]
    assert EventKind.NOTE in kinds

    # The customer answers in their thread: it reaches the assignee by DM.
    emulator.clear()
    await docket.event(
        _from_customer(docket, "It is still smoking", ts="1700000100.000400", thread_ts=first["ts"])
    )
    dm = await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and "It is still smoking" in json.dumps(c.args)
            and c.args["channel"] == AGENT
        )
    )
    assert dm.args["channel"] == AGENT

    # An agent's answer in the customer's thread is a public reply.
    await docket.event(
        docket.requests.message_event(
            "Unplug it please",
            channel=SHARED,
            user=AGENT,
            ts="1700000100.000500",
            thread_ts=first["ts"],
        )
    )
    await _processed(docket)
    replies = [e for e in await _events(docket, ticket.id) if e.kind == EventKind.AGENT_REPLY]
    assert [r.body for r in replies] == ["Unplug it please"]
    assert replies[0].data.get("channel") == SHARED and replies[0].data.get("public")
    await emulator.wait_for(
        lambda c: c.args.get("channel") == "CTRIAGE" and "Unplug it please" in c.args["text"]
    )

    # Resolved: the customer may reopen by replying.
    await docket.interact(status_click(docket, card, ticket.id, "resolved", user=AGENT))
    await emulator.wait_for(
        lambda c: c.args.get("channel") == SHARED and "Reply here to reopen" in c.args["text"]
    )
    assert len(await _tickets(docket)) == 1
    assert "Internal: their contract" not in json.dumps(_customer_channel_posts(docket))
    assert_nothing_internal(docket)
    # Slack Connect: the stranger was never made a team member, and no admin method was used.
    async with docket.services.read() as session:
        ext = (
            await session.exec(select(Member).where(Member.slack_user_id == EXTERNAL_USER))
        ).first()
    assert ext is None or not ext.active
    assert not [c for c in emulator.calls if c.method.startswith("admin.")]


async def test_internal_channel_and_switched_off_notices(docket: Any, acme: int) -> None:
    async with docket.services.transaction() as session:
        customer = await session.get(Customer, acme)
        assert customer is not None
        customer.internal_channel = INTERNAL
        customer.notify_ack = False
        session.add(customer)
    await docket.event(_from_customer(docket, "VPN is down", ts="1700000200.000100"))
    await _processed(docket)
    [ticket] = await _tickets(docket)
    await card_posted(docket, ticket.number, channel=INTERNAL)
    assert _customer_channel_posts(docket) == []


async def test_ticket_reaction_opens_a_ticket(docket: Any, acme: int) -> None:
    emulator = docket.emulator
    message = emulator.add_message(SHARED, "Backups failed last night", user=EXTERNAL_USER)
    ts = message["ts"]

    def reaction(user: str, name: str = "ticket") -> dict[str, Any]:
        return {
            "type": "reaction_added",
            "user": user,
            "reaction": name,
            "item_user": EXTERNAL_USER,
            "item": {"type": "message", "channel": SHARED, "ts": ts},
            "event_ts": "1700000300.000900",
        }

    # Other emoji, and the ticket emoji from the customer's side, open nothing.
    await docket.event(reaction(AGENT, "eyes"))
    await docket.event(reaction(EXTERNAL_USER))
    await _processed(docket)
    assert await _tickets(docket) == []
    # A team member's :ticket: does, once however often it is added.
    await docket.event(reaction(AGENT))
    await docket.event(reaction(AGENT))
    await _processed(docket)
    [ticket] = await _tickets(docket)
    assert ticket.title.startswith("Backups failed") and ticket.customer_id == acme
    await card_posted(docket, ticket.number)
    await emulator.wait_for(
        lambda c: c.args.get("channel") == SHARED and c.args.get("thread_ts") == ts
    )
    created = (await _events(docket, ticket.id))[0]
    assert created.slack_ts == ts
    assert_nothing_internal(docket)
