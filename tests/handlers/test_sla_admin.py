"""`/docket sla` through the real server: managers and admins set service levels."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from models.sla import PriorityTargets
from models.sla_store import workspace_calendar, workspace_policies
from models.tables import Workspace


async def _sla(docket: Any, text: str, user: str = "UADMIN") -> str:
    name = f"sla{abs(hash((text, user)))}"
    reply = await docket.command(
        "/docket",
        f"sla {text}".strip(),
        user_id=user,
        response_url=docket.emulator.response_url(name),
    )
    assert reply.status == 200
    answer = await docket.emulator.wait_for(lambda c: c.path.endswith(f"/{name}"))
    return str(answer.args.get("blocks") or "") + str(answer.args.get("text") or "")


async def test_admin_sets_hours_holidays_policies_and_warning(docket: Any) -> None:
    services = docket.services
    shown = await _sla(docket, "")
    assert "Mon 09:00-17:00 · Tue" in shown and "none yet" in shown
    assert "Saved: hours 08:00-16:00 on mon-thu" in await _sla(docket, "hours mon-thu 8:00-16:00")
    assert "Saved: closed on fri" in await _sla(docket, "hours fri closed")
    await _sla(docket, "holiday 2025-12-25 Christmas Day")
    saved = await _sla(docket, "policy default urgent 30m 4h")
    assert "Saved: policy default (business): urgent 30m / 4h" in saved
    await _sla(docket, "policy gold 24x7 high 1h -")
    assert "warning at 80%" in await _sla(docket, "warning 80")
    async with services.read() as session:
        cal = await workspace_calendar(session=session, workspace_id=services.workspace_id)
        policies = await workspace_policies(session=session, workspace_id=services.workspace_id)
        ws = await session.get(Workspace, services.workspace_id)
    assert cal.hours == {d: (time(8), time(16)) for d in range(4)}
    assert cal.holidays == frozenset({date(2025, 12, 25)})
    assert policies["default"][1].targets["urgent"] == PriorityTargets("30m", "4h")
    assert policies["gold"][1].calendar == "24x7"
    assert policies["gold"][1].targets["high"] == PriorityTargets("1h", None)
    assert ws is not None and ws.sla_warning_pct == 80


async def test_bad_input_and_agents_are_refused(docket: Any) -> None:
    assert "is not a duration" in await _sla(docket, "policy default urgent soon 4h")
    assert "is not hours like" in await _sla(docket, "hours mon 9-5")
    assert "did not understand" in await _sla(docket, "frobnicate")
    docket.emulator.add_user("UAGENT", name="agnes")
    assert "Only managers and admins" in await _sla(docket, "warning 50", user="UAGENT")
    services = docket.services
    async with services.read() as session:
        assert await workspace_policies(session=session, workspace_id=services.workspace_id) == {}


async def test_contract_form_names_a_policy(docket: Any) -> None:
    from sqlmodel import select

    from handlers.ids import Action, View
    from models.tables import Contract, Customer
    from tests.handlers.test_directory_admin import _docket, _opened, _select, _setup, _v

    _setup(docket)
    services = docket.services
    async with services.transaction() as session:
        acme = Customer(workspace_id=services.workspace_id, name="Acme")
        session.add(acme)
    await _sla(docket, "policy gold 24x7 urgent 15m 2h")
    await _docket(docket, "contracts", "UADMIN")
    view = await _opened(docket, View.CONTRACT)
    assert "SLA policy" in str(view["blocks"])
    values = _v(
        name="Gold support",
        hourly_rate="100",
        sla_policy="platinum",
        start={"type": "datepicker", "selected_date": "2025-06-01"},
    )
    values["customer"] = {Action.DIRECTORY_CUSTOMER.value: _select(str(acme.id))}
    values["kind"] = {"kind_input": _select("hourly")}
    refused = await docket.interact(
        docket.requests.view_submission(View.CONTRACT.value, values, user_id="UADMIN", view=view)
    )
    assert "No SLA policy is named platinum" in refused.json()["errors"]["sla_policy"]
    values["sla_policy"] = {"sla_policy_input": {"type": "plain_text_input", "value": "gold"}}
    done = await docket.interact(
        docket.requests.view_submission(View.CONTRACT.value, values, user_id="UADMIN", view=view)
    )
    assert done.json()["response_action"] == "update"
    async with services.read() as session:
        contract = (await session.exec(select(Contract))).one()
    assert contract.sla_policy == "gold"
