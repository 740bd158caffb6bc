"""`/profit`: argument parsing, the same report as `docket report`, and nothing for non-managers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from bot.cli import build_parser
from bot.reports import command_report
from handlers.blocks.profit import build_profit_blocks, table_text
from handlers.ids import Command
from handlers.profit_cmd import REFUSAL, parse_profit_args
from models import profit_report
from models.periods import month_of, parse_period, previous, week_of
from models.reporting import render_csv, render_table, report_json
from models.tables import ContractKind, Member, Role
from tests.conftest import make_settings
from tests.models.profit_world import World
from tests.slack_emulator import validate_blocks

TODAY = date(2025, 6, 20)


@pytest.mark.parametrize(
    ("text", "period", "customer", "export"),
    [
        ("", month_of(TODAY), None, False),
        ("week", week_of(TODAY), None, False),
        ("Acme", month_of(TODAY), "Acme", False),
        ("Acme GmbH 2025-W23", parse_period("2025-W23", today=TODAY), "Acme GmbH", False),
        ("acme last-month", parse_period("2025-05", today=TODAY), "acme", False),
        ("export", month_of(TODAY), None, True),
        ("export Acme 2025-06", month_of(TODAY), "Acme", True),
        ("Week 2", month_of(TODAY), "Week 2", False),  # not a period: part of the name
    ],
)
def test_parse_profit_args(text: str, period: Any, customer: str | None, export: bool) -> None:
    args = parse_profit_args(text, today=TODAY)
    assert (args.period, args.customer, args.export) == (period, customer, export)


def test_a_malformed_period_is_not_taken_for_a_name() -> None:
    with pytest.raises(ValueError, match="month must be 01 to 12"):
        parse_profit_args("Acme 2025-13", today=TODAY)


# -- end to end ----------------------------------------------------------------------------------

USERS = {
    "U1": ("alice", "Alice Agent", "alice@provider.test"),
    "UMGR": ("meg", "Meg Manager", "meg@provider.test"),
}
_seq = iter(range(1, 10_000))


async def _seed(docket: Any) -> World:
    for user_id, (name, real, email) in USERS.items():
        docket.emulator.add_user(user_id, name=name, real_name=real, email=email)
    w = World(docket.services.engine, docket.services.workspace_id)
    alice = await w.member("Alice")
    await w.cost_rate(5000, date(2025, 1, 1), member_id=alice)
    acme = await w.customer("Acme & <Sons>")
    globex = await w.customer("Globex")
    support = await w.contract(
        acme, "Support", ContractKind.HOURLY, date(2025, 1, 1), hourly_rate_minor=12000
    )
    fixed = await w.contract(
        globex, "Managed", ContractKind.FIXED, date(2025, 6, 1), monthly_fee_minor=300000
    )
    await w.log(alice, 90, date(2025, 6, 3), contract_id=support)
    await w.log(alice, 50, date(2025, 6, 4), contract_id=fixed)
    await w.log(alice, 20, date(2025, 6, 4))  # internal
    await w.refresh()
    return w


async def _profit(docket: Any, text: str, user: str) -> dict[str, Any]:
    name = f"profit-{next(_seq)}"
    reply = await docket.command(
        Command.PROFIT.value, text, user_id=user, response_url=docket.emulator.response_url(name)
    )
    assert reply.status == 200 and reply.elapsed < 3.0
    call = await docket.emulator.wait_for(
        lambda c: c.method == "response_url" and c.path.endswith(f"/{name}"), timeout=10
    )
    assert call.ok, call
    return dict(call.args)


async def _manager(docket: Any) -> None:
    await _profit(docket, "", "UMGR")  # resolves the member (refused: still an agent)
    async with docket.services.transaction() as s:
        member = (await s.exec(select(Member).where(Member.slack_user_id == "UMGR"))).one()
        member.role = Role.MANAGER
        s.add(member)


def _cli(database_url: str, *argv: str) -> str:
    """`docket report ...` in this process (its own event loop and engine), stdout captured."""
    args = build_parser().parse_args(["report", "profitability", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert command_report(make_settings(database_url=database_url), args) == 0
    return out.getvalue()


@pytest.mark.e2e
async def test_profit_and_the_json_report_agree(docket: Any) -> None:
    w = await _seed(docket)
    await _manager(docket)
    answer = await _profit(docket, "2025-W23", "UMGR")
    assert validate_blocks(answer["blocks"]) == []
    shown = table_text(answer["blocks"])

    url = docket.services.settings.database_url
    printed = await asyncio.to_thread(_cli, url, "--period", "2025-W23")
    assert shown == printed  # /profit shows exactly what `docket report` prints

    data = json.loads(
        await asyncio.to_thread(_cli, url, "--period", "2025-W23", "--format", "json")
    )
    report = await w.report("2025-W23")
    assert data == report_json(report)
    assert shown == render_table(report)
    acme = next(c for c in data["customers"] if c["customer"] == "Acme & <Sons>")
    assert (acme["revenue"], acme["labour_cost"], acme["contribution"]) == (
        "180.00",
        "75.00",
        "105.00",
    )
    assert data["totals"]["revenue"] == "880.00"  # 180.00 + 7 days of 3,000.00 / 30
    assert data["quality"]["unattributed_hours"] == "0.33"
    for c in data["customers"]:
        assert c["revenue"] in shown and c["contribution"] in shown

    one = await _profit(docket, "acme 2025-W23", "UMGR")
    assert "Acme &amp; &lt;Sons&gt;" in str(one["blocks"]) and "Globex" not in str(one["blocks"])


@pytest.mark.e2e
async def test_a_non_manager_learns_nothing(docket: Any) -> None:
    await _seed(docket)
    answers = [
        await _profit(docket, text, "U1")
        for text in ("", "Acme 2025-W23", "Nobody at all", "export", "export Acme", "2025-13")
    ]
    assert {a["text"] for a in answers} == {REFUSAL}
    assert {json.dumps(a["blocks"], sort_keys=True) for a in answers} == {
        json.dumps(answers[0]["blocks"], sort_keys=True)
    }
    methods = {c.method for c in docket.emulator.calls}
    assert not methods & {"conversations.open", "files.getUploadURLExternal", "chat.postMessage"}


@pytest.mark.e2e
async def test_export_sends_the_csv_to_the_requester(docket: Any) -> None:
    w = await _seed(docket)
    await _manager(docket)
    answer = await _profit(docket, "export 2025-06", "UMGR")
    assert "direct messages" in answer["text"]
    (upload,) = docket.emulator.files("DUMGR")
    assert upload.filename == "docket-profitability-2025-06.csv"
    assert upload.data == render_csv(await w.report("2025-06")).encode()


@pytest.mark.e2e
async def test_an_unknown_customer_is_said_to_managers(docket: Any) -> None:
    await _seed(docket)
    await _manager(docket)
    answer = await _profit(docket, "Initech 2025-06", "UMGR")
    assert "No customer matches" in answer["text"]


def test_blocks_of_a_long_report_stay_within_slack_limits() -> None:
    from models.profitability import Figures
    from models.reporting import Line, Quality, Report

    lines = tuple(
        Line(customer_id=i, customer=f"Customer number {i}", figures=Figures(minutes=60 * i))
        for i in range(1, 400)
    )
    report = Report(
        period=parse_period("2025-06", today=TODAY),
        currency="EUR",
        total=Figures(),
        customers=lines,
        contracts=(),
        quality=Quality(),
    )
    blocks = build_profit_blocks(report)
    assert validate_blocks(blocks) == [] and len(blocks) <= 50
    assert "/profit export" in str(blocks[-2]) or "/profit export" in str(blocks[-1])


async def test_build_report_refuses_a_free_range(engine: Any, workspace: Any) -> None:
    from models.periods import date_range

    w = World(engine, workspace.id)
    async with w.sessions() as s:
        with pytest.raises(ValueError, match="weeks and months"):
            await profit_report.build_report(
                session=s,
                workspace_id=workspace.id,
                period=date_range(date(2025, 6, 1), date(2025, 6, 3)),
            )


@pytest.mark.e2e
async def test_profit_last_week_shows_the_managers_summary(docket: Any) -> None:
    await _seed(docket)
    await _manager(docket)
    answer = await _profit(docket, "last-week", "UMGR")
    assert validate_blocks(answer["blocks"]) == []
    today = docket.services.now().astimezone(docket.services.timezone).date()
    key = previous(week_of(today)).key
    assert key in answer["text"]
    assert f"/profit {key}" in str(answer["blocks"][-1])
    refused = await _profit(docket, "last-week", "U1")
    assert refused["text"] == REFUSAL
