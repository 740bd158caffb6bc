"""Outsiders (guests, Slack Connect users, people Slack cannot describe) stay outside."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from handlers.ids import Action, View
from models.tables import Contact, Contract, Customer, Member, Role, SlackEvent, Ticket
from tests.handlers.test_tickets_e2e import form_values

pytestmark = pytest.mark.e2e

BOSS_EMAIL = "boss@provider.test"


async def _command(docket: Any, command: str, text: str, user: str) -> str:
    """Run a slash command through the server; what the person was answered, as text."""
    emulator = docket.emulator
    name = f"{command.strip('/')}-{user}-{time.monotonic_ns()}"
    reply = await docket.command(
        command, text, user_id=user, response_url=emulator.response_url(name)
    )
    assert reply.status == 200
    answer = await emulator.wait_for(lambda c: c.path.endswith("/" + name), timeout=10)
    return reply.body.decode() + json.dumps(answer.args)


async def test_an_outsider_never_claims_an_imported_manager(docket: Any) -> None:
    """An imported manager (email, no Slack id) is claimed by a colleague of Docket's own
    workspace only; a user of another organisation with the same address stays outside."""
    services, emulator = docket.services, docket.emulator
    async with services.transaction() as s:
        s.add(
            Member(
                workspace_id=services.workspace_id,
                name="Imported Boss",
                email=BOSS_EMAIL,
                role=Role.MANAGER,
                active=True,
            )
        )
    emulator.add_user("UOUTSIDE", real_name="Mallory", email=BOSS_EMAIL)
    emulator.users["UOUTSIDE"]["team_id"] = "TMALLORY"
    emulator.add_user("UGUEST", real_name="Gus", email=BOSS_EMAIL)
    emulator.users["UGUEST"]["is_restricted"] = True

    for outsider in ("UOUTSIDE", "UGUEST"):
        said = await _command(docket, "/profit", "", outsider)
        assert "managers and admins" in said
        assert "Margin" not in said and "Revenue" not in said
    async with services.read() as s:
        rows = {
            m.slack_user_id: m
            for m in (
                await s.exec(select(Member).where(Member.workspace_id == services.workspace_id))
            ).all()
        }
    assert rows[None].role == Role.MANAGER  # the imported row is still unclaimed
    assert rows["UOUTSIDE"].active is False and rows["UOUTSIDE"].role != Role.MANAGER
    assert rows["UGUEST"].active is False

    # The colleague it was imported for claims it.
    emulator.add_user("UBOSS", real_name="Boss", email=BOSS_EMAIL)
    said = await _command(docket, "/profit", "", "UBOSS")
    assert "managers and admins" not in said
    async with services.read() as s:
        boss = (await s.exec(select(Member).where(Member.slack_user_id == "UBOSS"))).one()
    assert (boss.name, boss.role, boss.active) == ("Imported Boss", Role.MANAGER, True)


async def _seed_two_customers(docket: Any) -> dict[str, int]:
    """Acme (Carol is its contact, a Slack Connect user) and Beta (shared channel CBETA, contact
    Bob), an agent, and an unassigned Beta ticket."""
    services, emulator = docket.services, docket.emulator
    emulator.add_user("UAGENT", real_name="Agnes", email="agnes@provider.test")
    emulator.add_user("UCAROL", real_name="Carol", email="carol@acme.test")
    emulator.users["UCAROL"]["team_id"] = "TACME"
    emulator.add_user("UGUEST", real_name="Gus", email="gus@freelance.test")
    emulator.users["UGUEST"]["is_restricted"] = True
    ws = services.workspace_id
    async with services.transaction() as s:
        acme = Customer(workspace_id=ws, name="Acme GmbH", slack_channel="CACME")
        beta = Customer(workspace_id=ws, name="Beta Bank", slack_channel="CBETA")
        s.add_all([acme, beta])
        await s.flush()
        assert acme.id is not None and beta.id is not None
        s.add(
            Contact(
                workspace_id=ws,
                customer_id=acme.id,
                email="carol@acme.test",
                name="Carol",
                slack_user_id="UCAROL",
            )
        )
        s.add(Contact(workspace_id=ws, customer_id=beta.id, email="bob@beta.test", name="Bob"))
        s.add(
            Contract(
                workspace_id=ws,
                customer_id=beta.id,
                name="Beta Premium",
                kind="hourly",
                start_date=date(2020, 1, 1),
            )
        )
        s.add(Member(workspace_id=ws, slack_user_id="UAGENT", name="Agnes"))
        beta_ticket = Ticket(
            workspace_id=ws, number=9999, title="Beta outage secret", customer_id=beta.id
        )
        s.add(beta_ticket)
        await s.flush()
    return {"acme": acme.id, "beta": beta.id}


DIRECTORY = ("Beta Bank", "bob@beta.test", "Beta Premium", "Beta outage secret")


def _leaks(text: str) -> list[str]:
    return [word for word in DIRECTORY if word in text]


async def test_outsiders_see_no_directory_and_open_tickets_only_for_themselves(
    docket: Any,
) -> None:
    ids = await _seed_two_customers(docket)
    emulator, req = docket.emulator, docket.requests
    for user in ("UCAROL", "UGUEST"):
        mark = len(emulator.calls)
        # The ticket modal: no other customer, contact or contract.
        assert (await docket.command("/ticket", "", user_id=user)).status == 200
        opened = await emulator.wait_for(
            lambda c, m=mark: c.method == "views.open" and emulator.calls.index(c) >= m
        )
        view = opened.response["view"]
        assert _leaks(json.dumps(view)) == [], user
        if user == "UCAROL":
            assert "Acme GmbH" in json.dumps(view)  # her own customer, preselected
        # The form's customer type-ahead, and the directory's.
        for action in (Action.TICKET_CUSTOMER, Action.DIRECTORY_CUSTOMER, Action.TIME_TARGET):
            typed = req.block_suggestion(action.value, "", user_id=user, block_id="b")
            answer = (await docket.interact(typed)).json()
            names = [o["text"]["text"] for o in answer.get("options", [])]
            expected = ["Acme GmbH"] if (user, action) == ("UCAROL", Action.TICKET_CUSTOMER) else []
            assert names == expected, (user, action, names)
        # /time: refused, no modal with the directory.
        said = await _command(docket, "/time", "", user)
        assert "support team" in said
        # App Home: nobody else's tickets.
        assert (await docket.event(req.app_home_opened(user))).status == 200
        home = await emulator.wait_for(
            lambda c, u=user: c.method == "views.publish" and c.args["user_id"] == u, timeout=10
        )
        assert _leaks(json.dumps(home.args)) == [], user
        assert "Unassigned" not in json.dumps(home.args)

        # Submitting the form for Beta, with the agent as assignee: stored as their own ticket,
        # nothing posted in Beta's shared channel, no DM to the agent.
        mark = len(emulator.calls)
        values = form_values(
            title=f"Pay invoices to our new bank {user}",
            customer=ids["beta"],
            assignee="UAGENT",
            description="<https://evil.test|Beta portal>",
        )
        sent = req.interactivity(req.view_submission(View.TICKET.value, values, user_id=user))
        assert (await docket.send(*sent)).status == 200
        async with docket.services.read() as s:
            ticket = (
                await s.exec(
                    select(Ticket)
                    .where(Ticket.title.startswith("Pay invoices"))
                    .where(Ticket.title.endswith(user))
                )  # type: ignore[union-attr]
            ).one()
        assert ticket.assignee_id is None
        assert ticket.customer_id == (ids["acme"] if user == "UCAROL" else None)
        await asyncio.sleep(1.0)  # the outbox delivers the card
        posted = [c for c in emulator.calls[mark:] if c.method == "chat.postMessage"]
        assert posted, "the card went nowhere"
        assert all(c.args.get("channel") not in ("CBETA", "UAGENT") for c in posted), posted


async def test_a_home_for_someone_slack_cannot_describe_is_published_once(docket: Any) -> None:
    emulator = docket.emulator
    emulator.fail_next("users.info", "user_not_found")
    reply = await docket.event(docket.requests.app_home_opened("UNOBODY"))
    assert reply.status == 200
    home = await emulator.wait_for(
        lambda c: c.method == "views.publish" and c.args["user_id"] == "UNOBODY", timeout=10
    )
    assert "not available to you" in json.dumps(home.args)
    await asyncio.sleep(1.0)
    assert len(emulator.calls_to("views.publish")) == 1
    async with docket.services.read() as s:
        event = (await s.exec(select(SlackEvent))).one()
    assert (event.status, event.attempts, event.last_error) == ("done", 1, None)
