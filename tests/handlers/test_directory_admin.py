"""`/docket customers|contacts|contracts|rates|charges|calculator`: forms, role checks, saves."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from handlers.blocks.directory import (
    build_calculator_modal,
    build_charge_rate_modal,
    build_contact_modal,
    build_contract_modal,
    build_cost_rate_modal,
    build_customer_modal,
    read_contract,
)
from handlers.directory_admin import REFUSAL
from handlers.ids import Action, Command, View
from models.tables import ChargeRate, Contract, ContractKind, CostRate, Customer
from tests.slack_emulator import validate_view

TODAY = date(2025, 6, 20)
EVIL = "<!channel> <@U0EVIL1>"


def test_every_form_passes_slack_s_checks() -> None:
    customers = [Customer(id=1, workspace_id=1, name=f"Acme {EVIL}", email_domains="acme.com")]
    contract = Contract(
        id=3,
        workspace_id=1,
        customer_id=1,
        name="Block",
        kind=ContractKind.BLOCK,
        start_date=TODAY,
        block_minutes=450,
        block_price_minor=100_000,
    )
    views = [
        build_customer_modal(customers[0]),
        build_customer_modal(None, "New one"),
        build_contact_modal(customers),
        build_contract_modal(customers, None, None, TODAY),
        build_contract_modal(customers, contract, None, TODAY),
        build_cost_rate_modal([(1, "techs")], TODAY),
        build_charge_rate_modal([(3, "Acme — Support")], TODAY, searchable=False),
        build_charge_rate_modal([], TODAY, searchable=True),
        build_calculator_modal([], TODAY, values={"salary": "60000"}, result="*42.00 EUR*"),
    ]
    for view in views:
        assert validate_view(view) == [], view["callback_id"]
    assert "7.5" in str(views[4])  # the block's 450 minutes shown as hours


def _v(**fields: Any) -> dict[str, Any]:
    """View state values: plain text unless given as a dict."""
    state: dict[str, Any] = {}
    for block, value in fields.items():
        if isinstance(value, dict):
            state[block] = {f"{block}_input": value}
        else:
            state[block] = {f"{block}_input": {"type": "plain_text_input", "value": value}}
    return state


def _select(value: str | None, action: str | None = None) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": value} if value else None}


def test_reading_the_contract_form() -> None:
    values = _v(
        name="Support",
        hourly_rate="120",
        monthly_fee="",
        block_hours="",
        start={"type": "datepicker", "selected_date": "2025-06-01"},
    )
    values["customer"] = {Action.DIRECTORY_CUSTOMER.value: _select("4")}
    values["kind"] = {"kind_input": _select("hourly")}
    customer, terms, errors = read_contract(values)
    assert errors == {} and customer == 4 and terms is not None
    assert (terms.kind, terms.hourly_rate_minor, terms.start_date) == (
        ContractKind.HOURLY,
        12000,
        date(2025, 6, 1),
    )
    values["kind"] = {"kind_input": _select("fixed")}
    values["monthly_fee"] = {"monthly_fee_input": {"value": "-5"}}
    _c, _t, errors = read_contract(values)
    assert errors == {"monthly_fee": "Amounts cannot be negative."}
    values["monthly_fee"] = {"monthly_fee_input": {"value": ""}}
    _c, _t, errors = read_contract(values)
    assert errors == {"monthly_fee": "A fixed-fee contract needs its monthly fee."}


# -- end to end ----------------------------------------------------------------------------------


async def _docket(docket: Any, text: str, user: str) -> Any:
    name = f"docket-{user}-{text.replace(' ', '-')}"
    reply = await docket.command(
        Command.DOCKET.value, text, user_id=user, response_url=docket.emulator.response_url(name)
    )
    assert reply.status == 200 and reply.elapsed < 3.0
    return name


def _setup(docket: Any) -> None:
    docket.emulator.add_user("U1", name="alice", real_name="Alice", email="alice@provider.test")
    docket.emulator.add_user("UADMIN", name="ada", real_name="Ada", email="ada@provider.test")


async def _opened(docket: Any, callback: View) -> dict[str, Any]:
    call = await docket.emulator.wait_for(
        lambda c: c.method == "views.open" and c.args["view"]["callback_id"] == callback
    )
    assert call.ok, call.response
    return dict(call.response["view"])  # type: ignore[index]


@pytest.mark.e2e
async def test_agents_are_refused_and_forged_submissions_too(docket: Any) -> None:
    _setup(docket)
    name = await _docket(docket, "contracts", "U1")
    call = await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and c.path.endswith(name)
    )
    assert call.args["text"] == REFUSAL
    assert not docket.emulator.calls_to("views.open")

    forged = docket.requests.view_submission(
        View.COST_RATE.value,
        {
            **_v(hourly_cost="1.00", since={"type": "datepicker", "selected_date": "2025-01-01"}),
            "default": {"default_input": {"selected_options": [{"value": "default"}]}},
        },
        user_id="U1",
    )
    answer = (await docket.interact(forged)).json()
    assert answer["response_action"] == "errors" and REFUSAL in str(answer["errors"])
    async with docket.services.read() as s:
        assert (await s.exec(select(CostRate))).all() == []


@pytest.mark.e2e
async def test_an_admin_adds_a_customer_and_a_contract(docket: Any) -> None:
    _setup(docket)
    await _docket(docket, "customers", "UADMIN")
    view = await _opened(docket, View.CUSTOMER)
    saved = await docket.interact(
        docket.requests.view_submission(
            View.CUSTOMER.value,
            _v(
                name="Acme",
                domains="acme.com, ACME.de",
                channel={"type": "conversations_select", "selected_conversation": "C0ACME"},
            ),
            user_id="UADMIN",
            view=view,
        )
    )
    assert saved.json()["response_action"] == "update"
    async with docket.services.read() as s:
        acme = (await s.exec(select(Customer))).one()
    assert (acme.email_domains, acme.slack_channel) == ("acme.com,acme.de", "C0ACME")
    assert acme.internal_channel is None and not acme.notify_ack  # nothing ticked

    # The team's channel for their cards, and which customer-facing messages they get.
    conversation = {"type": "conversations_select"}
    values = _v(
        name="Acme",
        channel={**conversation, "selected_conversation": "C0ACME"},
        internal={**conversation, "selected_conversation": "C0ACME"},
        notices={
            "type": "checkboxes",
            "selected_options": [{"value": "ack"}, {"value": "resolved"}],
        },
    )
    refused = await docket.interact(
        docket.requests.view_submission(View.CUSTOMER.value, values, user_id="UADMIN", view=view)
    )
    assert "internal" in refused.json()["errors"]
    values["internal"] = {"internal_input": {**conversation, "selected_conversation": "C0ACMEINT"}}
    saved = await docket.interact(
        docket.requests.view_submission(View.CUSTOMER.value, values, user_id="UADMIN", view=view)
    )
    assert saved.json()["response_action"] == "update"
    async with docket.services.read() as s:
        acme = (await s.exec(select(Customer))).one()
    assert acme.internal_channel == "C0ACMEINT"
    switches = (acme.notify_ack, acme.notify_taken, acme.notify_waiting, acme.notify_resolved)
    assert switches == (True, False, False, True)

    await _docket(docket, "contracts", "UADMIN")
    view = await _opened(docket, View.CONTRACT)
    values = _v(
        name="Support",
        hourly_rate="1,200.50",
        start={"type": "datepicker", "selected_date": "2025-06-01"},
    )
    values["customer"] = {Action.DIRECTORY_CUSTOMER.value: _select(str(acme.id))}
    values["kind"] = {"kind_input": _select("hourly")}
    bad = dict(values, hourly_rate={"hourly_rate_input": {"value": "lots"}})
    refused = await docket.interact(
        docket.requests.view_submission(View.CONTRACT.value, bad, user_id="UADMIN", view=view)
    )
    assert "hourly_rate" in refused.json()["errors"]
    done = await docket.interact(
        docket.requests.view_submission(View.CONTRACT.value, values, user_id="UADMIN", view=view)
    )
    assert done.json()["response_action"] == "update"
    async with docket.services.read() as s:
        contract = (await s.exec(select(Contract))).one()
        (rate,) = (await s.exec(select(ChargeRate))).all()
    assert (contract.kind, rate.minor_per_hour, rate.effective_from) == (
        "hourly",
        120050,
        date(2025, 6, 1),
    )


@pytest.mark.e2e
async def test_the_calculator_shows_then_saves_a_rate(docket: Any) -> None:
    _setup(docket)
    await _docket(docket, "calculator", "UADMIN")
    view = await _opened(docket, View.CALCULATOR)
    values = _v(salary="66,000", on_costs="0", benefits="", overhead="", days="220", hours="7.5")
    shown = await docket.interact(
        docket.requests.view_submission(View.CALCULATOR.value, values, user_id="UADMIN", view=view)
    )
    answer = shown.json()
    assert answer["response_action"] == "update"
    assert "40.00 EUR per hour" in str(answer["view"]["blocks"])  # 66,000 / 1,650 h
    assert validate_view(answer["view"]) == []

    values["default"] = {"default_input": {"selected_options": [{"value": "default"}]}}
    values["since"] = {"since_input": {"type": "datepicker", "selected_date": "2025-01-01"}}
    saved = await docket.interact(
        docket.requests.view_submission(View.CALCULATOR.value, values, user_id="UADMIN", view=view)
    )
    assert saved.json()["response_action"] == "update"
    async with docket.services.read() as s:
        (rate,) = (await s.exec(select(CostRate))).all()
    assert (rate.subject, rate.minor_per_hour, rate.effective_from) == (
        "default",
        4000,
        date(2025, 1, 1),
    )
    assert rate.inputs is not None and rate.inputs["yearly_salary_minor"] == 6_600_000


@pytest.mark.e2e
async def test_lists_for_admins(docket: Any) -> None:
    _setup(docket)
    ws = docket.services.workspace_id
    async with docket.services.transaction() as s:
        s.add(Customer(workspace_id=ws, name=f"Acme {EVIL}", email_domains="acme.com"))
        s.add(
            CostRate(
                workspace_id=ws,
                subject="default",
                effective_from=date(2025, 1, 1),
                minor_per_hour=5500,
            )
        )
    answers = {}
    for text in ("customers list", "rates list", "contacts list"):
        name = await _docket(docket, text, "UADMIN")
        call = await docket.emulator.wait_for(
            lambda c, n=name: c.method == "response_url" and c.path.endswith(n)
        )
        answers[text] = call.args["text"]
    assert "Acme &lt;!channel&gt;" in answers["customers list"]
    assert "acme.com" in answers["customers list"]
    assert "default: 55.00 EUR/h from 2025-01-01" in answers["rates list"]
    assert "/docket contacts" in answers["contacts list"]  # no list of contacts: the usage
