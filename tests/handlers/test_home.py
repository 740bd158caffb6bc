"""App Home: the pure builder, and publishing end to end (on opening and after a change)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from handlers.blocks.home import build_home
from handlers.ids import Action
from models.tables import Member, TimeEntry
from models.tickets import HomeData, TicketCard, TicketPage
from tests.handlers.test_tickets_e2e import (
    assert_all_calls_ok,
    card_posted,
    click,
    quick_create,
    setup_users,
    ticket_no,
)
from tests.slack_emulator import validate_view

NOW = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)


def card(number: int, **kw: Any) -> TicketCard:
    values: dict[str, Any] = dict(
        id=number,
        number=number,
        title=f"Ticket {number}",
        description="",
        status="open",
        priority="normal",
        version=1,
        created_at=NOW - timedelta(hours=number),
    )
    values.update(kw)
    return TicketCard(**values)


def page(cards: list[TicketCard], total: int | None = None) -> TicketPage:
    return TicketPage(
        cards=cards, total=len(cards) if total is None else total, page=1, per_page=10
    )


def actions(view: dict[str, Any]) -> list[tuple[str, str | None]]:
    found = []
    for block in view["blocks"]:
        for element in [*block.get("elements", []), block.get("accessory")]:
            if isinstance(element, dict) and "action_id" in element:
                found.append((element["action_id"], element.get("value")))
    return found


def test_home_shows_my_work_unassigned_tickets_and_my_hours() -> None:
    data = HomeData(
        member_name="Alice",
        mine=page([card(1, assignee_id=5, assignee_slack_id="U1")]),
        waiting=page([card(2, status="waiting")]),
        unassigned=page([card(3), card(4)], total=14),
        week_start=date(2025, 6, 2),
        minutes_this_week=95,
    )
    view = build_home(data, now=NOW)
    assert view["type"] == "home" and validate_view(view) == []
    text = str(view["blocks"])
    assert "My open tickets (1)" in text and "Waiting on the customer (1)" in text
    assert "Unassigned (14)" in text and "…and 12 more" in text
    assert "1h35" in text and "2025-06-02" in text
    found = actions(view)
    assert (Action.NEW_TICKET.value, "new") in found and (
        Action.HOME_LOG_TIME.value,
        "log",
    ) in found
    assert [v for a, v in found if a == Action.ASSIGN_TO_ME] == ["3", "4"], "only unassigned"


def test_an_empty_home_is_still_valid() -> None:
    data = HomeData("Alice", page([]), page([]), page([]), date(2025, 6, 2), 0)
    view = build_home(data, now=NOW)
    assert validate_view(view) == [] and "Nothing assigned to you." in str(view["blocks"])


def test_a_full_home_stays_within_slacks_100_blocks() -> None:
    many = page([card(i) for i in range(1, 11)], total=500)
    view = build_home(HomeData("A", many, many, many, date(2025, 6, 2), 0), now=NOW)
    assert validate_view(view) == [] and len(view["blocks"]) <= 100


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_home_is_published_when_opened_and_after_assignment(docket: Any) -> None:
    setup_users(docket)
    emu = docket.emulator
    await docket.event(docket.requests.app_home_opened("U1"))
    first = await emu.wait_for(
        lambda c: c.method == "views.publish" and c.args["user_id"] == "U1", timeout=10
    )
    assert first.ok and "Nothing assigned to you." in str(first.args["view"])
    assert "My hours this week:* 0m" in str(first.args["view"])

    # Hours this week come from time entries in the workspace's ISO week.
    async with docket.services.transaction() as session:
        alice = (await session.exec(select(Member).where(Member.slack_user_id == "U1"))).one()
        today = docket.services.now().astimezone(docket.services.timezone).date()
        session.add(
            TimeEntry(
                workspace_id=docket.services.workspace_id,
                member_id=alice.id,
                work_date=today,
                minutes=75,
            )
        )

    await quick_create(docket, "Phone line dead")
    message = await card_posted(docket, 1)
    await docket.interact(click(docket, Action.ASSIGN_TO_ME.value, message))
    refreshed = await emu.wait_for(
        lambda c: (
            c.method == "views.publish"
            and c.args["user_id"] == "U1"
            and "Phone line dead" in str(c.args["view"])
        ),
        timeout=10,
    )
    assert "My open tickets (1)" in str(refreshed.args["view"])
    assert "1h15" in str(refreshed.args["view"])
    assert (await ticket_no(docket, 1)).assignee_id == alice.id

    # Opening Home again publishes it again (the event is processed from the database).
    before = len(emu.calls_to("views.publish"))
    await docket.event(docket.requests.app_home_opened("U1"))
    await emu.wait_for(lambda c: c.method == "views.publish", count=before + 1, timeout=10)
    messages_tab = docket.requests.app_home_opened("U1", tab="messages")
    await docket.event(messages_tab)
    assert_all_calls_ok(docket)
