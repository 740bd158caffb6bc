"""Slow submissions answer within Slack's window: in the ack when the save is done in time,
otherwise the form closes at once and the outcome comes by DM (the save is never cut off)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

import handlers.ack
from bot.services import Services
from handlers.ack import within_ack_budget
from handlers.directory_forms import handle_cost_rate_submission
from handlers.ids import View
from handlers.time_cmd import handle_log_time_submission
from models.tables import CostRate, TimeEntry
from tests.conftest import BOT_TOKEN, make_settings

ADMIN, AGENT = "UADMIN", "U1"


class Ack:
    """Records what a listener acknowledged with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def client(services: Services, emulator: Any) -> AsyncWebClient:
    emulator.add_user(ADMIN, name="ada", real_name="Ada", email="ada@provider.test")
    emulator.add_user(AGENT, name="alice", real_name="Alice", email="alice@provider.test")
    services.settings = make_settings(docket_admins=[ADMIN], slack_api_url=emulator.api_url)
    return AsyncWebClient(token=BOT_TOKEN, base_url=emulator.api_url)


@pytest.fixture
def no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every save takes longer than the budget (none is left)."""
    monkeypatch.setattr(handlers.ack, "ACK_BUDGET_SECONDS", 0.0)


def _cost_rate(user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {
        "hourly_cost": {"hourly_cost_input": {"type": "plain_text_input", "value": "55.00"}},
        "since": {"since_input": {"type": "datepicker", "selected_date": "2025-01-01"}},
        "default": {"default_input": {"selected_options": [{"value": "default"}]}},
    }
    view = {"callback_id": View.COST_RATE.value, "state": {"values": values}}
    return {"user": {"id": user}, "view": view}, view


def _dms(emulator: Any, user: str) -> list[str]:
    return [
        str(c.args.get("text"))
        for c in emulator.calls_to("chat.postMessage")
        if c.args.get("channel") == user
    ]


async def _rates(services: Services) -> list[CostRate]:
    async with services.read() as session:
        return list((await session.exec(select(CostRate))).all())


async def test_a_directory_form_saved_in_time_answers_in_the_ack(
    services: Services, client: AsyncWebClient, emulator: Any
) -> None:
    ack = Ack()
    body, view = _cost_rate(ADMIN)
    await handle_cost_rate_submission(ack, body, view, client, services)  # type: ignore[arg-type]
    assert [c.get("response_action") for c in ack.calls] == ["update"]
    assert "55.00/h" in str(ack.calls[0]["view"])
    assert _dms(emulator, ADMIN) == []
    assert [r.minor_per_hour for r in await _rates(services)] == [5500]


@pytest.mark.usefixtures("no_budget")
async def test_a_directory_form_past_the_budget_closes_and_is_told_by_dm(
    services: Services, client: AsyncWebClient, emulator: Any
) -> None:
    ack = Ack()
    body, view = _cost_rate(ADMIN)
    await handle_cost_rate_submission(ack, body, view, client, services)  # type: ignore[arg-type]
    assert ack.calls == [{}], "the form closes at once"
    (dm,) = _dms(emulator, ADMIN)
    assert "55.00/h" in dm and "2025-01-01" in dm
    assert [r.minor_per_hour for r in await _rates(services)] == [5500], "saved all the same"


@pytest.mark.usefixtures("no_budget")
async def test_a_refusal_past_the_budget_is_told_by_dm(
    services: Services, client: AsyncWebClient, emulator: Any
) -> None:
    ack = Ack()
    body, view = _cost_rate(AGENT)
    await handle_cost_rate_submission(ack, body, view, client, services)  # type: ignore[arg-type]
    assert ack.calls == [{}]
    (dm,) = _dms(emulator, AGENT)
    assert dm.startswith("Your form was not saved:") and "admins and managers" in dm
    assert await _rates(services) == []


def _time_form(user: str, ticket: str) -> tuple[dict[str, Any], dict[str, Any]]:
    values = {
        "duration": {"duration_input": {"type": "plain_text_input", "value": "1h"}},
        "work_date": {"work_date_input": {"type": "datepicker", "selected_date": "2025-06-20"}},
        "billable": {"billable_input": {"type": "checkboxes", "selected_options": []}},
        "ticket": {"ticket_input": {"type": "plain_text_input", "value": ticket}},
    }
    view = {"callback_id": View.LOG_TIME.value, "state": {"values": values}}
    return {"user": {"id": user}, "view": view}, view


async def test_the_time_form_answers_a_problem_in_the_form_when_in_time(
    services: Services, client: AsyncWebClient, emulator: Any
) -> None:
    ack = Ack()
    body, view = _time_form(AGENT, "999")
    await handle_log_time_submission(ack, body, view, client, services)  # type: ignore[arg-type]
    assert ack.calls == [
        {"response_action": "errors", "errors": {"ticket": "There is no ticket #999."}}
    ]
    assert _dms(emulator, AGENT) == []


@pytest.mark.usefixtures("no_budget")
async def test_the_time_form_past_the_budget_closes_and_is_told_by_dm(
    services: Services, client: AsyncWebClient, emulator: Any
) -> None:
    ack = Ack()
    body, view = _time_form(AGENT, "999")
    await handle_log_time_submission(ack, body, view, client, services)  # type: ignore[arg-type]
    assert ack.calls == [{}]
    assert _dms(emulator, AGENT) == ["Your time entry was not saved: There is no ticket #999."]
    async with services.read() as session:
        assert (await session.exec(select(TimeEntry))).all() == []


async def test_work_past_the_budget_goes_on_to_its_end() -> None:
    finished = asyncio.Event()

    async def slow() -> str:
        await asyncio.sleep(0.2)
        finished.set()
        return "done"

    task = await within_ack_budget(slow(), budget=0.05)
    assert not task.done()
    assert await task == "done" and finished.is_set()
    assert (await within_ack_budget(slow(), budget=1.0)).result() == "done"
