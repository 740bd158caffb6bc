"""`/docket members` through the real server: the member operation's rules hold from Slack.

A group change or a back-dated rate changes the member's labour cost: the difference between
the rates is kept and the refresh worker adds it to the stored figures.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

from handlers.ids import Command, View
from models import cost_changes
from models.people import ensure_group
from tests.models.profit_world import World
from tests.slack_signing import select_value, text_value

USERS = {
    "UBOB": ("bob", "Bob Builder", "bob@provider.test"),
    "UADMIN": ("ada", "Ada Admin", "ada@provider.test"),
}


async def _submit(docket: Any, user: str, access: str, group: str = "") -> dict[str, Any]:
    await docket.command(Command.DOCKET.value, "members", user_id="UADMIN")
    opened = await docket.emulator.wait_for(
        lambda c: c.method == "views.open" and c.args["view"]["callback_id"] == View.MEMBER.value
    )
    docket.emulator.clear()
    assert opened.response is not None
    values = {
        "member_user": {"user_input": {"type": "users_select", "selected_user": user}},
        "member_access": {"access_input": select_value(access)},
        "member_group": {"group_input": text_value(group)},
    }
    submission = docket.requests.view_submission(
        View.MEMBER.value, values, user_id="UADMIN", view=opened.response["view"]
    )
    return dict((await docket.interact(submission)).json())


async def _labour_cost_60(w: World) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (kind, *_rest), values in (await w.stored()).items():
        if kind in ("week", "month"):
            totals[kind] = totals.get(kind, 0) + values[6]
    return totals


async def test_a_group_change_from_slack_restates_the_members_cost(docket: Any) -> None:
    for user_id, (name, real_name, email) in USERS.items():
        docket.emulator.add_user(user_id, name=name, real_name=real_name, email=email)
    services = docket.services
    w = World(services.engine, services.workspace_id)
    bob = await w.member("Bob", group="techs")
    async with w.sessions() as s, s.begin():
        await ensure_group(session=s, workspace_id=services.workspace_id, name="seniors")
    await w.cost_rate(4000, date(2025, 1, 1), group_id=await w.group_id("techs"))
    await w.cost_rate(8000, date(2025, 1, 1), group_id=await w.group_id("seniors"))
    acme = await w.customer("Acme")
    await w.log(bob, 60, date(2025, 6, 3), customer_id=acme)
    await w.refresh()
    assert await _labour_cost_60(w) == {"week": 4000 * 60, "month": 4000 * 60}

    answer = await _submit(docket, "UBOB", "agent", "seniors")
    assert answer["response_action"] == "update", answer

    # The refresh worker recomputes the marked periods at the new group's rate.
    deadline = time.monotonic() + 20
    while await _labour_cost_60(w) != {"week": 8000 * 60, "month": 8000 * 60}:
        assert time.monotonic() < deadline, f"figures not restated: {await _labour_cost_60(w)}"
        await asyncio.sleep(0.1)
    assert await w.stale() == 0


async def test_a_back_dated_group_rate_from_slack_reaches_the_figures(docket: Any) -> None:
    """`/docket rates` through the real server: the rate is saved with its difference, and the
    refresh worker adds it to the stored labour cost without recomputing the periods."""
    for user_id, (name, real_name, email) in USERS.items():
        docket.emulator.add_user(user_id, name=name, real_name=real_name, email=email)
    services = docket.services
    w = World(services.engine, services.workspace_id)
    bob = await w.member("Bob", group="techs")
    techs = await w.group_id("techs")
    await w.cost_rate(4000, date(2025, 1, 1), group_id=techs)
    acme = await w.customer("Acme")
    await w.log(bob, 60, date(2025, 6, 3), customer_id=acme)
    await w.refresh()
    assert await _labour_cost_60(w) == {"week": 4000 * 60, "month": 4000 * 60}

    await docket.command(Command.DOCKET.value, "rates", user_id="UADMIN")
    opened = await docket.emulator.wait_for(
        lambda c: c.method == "views.open" and c.args["view"]["callback_id"] == View.COST_RATE.value
    )
    assert opened.response is not None
    values = {
        "group": {"group_input": select_value(str(techs))},
        "since": {"since_input": {"type": "datepicker", "selected_date": "2025-01-01"}},
        "hourly_cost": {"hourly_cost_input": text_value("65.00")},
    }
    submission = docket.requests.view_submission(
        View.COST_RATE.value, values, user_id="UADMIN", view=opened.response["view"]
    )
    answer = (await docket.interact(submission)).json()
    assert answer.get("response_action") != "errors", answer

    deadline = time.monotonic() + 20
    while await _labour_cost_60(w) != {"week": 6500 * 60, "month": 6500 * 60}:
        assert time.monotonic() < deadline, f"figures not updated: {await _labour_cost_60(w)}"
        await asyncio.sleep(0.1)
    async with w.sessions() as s:
        assert not await cost_changes.has_pending(s, services.workspace_id)
    assert await w.stale() == 0  # nothing was marked for a recompute
