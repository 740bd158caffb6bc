"""The customer conversation in Slack: reply modal, `/ticket reply`, customer channels.

Pure builders first, then real signed requests through the running app (the `docket` fixture)
with the Slack emulator answering.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import col, select

from handlers.blocks.conversation import (
    REPLY_BLOCK,
    REPLY_INPUT,
    MailLine,
    ReplyForm,
    ReplyTarget,
    build_mail_list,
    build_reply_modal,
    parse_reply_metadata,
    parse_reply_text,
    quote,
)
from handlers.conversation import parse_reply_command
from handlers.ids import Action, View
from models.inbound_store import QUARANTINED
from models.outbox import EMAIL
from models.tables import (
    Contact,
    Customer,
    EmailMessage,
    EventKind,
    Member,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from tests.slack_emulator import validate_view

CUSTOMER_CHANNEL = "CCUST"
CUSTOMER_USER = "UCUST"
AGENT = "UAGENT"
GUEST = "UGUEST"

# -- pure ---------------------------------------------------------------------------------------


def test_parse_reply_command() -> None:
    assert parse_reply_command("reply 12 Hello there\nsecond line") == (
        12,
        "Hello there\nsecond line",
    )
    assert parse_reply_command("reply #7") == (7, "")
    assert parse_reply_command("REPLY 7   ok ") == (7, "ok")
    assert parse_reply_command("reply") is None
    assert parse_reply_command("reply abc text") is None


def _form(**overrides: Any) -> ReplyForm:
    values: dict[str, Any] = {
        "ticket_id": 5,
        "number": 12,
        "title": "VPN <!channel> down",
        "customer_name": "Acme",
        "last_message": "Help! <@U999> <https://evil.test|your bank>\nline two",
        "target": ReplyTarget(email="alice@acme.test"),
        "support_address": "support@example.com",
    }
    values.update(overrides)
    return ReplyForm(**values)


def test_reply_modal_is_valid_and_escapes_the_customer() -> None:
    view = build_reply_modal(_form())
    assert validate_view(view) == []
    assert view["callback_id"] == View.REPLY
    assert parse_reply_metadata(view["private_metadata"]) == 5
    text = json.dumps(view["blocks"])
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "&lt;@U999&gt;" in text and "&lt;https://evil.test|your bank&gt;" in text
    assert "> line two" in text
    assert "alice@acme.test" in text
    long = build_reply_modal(_form(last_message="x" * 50_000, title="t" * 400, text="y" * 9000))
    assert validate_view(long) == []
    slack = build_reply_modal(_form(target=ReplyTarget(channel="CCUST")))
    assert "<#CCUST>" in json.dumps(slack["blocks"])


def test_reply_parsing_helpers() -> None:
    assert parse_reply_metadata("not json") is None
    assert parse_reply_metadata('{"ticket_id": "5"}') is None
    assert parse_reply_metadata('{"ticket_id": true}') is None
    values = {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": "  hi  "}}}
    assert parse_reply_text(values) == "hi"
    assert parse_reply_text({}) == ""
    assert quote("a\n\nb") == "> a\n>\n> b"


def test_mail_list_is_valid() -> None:
    lines = [
        MailLine(i, QUARANTINED, "2025-06-02 09:00 UTC", "<!here>@x", "s" * 900, "o" * 900)
        for i in range(60)
    ]
    blocks = build_mail_list(lines, heading="Mail")
    assert len(blocks) <= 50 and "&lt;!here&gt;" in json.dumps(blocks)
    assert "Nothing waiting" in json.dumps(build_mail_list([], heading="Mail"))


# -- through the app ------------------------------------------------------------------------------


@dataclass
class Setup:
    customer_id: int


@pytest.fixture
async def setup(docket: Any) -> Setup:
    services = docket.services
    docket.emulator.add_user(AGENT, name="agnes", real_name="Agnes Agent")
    async with services.transaction() as session:
        customer = Customer(
            workspace_id=services.workspace_id, name="Acme", slack_channel=CUSTOMER_CHANNEL
        )
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        session.add_all(
            [
                Contact(
                    workspace_id=services.workspace_id,
                    customer_id=customer.id,
                    email="carl@acme.test",
                    name="Carl Customer",
                    slack_user_id=CUSTOMER_USER,
                ),
                Member(workspace_id=services.workspace_id, slack_user_id=AGENT, name="Agnes"),
                Member(
                    workspace_id=services.workspace_id,
                    slack_user_id=GUEST,
                    name="Guest",
                    active=False,
                ),
            ]
        )
    return Setup(customer.id)


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def _tickets(docket: Any) -> list[Ticket]:
    async with docket.services.read() as session:
        return list((await session.exec(select(Ticket).order_by(col(Ticket.id)))).all())


async def _events(docket: Any, ticket_id: int | None) -> list[TicketEvent]:
    async with docket.services.read() as session:
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        return list((await session.exec(stmt.order_by(col(TicketEvent.id)))).all())


async def _processed(docket: Any) -> None:
    """Wait until every stored Slack event has been processed."""
    from models.tables import SlackEvent

    async def done() -> bool:
        async with docket.services.read() as session:
            rows = (await session.exec(select(SlackEvent.status))).all()
        return bool(rows) and all(status != "pending" for status in rows)

    await _until(done)


async def test_customer_channel_conversation(docket: Any, setup: Setup) -> None:
    emulator, requests = docket.emulator, docket.requests
    # A customer's top-level message opens a ticket for that customer.
    first = requests.message_event(
        "Our <!here> printer is on fire\nsecond line",
        channel=CUSTOMER_CHANNEL,
        user=CUSTOMER_USER,
        ts="1700000000.000100",
    )
    await docket.event(first)
    await docket.event(first)  # a second delivery with a new event id
    await _processed(docket)
    [ticket] = await _tickets(docket)
    assert ticket.customer_id == setup.customer_id and ticket.contact_id is not None
    assert ticket.title.startswith("Our @here printer is on fire")
    created = (await _events(docket, ticket.id))[0]
    assert created.slack_ts == "1700000000.000100" and created.actor_label == "Carl Customer"
    await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args["channel"] == CUSTOMER_CHANNEL
            and c.args.get("thread_ts") == "1700000000.000100"
            and f"#{ticket.number}" in c.args["text"]
        )
    )
    # The card itself goes to the team's triage channel, never the customer's.
    await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args["channel"] == "CTRIAGE"
            and "thread_ts" not in c.args
        )
    )
    assert not [
        c
        for c in emulator.calls
        if c.args.get("channel") == CUSTOMER_CHANNEL and "blocks" in c.args
    ]

    # Someone from the support team answers in the thread: an agent reply, no email.
    async with docket.services.transaction() as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None and stored.id is not None
        agent = (await session.exec(select(Member).where(Member.slack_user_id == AGENT))).one()
        stored.assignee_id = agent.id
        stored.status = TicketStatus.OPEN
        session.add(stored)
    answer = requests.message_event(
        "Unplug it now",
        channel=CUSTOMER_CHANNEL,
        user=AGENT,
        ts="1700000000.000200",
        thread_ts="1700000000.000100",
    )
    await docket.event(answer)
    await _processed(docket)
    [ticket] = await _tickets(docket)
    assert ticket.status == TicketStatus.WAITING
    events = await _events(docket, ticket.id)
    assert events[-2].kind == EventKind.AGENT_REPLY and events[-2].body == "Unplug it now"
    assert events[-2].slack_ts == "1700000000.000200"

    # The customer answers in the thread: a customer reply, the assignee hears of it.
    emulator.clear()
    again = requests.message_event(
        "Done, it is out",
        channel=CUSTOMER_CHANNEL,
        user=CUSTOMER_USER,
        ts="1700000000.000300",
        thread_ts="1700000000.000100",
    )
    await docket.event(again)
    await docket.event(again)
    await _processed(docket)
    replies = [e for e in await _events(docket, ticket.id) if e.kind == EventKind.CUSTOMER_REPLY]
    assert [r.body for r in replies] == ["Done, it is out"]
    [ticket] = await _tickets(docket)
    assert ticket.status == TicketStatus.OPEN
    dm = await emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and "Done, it is out" in json.dumps(c.args)
    )
    assert dm.args["channel"] != CUSTOMER_CHANNEL

    # "Reply to customer" on a Slack ticket answers in the customer's thread.
    emulator.clear()
    await docket.interact(
        requests.block_actions(
            Action.REPLY,
            str(ticket.id),
            user_id=AGENT,
            channel_id=CUSTOMER_CHANNEL,
            response_url=emulator.response_url("reply"),
        )
    )
    opened = await emulator.wait_for(lambda c: c.method == "views.open")
    assert "Done, it is out" in json.dumps(opened.args["view"])
    reply = await docket.interact(
        requests.view_submission(
            View.REPLY,
            {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": "Glad to hear"}}},
            view=opened.response["view"],
            user_id=AGENT,
        )
    )
    assert reply.status == 200 and not reply.body
    await emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args["channel"] == CUSTOMER_CHANNEL
            and c.args.get("thread_ts") == "1700000000.000100"
            and c.args["text"] == "Glad to hear"
        )
    )
    async with docket.services.read() as session:
        emails = await session.exec(select(OutboxMessage).where(OutboxMessage.kind == EMAIL))
        assert emails.all() == []
    assert len(await _tickets(docket)) == 1


async def test_channel_noise_opens_nothing(docket: Any, setup: Setup) -> None:
    requests = docket.requests
    for event in (
        requests.message_event("hello", channel="CELSEWHERE", user=CUSTOMER_USER),
        requests.message_event("an agent's note", channel=CUSTOMER_CHANNEL, user=AGENT),
        {**requests.message_event("bot", channel=CUSTOMER_CHANNEL, user="UBOT"), "bot_id": "B1"},
        {**requests.message_event("joined", channel=CUSTOMER_CHANNEL), "subtype": "channel_join"},
        requests.message_event(
            "reply to nothing",
            channel=CUSTOMER_CHANNEL,
            user=CUSTOMER_USER,
            thread_ts="1600000000.000001",
        ),
    ):
        await docket.event(event)
    await _processed(docket)
    assert await _tickets(docket) == []


async def test_follow_up_when_the_channel_ticket_was_closed_long_ago(
    docket: Any, setup: Setup
) -> None:
    first = docket.requests.message_event(
        "Mail is slow", channel=CUSTOMER_CHANNEL, user=CUSTOMER_USER, ts="1700000001.000100"
    )
    await docket.event(first)
    await _processed(docket)
    [old] = await _tickets(docket)
    async with docket.services.transaction() as session:
        stored = await session.get(Ticket, old.id)
        assert stored is not None
        stored.status = TicketStatus.CLOSED
        stored.closed_at = docket.services.now().replace(year=2020)
        session.add(stored)
    late = docket.requests.message_event(
        "It is slow again",
        channel=CUSTOMER_CHANNEL,
        user=CUSTOMER_USER,
        ts="1700000001.000900",
        thread_ts="1700000001.000100",
    )
    await docket.event(late)
    await _processed(docket)
    old_again, follow = await _tickets(docket)
    assert old_again.status == TicketStatus.CLOSED
    assert follow.follow_up_of_id == old.id and follow.customer_id == setup.customer_id


async def test_only_members_may_reply(docket: Any, setup: Setup) -> None:
    emulator, requests = docket.emulator, docket.requests
    async with docket.services.transaction() as session:
        ticket = Ticket(
            workspace_id=docket.services.workspace_id,
            number=1,
            title="VPN",
            requester_email="carl@acme.test",
        )
        session.add(ticket)
        await session.flush()
        ticket_id = ticket.id
    await docket.interact(
        requests.block_actions(
            Action.REPLY,
            str(ticket_id),
            user_id=GUEST,
            response_url=emulator.response_url("guest"),
        )
    )
    refused = await emulator.wait_for(lambda c: c.path.endswith("/guest"))
    assert "support team" in refused.args["text"]
    assert emulator.calls_to("views.open") == []

    # A submission is checked again: the form may have been opened before a demotion.
    form = {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": "hi"}}}
    meta = json.dumps({"ticket_id": ticket_id})
    answer = await docket.interact(requests.view_submission(View.REPLY, form, meta, user_id=GUEST))
    assert answer.json()["response_action"] == "errors"
    assert "support team" in answer.json()["errors"][REPLY_BLOCK]
    empty = {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": " "}}}
    answer = await docket.interact(requests.view_submission(View.REPLY, empty, meta, user_id=AGENT))
    assert answer.json()["errors"][REPLY_BLOCK] == "Write a reply first."
    async with docket.services.read() as session:
        assert (await session.exec(select(EmailMessage))).all() == []


async def test_ticket_reply_command_forms(docket: Any, setup: Setup) -> None:
    emulator = docket.emulator
    async with docket.services.transaction() as session:
        session.add(
            Ticket(
                workspace_id=docket.services.workspace_id,
                number=3,
                title="VPN",
                requester_email="carl@acme.test",
            )
        )
    await docket.command(
        "/ticket", "reply 99 hello", user_id=AGENT, response_url=emulator.response_url("r99")
    )
    missing = await emulator.wait_for(lambda c: c.path.endswith("/r99"))
    assert "no ticket #99" in missing.args["text"]
    await docket.command("/ticket", "reply", user_id=AGENT, response_url=emulator.response_url("u"))
    usage = await emulator.wait_for(lambda c: c.path.endswith("/u"))
    assert "/ticket reply 123" in usage.args["text"]
    await docket.command("/ticket", "reply 3", user_id=AGENT)
    opened = await emulator.wait_for(lambda c: c.method == "views.open")
    assert opened.args["view"]["callback_id"] == View.REPLY


async def test_docket_mail_lists_quarantined_mail_for_admins(docket: Any, setup: Setup) -> None:
    emulator = docket.emulator
    async with docket.services.transaction() as session:
        session.add(
            EmailMessage(
                workspace_id=docket.services.workspace_id,
                status=QUARANTINED,
                outcome="unreadable: TypeError",
                from_addr="x@y.test",
                raw=b"junk",
            )
        )
    await docket.command("/docket", "mail", user_id=AGENT, response_url=emulator.response_url("a"))
    refused = await emulator.wait_for(lambda c: c.path.endswith("/a"))
    assert "Only Docket admins" in refused.args["text"]
    await docket.command(
        "/docket", "mail", user_id="UADMIN", response_url=emulator.response_url("b")
    )
    listed = await emulator.wait_for(lambda c: c.path.endswith("/b"))
    assert "unreadable: TypeError" in json.dumps(listed.args["blocks"])
