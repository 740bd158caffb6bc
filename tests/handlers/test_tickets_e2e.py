"""Tickets end to end: signed HTTP into the real server, Slack answered by the emulator.

Posts and card updates go through the outbox, so these tests wait for the emulator to see
them (`wait_for`) rather than assuming when the worker delivers. Every call Docket makes must
pass the emulator's checks (no `ok: false`), which include Slack's Block Kit limits.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import threading
import time
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.db import make_engine
from handlers.blocks.tickets import Field
from handlers.ids import Action, Command, Shortcut, View
from models.tables import (
    Contact,
    Contract,
    Customer,
    EventKind,
    Member,
    Role,
    Ticket,
    TicketEvent,
)
from tests.slack_emulator import Call, validate_view
from tests.slack_signing import select_value, text_value

pytestmark = pytest.mark.e2e

USERS = {
    "U1": ("alice", "Alice Agent", "alice@provider.test"),
    "UBOB": ("bob", "Bob Builder", "bob@provider.test"),
    "UADMIN": ("ada", "Ada Admin", "ada@provider.test"),
    "UCUST": ("carl", "Carl Customer", "carl@acme.test"),
}
EVIL = "<!channel> <!everyone> <@U0EVIL1> <http://evil.example|bank>"


# -- helpers -----------------------------------------------------------------------------------


def setup_users(docket: Any) -> None:
    for user_id, (name, real_name, email) in USERS.items():
        docket.emulator.add_user(user_id, name=name, real_name=real_name, email=email)


def assert_all_calls_ok(docket: Any) -> None:
    failed = [
        (c.method, c.status, c.response)
        for c in docket.emulator.calls
        if not c.ok and c.method != "auth.test"
    ]
    assert failed == [], f"Slack refused calls: {failed}"


async def seed_customer(
    docket: Any, name: str = "Acme GmbH", *, channel: str | None = None, contracts: int = 1
) -> tuple[int, int]:
    """A customer with contact Carl (Slack user UCUST) and `contracts` active contracts."""
    ws_id = docket.services.workspace_id
    async with docket.services.transaction() as session:
        customer = Customer(workspace_id=ws_id, name=name, slack_channel=channel)
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        contact = Contact(
            workspace_id=ws_id,
            customer_id=customer.id,
            email=f"carl@{customer.id}.acme.test",
            name="Carl",
            slack_user_id="UCUST",
        )
        session.add(contact)
        for i in range(contracts):
            session.add(
                Contract(
                    workspace_id=ws_id,
                    customer_id=customer.id,
                    name=f"Support {i}",
                    kind="hourly",
                    start_date=date(2020, 1, 1),
                )
            )
        await session.flush()
        assert contact.id is not None
        return customer.id, contact.id


async def ticket_no(docket: Any, number: int) -> Ticket:
    async with docket.services.read() as session:
        stmt = select(Ticket).where(
            Ticket.workspace_id == docket.services.workspace_id, Ticket.number == number
        )
        ticket = (await session.exec(stmt)).first()
    assert ticket is not None, f"ticket #{number} was not created"
    return ticket


async def events(docket: Any, ticket_id: int | None) -> list[TicketEvent]:
    async with docket.services.read() as session:
        stmt = (
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(col(TicketEvent.id))
            .execution_options(populate_existing=True)
        )
        return list((await session.exec(stmt)).all())


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def card_posted(docket: Any, number: int, channel: str = "CTRIAGE") -> dict[str, Any]:
    """Wait until the card of ticket `number` is posted and its ts stored; return the message."""
    await docket.emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.args["channel"] == channel
            and f"Ticket #{number}:" in c.args["text"]
        ),
        timeout=15,
    )

    async def stored() -> Ticket | None:
        ticket = await ticket_no(docket, number)
        return ticket if ticket.card_ts else None

    ticket = await eventually(stored)
    message = next(
        m for m in docket.emulator.messages(ticket.card_channel) if m["ts"] == ticket.card_ts
    )
    return message


def card_fields(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """The card's fields as {"Status": "Open", ...}."""
    found = {}
    for block in blocks:
        for item in block.get("fields") or []:
            name, _, value = item["text"].partition("\n")
            found[name.strip("*")] = value
    return found


def card_update(number: int, **expected: str) -> Any:
    """Matches the chat.update of ticket `number`'s card whose fields contain `expected`."""

    def match(c: Call) -> bool:
        if c.method != "chat.update" or f"#{number} ·" not in str(c.args.get("blocks")):
            return False
        fields = card_fields(c.args["blocks"])
        return all(value in fields.get(name, "") for name, value in expected.items())

    return match


async def quick_create(docket: Any, title: str, user: str = "U1", channel: str = "C1") -> Any:
    reply = await docket.command(Command.TICKET.value, title, user_id=user, channel_id=channel)
    assert reply.status == 200 and reply.elapsed < 3.0
    return reply


def click(
    docket: Any, action_id: str, message: dict[str, Any], *, user: str = "U1", **kw: Any
) -> dict[str, Any]:
    """Press a button (or choose in a select) of `message`, as Slack reports it."""
    if "selected_option" not in kw:
        # Slack sends the button's value with the action.
        kw.setdefault(
            "value",
            next(
                e.get("value")
                for b in message["blocks"]
                if b["type"] == "actions"
                for e in b["elements"]
                if e["action_id"] == action_id
            ),
        )
    return docket.requests.block_actions(
        action_id,
        user_id=user,
        message=message,
        channel_id=message["channel"],
        response_url=docket.emulator.response_url(f"{action_id}-{user}"),
        **kw,
    )


def status_click(
    docket: Any, message: dict[str, Any], ticket_id: int | None, status: str, **kw: Any
) -> Any:
    return click(
        docket,
        Action.STATUS.value,
        message,
        selected_option=f"{ticket_id}:{status}",
        **kw,
    )


def form_values(
    *,
    title: str,
    customer: int | None = None,
    contact: int | None = None,
    contract: int | None = None,
    priority: str = "normal",
    assignee: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        Field.CUSTOMER: {
            Action.TICKET_CUSTOMER.value: select_value(str(customer) if customer else None)
        },
        Field.TITLE: {"title_input": text_value(title)},
        Field.DESCRIPTION: {"description_input": text_value(description)},
        Field.PRIORITY: {"priority_input": select_value(priority)},
        Field.ASSIGNEE: {"assignee_input": {"type": "users_select", "selected_user": assignee}},
    }
    if customer:
        values[f"contact-{customer}"] = {
            "contact_input": select_value(str(contact) if contact else None)
        }
        values[f"contract-{customer}"] = {
            "contract_input": select_value(str(contract) if contract else None)
        }
    return values


async def opened_view(docket: Any, callback_id: str, count: int = 1) -> dict[str, Any]:
    call = await docket.emulator.wait_for(
        lambda c: c.method == "views.open" and c.args["view"]["callback_id"] == callback_id,
        count=count,
    )
    assert call.ok, call.response
    assert call.response is not None
    return dict(call.response["view"])


# -- /ticket ---------------------------------------------------------------------------------


async def test_modal_create_with_type_ahead_and_dependent_selects(docket: Any) -> None:
    setup_users(docket)
    customer_id, contact_id = await seed_customer(docket, contracts=2)
    await seed_customer(docket, "Beta Ltd", contracts=0)

    reply = await docket.command(Command.TICKET.value, "", user_id="U1")
    assert reply.status == 200 and reply.elapsed < 3.0
    view = await opened_view(docket, View.TICKET.value)
    assert "Customer" in str(view["blocks"]) and "billable" in str(view["blocks"])

    # The customer type-ahead answers from the database.
    suggestion = docket.requests.block_suggestion(
        Action.TICKET_CUSTOMER.value, "acm", user_id="U1", view=view
    )
    options = (await docket.interact(suggestion)).json()["options"]
    assert [o["text"]["text"] for o in options] == ["Acme GmbH"]

    # Choosing the customer swaps in its contacts and contracts.
    chosen = docket.requests.block_actions(
        Action.TICKET_CUSTOMER.value,
        user_id="U1",
        view=view,
        selected_option=select_value(str(customer_id), "Acme GmbH")["selected_option"],
        state_values=form_values(title="", customer=customer_id),
    )
    assert (await docket.interact(chosen)).status == 200
    updated_call = await docket.emulator.wait_for(lambda c: c.method == "views.update")
    updated = updated_call.response["view"]  # type: ignore[index]
    block_ids = [b.get("block_id") for b in updated["blocks"]]
    assert f"contact-{customer_id}" in block_ids and f"contract-{customer_id}" in block_ids

    contract_options = next(
        b for b in updated["blocks"] if b.get("block_id") == f"contract-{customer_id}"
    )["element"]["options"]
    submission = docket.requests.view_submission(
        View.TICKET.value,
        form_values(
            title=f"Printer jams {EVIL}",
            customer=customer_id,
            contact=contact_id,
            contract=int(contract_options[1]["value"]),
            priority="high",
            description="Since Monday",
        ),
        user_id="U1",
        view=updated,
    )
    answer = await docket.interact(submission)
    assert answer.status == 200 and answer.elapsed < 3.0
    body = answer.json()
    assert body["response_action"] == "update" and validate_view(body["view"]) == []
    assert "#1" in str(body["view"])

    ticket = await ticket_no(docket, 1)
    assert (ticket.customer_id, ticket.contact_id, ticket.priority) == (
        customer_id,
        contact_id,
        "high",
    )
    assert ticket.contract_id == int(contract_options[1]["value"])
    assert [e.kind for e in await events(docket, ticket.id)] == [EventKind.CREATED]
    message = await card_posted(docket, 1)
    card = str(message["blocks"])
    assert "Acme GmbH" in card and "Support 1" in card and "High" in card
    assert "<!channel>" not in card and "&lt;!channel&gt;" in card
    assert "<!channel>" not in message["text"]
    assert_all_calls_ok(docket)


async def test_form_errors_come_back_inside_the_modal(docket: Any) -> None:
    setup_users(docket)
    customer_id, _contact_id = await seed_customer(docket)
    _other_id, other_contact = await seed_customer(docket, "Beta Ltd")
    blank = docket.requests.view_submission(
        View.TICKET.value, form_values(title="   "), user_id="U1"
    )
    body = (await docket.interact(blank)).json()
    assert body == {"response_action": "errors", "errors": {Field.TITLE: "A ticket needs a title."}}
    # A contact of another customer (a forged or stale state) is refused at its block.
    forged = docket.requests.view_submission(
        View.TICKET.value,
        form_values(title="x", customer=customer_id, contact=other_contact),
        user_id="U1",
    )
    body = (await docket.interact(forged)).json()
    assert body["response_action"] == "errors"
    assert list(body["errors"]) == [f"contact-{customer_id}"]
    async with docket.services.read() as session:
        count = (await session.exec(select(sa.func.count()).select_from(Ticket))).one()
    assert count == 0


async def test_quick_create_answers_with_the_card_and_an_edit_button(docket: Any) -> None:
    setup_users(docket)
    customer_id, _ = await seed_customer(docket, channel="CACME")
    await quick_create(docket, f"VPN down {EVIL}", channel="C1")
    response = await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and "#1" in str(c.args.get("blocks"))
    )
    assert response.ok
    blocks = response.args["blocks"]
    assert response.args["response_type"] == "ephemeral"
    edit = [
        e
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == Action.EDIT.value
    ]
    assert edit and "<!channel>" not in str(blocks) and "&lt;!channel&gt;" in str(blocks)
    ticket = await ticket_no(docket, 1)
    assert ticket.title.startswith("VPN down") and ticket.status == "new"
    assert ticket.priority == "normal" and ticket.customer_id is None
    await card_posted(docket, 1)

    # In a customer's own channel the customer (and its only contract) are the defaults,
    # and the card goes to the team's triage channel, never the customer's own.
    await quick_create(docket, "Mail bounces", channel="CACME")
    await card_posted(docket, 2, channel="CTRIAGE")
    second = await ticket_no(docket, 2)
    assert second.customer_id == customer_id and second.contract_id is not None
    assert_all_calls_ok(docket)


async def test_show_list_help_and_unknown_input(docket: Any) -> None:
    setup_users(docket)
    await seed_customer(docket)
    for i in range(12):
        await quick_create(docket, f"Ticket number {i}")
    await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and "#12" in str(c.args.get("blocks")), timeout=15
    )
    seventh = await ticket_no(docket, 7)  # commands run concurrently: any title may be #7
    await docket.command(
        Command.TICKET.value, "7", user_id="U1", response_url=docket.emulator.response_url("show")
    )
    shown = await docket.emulator.wait_for(lambda c: c.path.endswith("/show"))
    assert f"#7 · {seventh.title}" in str(shown.args["blocks"])

    await docket.command(
        Command.TICKET.value,
        "list open",
        user_id="U1",
        response_url=docket.emulator.response_url("list"),
    )
    listed = await docket.emulator.wait_for(lambda c: c.path.endswith("/list"))
    assert "page 1 of 2" in str(listed.args["blocks"])
    nxt = next(
        e
        for b in listed.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"].endswith("next")
    )
    page2 = docket.requests.block_actions(
        nxt["action_id"],
        nxt["value"],
        user_id="U1",
        channel_id="C1",
        response_url=docket.emulator.response_url("page2"),
    )
    await docket.interact(page2)
    second = await docket.emulator.wait_for(lambda c: c.path.endswith("/page2"))
    assert second.args["replace_original"] is True and "page 2 of 2" in str(second.args["blocks"])

    for text, name in (("list Nobody Inc", "nocust"), ("show abc", "bad"), ("help", "help")):
        reply = await docket.command(
            Command.TICKET.value,
            text,
            user_id="U1",
            response_url=docket.emulator.response_url(name),
        )
        assert reply.status == 200 and reply.elapsed < 3.0
    for name in ("nocust", "bad", "help"):
        answered = await docket.emulator.wait_for(lambda c, n=name: c.path.endswith(f"/{n}"))
        assert "/ticket list" in str(answered.args["blocks"]), name
    await docket.command(
        Command.TICKET.value, "404", user_id="U1", response_url=docket.emulator.response_url("nf")
    )
    missing = await docket.emulator.wait_for(lambda c: c.path.endswith("/nf"))
    assert "no ticket #404" in missing.args["text"]
    assert_all_calls_ok(docket)


async def test_the_ack_does_not_wait_for_a_slow_database(docket: Any, backend: str) -> None:
    """The database is locked for 4 s; `/ticket <title>` and a modal submission are answered
    before Slack's 3 s run out: stored and acknowledged, or refused when nothing can be stored."""
    setup_users(docket)
    url = docket.services.settings.database_url
    held = threading.Event()
    release = threading.Event()
    released: list[float] = []

    def hold_sqlite() -> None:
        conn = sqlite3.connect(url.split("///", 1)[1], timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE workspace SET name = name")
        held.set()
        release.wait(4)
        released.append(time.monotonic())
        conn.execute("COMMIT")
        conn.close()

    async def hold_postgres() -> None:
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("LOCK TABLE member, ticket, workspace IN ACCESS EXCLUSIVE MODE")
            )
            held.set()
            await asyncio.to_thread(release.wait, 4)
            released.append(time.monotonic())
        await engine.dispose()

    holder = (
        asyncio.ensure_future(asyncio.to_thread(hold_sqlite))
        if backend == "sqlite"
        else asyncio.ensure_future(hold_postgres())
    )
    await asyncio.to_thread(held.wait, 5)
    submission = docket.requests.view_submission(
        View.TICKET.value, form_values(title="Slow form"), user_id="U1"
    )
    reply, submitted = await asyncio.gather(
        docket.command(Command.TICKET.value, "Slow day", user_id="U1"),
        docket.interact(submission),
    )
    assert reply.status == 200 and submitted.status == 200
    assert reply.elapsed < 3.0, f"ack took {reply.elapsed:.2f}s while the database was locked"
    assert submitted.elapsed < 3.0, f"the form waited {submitted.elapsed:.2f}s"
    if backend == "sqlite":
        # The whole file is locked: nothing can be stored, so nothing is accepted, and the
        # person is told so at once (the form stays open with their input).
        assert "nothing was saved" in reply.json()["text"]
        assert submitted.json()["response_action"] == "errors"
        assert "nothing was saved" in str(submitted.json()["errors"])
        await holder
        await asyncio.sleep(0.5)
        async with docket.services.read() as session:
            assert (await session.exec(select(Ticket.title))).all() == []
        return
    # PostgreSQL locks tables, not the intake: both are stored and acknowledged at once.
    assert reply.json()["text"] == "Creating ticket…"
    assert submitted.json()["response_action"] == "update", "the form says it is saving"
    assert not docket.emulator.responses(), "the answer came before the database was free"
    await holder
    answered = await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and "Slow day" in str(c.args.get("blocks")),
        timeout=20,
    )
    assert answered.args.get("replace_original") is True, "the result replaces the ack"
    assert answered.at >= released[0], "the work waited for the database, the ack did not"

    async def both_saved() -> bool:
        async with docket.services.read() as session:
            titles = (await session.exec(select(Ticket.title))).all()
        return sorted(titles) == ["Slow day", "Slow form"]

    await eventually(both_saved)
    assert_all_calls_ok(docket)


# -- the message shortcut -----------------------------------------------------------------------


async def test_create_ticket_from_a_message(docket: Any) -> None:
    setup_users(docket)
    customer_id, contact_id = await seed_customer(docket)
    source = docket.emulator.add_message("CSUPPORT", f"Printer broken again\n{EVIL}", user="UCUST")
    shortcut = docket.requests.message_action(
        Shortcut.CREATE_TICKET_FROM_MESSAGE.value,
        {"user": "UCUST", "text": source["text"], "ts": source["ts"]},
        "CSUPPORT",
        "U1",
    )
    reply = await docket.interact(shortcut)
    assert reply.status == 200 and reply.elapsed < 3.0
    opened = await opened_view(docket, View.TICKET.value)
    title_block = next(b for b in opened["blocks"] if b.get("block_id") == Field.TITLE)
    assert title_block["element"]["initial_value"] == "Printer broken again"
    prefilled_call = await docket.emulator.wait_for(lambda c: c.method == "views.update")
    prefilled = prefilled_call.response["view"]  # type: ignore[index]
    contact_block = next(
        b for b in prefilled["blocks"] if b.get("block_id") == f"contact-{customer_id}"
    )
    assert contact_block["element"]["initial_option"]["value"] == str(contact_id)
    assert "archives/CSUPPORT" in prefilled["private_metadata"]

    submission = docket.requests.view_submission(
        View.TICKET.value,
        form_values(
            title="Printer broken again",
            customer=customer_id,
            contact=contact_id,
            description=f"Printer broken again\n{EVIL}",
        ),
        user_id="U1",
        view=prefilled,
    )
    body = (await docket.interact(submission)).json()
    assert body["response_action"] == "update" and validate_view(body["view"]) == []
    ticket = await ticket_no(docket, 1)
    assert ticket.source_permalink and "archives/CSUPPORT" in ticket.source_permalink
    assert ticket.contact_id == contact_id and ticket.requester_email
    thread_reply = await docket.emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("thread_ts") == source["ts"],
        timeout=15,
    )
    assert thread_reply.args["channel"] == "CSUPPORT" and "#1" in thread_reply.args["text"]
    card = await card_posted(docket, 1)
    assert "Source message" in str(card["blocks"])
    assert_all_calls_ok(docket)


# -- the card's buttons -------------------------------------------------------------------------


async def test_every_card_button(docket: Any) -> None:
    setup_users(docket)
    await quick_create(docket, "Laptop will not boot")
    message = await card_posted(docket, 1)
    ticket = await ticket_no(docket, 1)
    emu = docket.emulator

    # Assign to me: the card is updated in place, the ticket opens.
    await docket.interact(click(docket, Action.ASSIGN_TO_ME.value, message))
    await emu.wait_for(card_update(1, Assignee="<@U1>"))
    after = await ticket_no(docket, 1)
    assert after.status == "open" and after.assignee_id is not None

    # Status: waiting on the customer.
    await docket.interact(status_click(docket, message, ticket.id, "waiting"))
    await emu.wait_for(card_update(1, Status="Waiting on customer"))

    # Edit opens the form with the ticket's version.
    await docket.interact(click(docket, Action.EDIT.value, message))
    edit_view = await opened_view(docket, View.TICKET.value)
    assert edit_view["title"]["text"] == "Edit #1" and '"v":3' in edit_view["private_metadata"]

    # Edit: assign Bob; he gets the card by DM.
    values = form_values(title="Laptop will not boot", assignee="UBOB", priority="urgent")
    body = (
        await docket.interact(
            docket.requests.view_submission(View.TICKET.value, values, user_id="U1", view=edit_view)
        )
    ).json()
    assert body["response_action"] == "update" and validate_view(body["view"]) == []
    dm = await emu.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args["channel"] == "UBOB"
    )
    assert "#1" in dm.args["text"] and "Urgent" in str(dm.args["blocks"])
    await emu.wait_for(card_update(1, Assignee="<@UBOB>", Priority="Urgent"))

    # Log time opens the time-logging modal for this ticket (or says it is not installed).
    await docket.interact(click(docket, Action.LOG_TIME.value, message))
    if importlib.util.find_spec("handlers.time_cmd") is not None:
        log_time = await opened_view(docket, View.LOG_TIME.value)
        assert "#1" in str(log_time["blocks"])
    else:
        await emu.wait_for(
            lambda c: c.method == "response_url" and "Time logging" in str(c.args.get("text"))
        )

    # Reply to customer is rendered for the conversation module (value = the ticket id).
    reply_button = next(
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == Action.REPLY.value
    )
    assert reply_button["value"] == str(ticket.id)

    # Close, then a refused move: closed -> waiting is not in the lifecycle.
    await docket.interact(click(docket, Action.CLOSE.value, message))
    await emu.wait_for(card_update(1, Status="Closed"))
    closed = await ticket_no(docket, 1)
    await docket.interact(status_click(docket, message, ticket.id, "waiting", user="UBOB"))
    refused = await emu.wait_for(
        lambda c: c.method == "response_url" and "can't move" in str(c.args.get("text"))
    )
    assert "can't move #1 from closed to waiting" in refused.args["text"]
    assert refused.args["response_type"] == "ephemeral"
    assert (await ticket_no(docket, 1)).version == closed.version
    # A forged status value is refused, and echoed escaped.
    await docket.interact(status_click(docket, message, ticket.id, "<!channel>", user="UBOB"))
    forged = await emu.wait_for(
        lambda c: c.method == "response_url" and "closed to &lt;!channel&gt;" in str(c.args)
    )
    assert "<!channel>" not in forged.args["text"]

    kinds = [e.kind for e in await events(docket, ticket.id)]
    assert kinds == ["created", "assignment", "status", "status", "edited", "assignment", "status"]
    assert_all_calls_ok(docket)


async def test_two_people_pressing_buttons_at_once_both_count(docket: Any) -> None:
    setup_users(docket)
    await quick_create(docket, "Shared drive full")
    message = await card_posted(docket, 1)
    ticket = await ticket_no(docket, 1)
    await asyncio.gather(
        docket.interact(click(docket, Action.ASSIGN_TO_ME.value, message, user="UBOB")),
        docket.interact(status_click(docket, message, ticket.id, "waiting")),
    )

    async def both() -> bool:
        found = await events(docket, ticket.id)
        assigned = any(e.kind == EventKind.ASSIGNMENT for e in found)
        waiting = any(e.kind == EventKind.STATUS and e.data["to"] == "waiting" for e in found)
        return assigned and waiting

    await eventually(both)
    final = await ticket_no(docket, 1)
    assert final.status == "waiting" and final.assignee_id is not None
    last = await docket.emulator.wait_for(
        card_update(1, Assignee="<@UBOB>", Status="Waiting on customer")
    )
    updates = docket.emulator.calls_to("chat.update")
    assert updates[-1] is last, "the final card shows both changes"
    assert_all_calls_ok(docket)


async def test_only_support_team_members_may_change_tickets(docket: Any) -> None:
    setup_users(docket)
    guest = docket.emulator.add_user("UGUEST", name="gus", real_name="Gus Guest")
    guest["is_restricted"] = True
    await quick_create(docket, "Anyone may create", user="UGUEST")
    message = await card_posted(docket, 1)
    await docket.interact(click(docket, Action.ASSIGN_TO_ME.value, message, user="UGUEST"))
    refused = await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and "support team" in str(c.args.get("text"))
    )
    assert refused.ok
    assert (await ticket_no(docket, 1)).assignee_id is None
    assert_all_calls_ok(docket)


async def test_a_modal_opened_before_a_change_is_refused(docket: Any) -> None:
    setup_users(docket)
    await quick_create(docket, "Monitor flickers")
    message = await card_posted(docket, 1)
    await docket.interact(click(docket, Action.EDIT.value, message, user="UBOB"))
    stale = await opened_view(docket, View.TICKET.value)
    # Alice assigns herself meanwhile.
    await docket.interact(click(docket, Action.ASSIGN_TO_ME.value, message))
    await docket.emulator.wait_for(card_update(1, Assignee="<@U1>"))
    submission = docket.requests.view_submission(
        View.TICKET.value,
        form_values(title="Monitor flickers badly"),
        user_id="UBOB",
        view=stale,
    )
    body = (await docket.interact(submission)).json()
    assert body["response_action"] == "errors"
    message_text = body["errors"][Field.TITLE]
    assert "changed by Alice Agent" in message_text and "reopen" in message_text
    ticket = await ticket_no(docket, 1)
    assert ticket.title == "Monitor flickers"
    assert_all_calls_ok(docket)


# -- the card's thread ------------------------------------------------------------------------


async def test_thread_replies_become_notes(docket: Any) -> None:
    setup_users(docket)
    await seed_customer(docket, channel="CACME")
    await quick_create(docket, "Backup failed")
    message = await card_posted(docket, 1)
    ticket = await ticket_no(docket, 1)
    reply = docket.requests.message_event(
        f"Restarted the agent {EVIL}", channel="CTRIAGE", user="UBOB", thread_ts=message["ts"]
    )
    await docket.event(reply)
    await docket.event(reply)  # a second delivery (new event id) records nothing new
    bot_reply = docket.requests.message_event(
        "Ticket updated", channel="CTRIAGE", user="UBOT", thread_ts=message["ts"]
    )
    await docket.event({**bot_reply, "bot_id": "BBOT"})
    not_a_reply = docket.requests.message_event("Unrelated", channel="CTRIAGE", user="UBOB")
    await docket.event(not_a_reply)

    async def notes() -> list[TicketEvent]:
        return [e for e in await events(docket, ticket.id) if e.kind == EventKind.NOTE]

    (note,) = await eventually(notes)
    assert note.body == f"Restarted the agent {EVIL}" and note.actor_label == "Bob Builder"
    assert note.slack_ts == reply["ts"]

    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": "CTRIAGE",
        "ts": f"{time.time():.6f}",
        "message": {**reply, "text": "Restarted the agent twice", "edited": {"user": "UBOB"}},
        "previous_message": reply,
    }
    await docket.event(edited)

    async def was_edited() -> bool:
        found = await notes()
        return bool(found) and found[0].body == "Restarted the agent twice"

    await eventually(was_edited)
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": "CTRIAGE",
        "ts": f"{time.time():.6f}",
        "deleted_ts": reply["ts"],
        "previous_message": reply,
    }
    await docket.event(deleted)

    async def was_deleted() -> bool:
        found = await notes()
        return bool(found) and found[0].deleted

    await eventually(was_deleted)
    assert len(await notes()) == 1

    # A customer's own channel never holds a card: what is said there is never a note.
    await quick_create(docket, "Their printer", channel="CACME")
    customer_card = await card_posted(docket, 2, channel="CTRIAGE")
    other = await ticket_no(docket, 2)
    await docket.event(
        docket.requests.message_event(
            "From the customer", channel="CACME", user="UCUST", thread_ts=customer_card["ts"]
        )
    )
    await asyncio.sleep(0.5)
    assert not [e for e in await events(docket, other.id) if e.kind == EventKind.NOTE]
    assert_all_calls_ok(docket)


# -- /docket members -----------------------------------------------------------------------------


async def test_admins_set_roles_and_groups_and_others_cannot(docket: Any) -> None:
    setup_users(docket)
    await docket.command(
        Command.DOCKET.value,
        "members",
        user_id="U1",
        response_url=docket.emulator.response_url("m1"),
    )
    refused = await docket.emulator.wait_for(lambda c: c.path.endswith("/m1"))
    assert "admins" in refused.args["text"]

    await docket.command(Command.DOCKET.value, "members", user_id="UADMIN")
    view = await opened_view(docket, View.MEMBER.value)
    values = {
        "member_user": {"user_input": {"type": "users_select", "selected_user": "UBOB"}},
        "member_access": {"access_input": select_value("manager")},
        "member_group": {"group_input": text_value("Field engineers")},
    }
    body = (
        await docket.interact(
            docket.requests.view_submission(View.MEMBER.value, values, user_id="UADMIN", view=view)
        )
    ).json()
    assert body["response_action"] == "update" and validate_view(body["view"]) == []
    async with docket.services.read() as session:
        bob = (await session.exec(select(Member).where(Member.slack_user_id == "UBOB"))).one()
        admin = (await session.exec(select(Member).where(Member.slack_user_id == "UADMIN"))).one()
    assert bob.role == Role.MANAGER and bob.group_id is not None and bob.name == "Bob Builder"
    assert admin.role == Role.ADMIN

    # A forged submission by a non-admin is refused (the role is checked again).
    forged = docket.requests.view_submission(View.MEMBER.value, values, user_id="U1", view=view)
    body = (await docket.interact(forged)).json()
    assert body["response_action"] == "errors" and "admins" in str(body["errors"])
    assert_all_calls_ok(docket)


async def test_ill_take_it_on_a_reply_notice_assigns_and_keeps_the_notice(docket: Any) -> None:
    setup_users(docket)
    await quick_create(docket, "Printer offline")
    await card_posted(docket, 1)
    ticket = await ticket_no(docket, 1)
    notice = {
        "type": "message",
        "ts": "1700000999.000100",
        "channel": "CTRIAGE",
        "text": "New reply from the customer",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Customer wrote: it's on fire"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": Action.TAKE_TICKET.value,
                        "text": {"type": "plain_text", "text": "I'll take it"},
                        "value": str(ticket.id),
                    }
                ],
            },
        ],
    }
    reply = await docket.interact(click(docket, Action.TAKE_TICKET.value, notice, user="UBOB"))
    assert reply.status == 200

    async def assigned() -> bool:
        return (await ticket_no(docket, 1)).assignee_id is not None

    await eventually(assigned)
    await docket.emulator.wait_for(card_update(1, Assignee="<@UBOB>"))
    replaced = [
        c
        for c in docket.emulator.calls
        if c.args.get("replace_original") and not c.path.startswith("/response/cmd")
    ]
    assert replaced == [], "the notice with the customer's words must stay as it was"
