"""The report run: claim first, queue once, resume abandoned runs, match the JSON report."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_sessionmaker
from bot.services import Services
from jobs import weekly
from jobs.chart import png_size
from jobs.weekly import load_post, outbox_key, run_due, run_report
from models.money import format_amount, parse_amount
from models.periods import parse_period, week_of
from models.profit_refresh import refresh_some
from models.profit_report import build_report
from models.report_runs import claim_run
from models.reporting import render_json
from models.tables import Restatement, TimeEntry, Workspace
from models.timelog import EntryKey, mark_entry_changes
from tests.conftest import SIGNING_SECRET, make_settings
from tests.harness import running_docket
from tests.jobs.report_data import W23_MONDAY, add_time, counts, seed
from tests.slack_emulator import validate_blocks

W23 = week_of(W23_MONDAY)
# Monday 9 June 2025, 08:00 in Berlin: W23's post is due.
DUE = datetime(2025, 6, 9, 6, 0, tzinfo=UTC)


@pytest.fixture
async def seeded(engine: AsyncEngine, workspace: Workspace, services: Services) -> dict[str, int]:
    assert workspace.id is not None
    services.clock = lambda: DUE
    return await seed(engine, workspace.id)


def _text(payload: dict[str, Any]) -> str:
    return json.dumps(payload["args"]["blocks"], ensure_ascii=False)


async def test_a_run_claims_then_queues_the_post_and_the_chart_once(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    outcome = await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    assert outcome.status == "queued"
    runs, rows = await counts(engine)
    [run] = runs
    assert (run.kind, run.period_key, run.status) == ("weekly", "2025-W23", "queued")
    post, chart = rows
    key = outbox_key(services.workspace_id, "weekly", "2025-W23")
    assert key == f"report:{services.workspace_id}:weekly:2025-W23"
    assert post.idempotency_key == key and post.kind == "slack"
    assert post.payload["method"] == "chat.postMessage"
    assert post.payload["args"]["channel"] == "CMANAGERS"
    assert validate_blocks(post.payload["args"]["blocks"]) == []
    assert chart.idempotency_key == key + ":chart" and chart.kind == "upload"
    assert chart.payload["channel"] == "CMANAGERS"
    png = base64.b64decode(chart.payload["content_b64"])
    assert png_size(png) == (1200, 675)
    # The chart follows its post: same line, queued after it.
    assert post.ordering_key == chart.ordering_key and post.id < chart.id

    again = await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    assert again.status == "taken"
    assert [len(x) for x in await counts(engine)] == [1, 2]


async def test_the_posts_figures_equal_the_json_report(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    async with make_sessionmaker(engine)() as session:
        report = await build_report(session=session, workspace_id=services.workspace_id, period=W23)
        ws = await session.get(Workspace, services.workspace_id)
        assert ws is not None
        post = await load_post(session=session, workspace=ws, kind="weekly", period=W23)
    data = json.loads(
        render_json(report)
    )  # what `docket report profitability --format json` prints
    totals = data["totals"]
    assert parse_amount(totals["revenue"]) > 0 and parse_amount(totals["contribution"]) != 0

    summary = post.summary
    for metric, field in (
        ("revenue", "revenue"),
        ("labour_cost", "labour_cost"),
        ("direct_cost", "direct_cost"),
        ("contribution", "contribution"),
    ):
        assert summary.metric(metric).value == parse_amount(totals[field]), metric
    assert str(summary.metric("margin").value) == totals["margin_pct"]
    assert str(summary.metric("hours").value) == totals["hours"]
    assert str(summary.metric("effective_rate").value) == totals["effective_rate"]
    ranked = {c.name: c.contribution_minor for c in summary.top + summary.bottom}
    for line in data["customers"]:
        if line["customer"] in ranked:
            assert ranked[line["customer"]] == parse_amount(line["contribution"])

    runs, rows = await counts(engine)
    assert runs[0].snapshot == data  # the run keeps exactly what the JSON report says
    text = _text(rows[0].payload)
    for field in ("revenue", "contribution", "labour_cost"):
        assert format_amount(parse_amount(totals[field]), "EUR") in text
    assert f"{Decimal(totals['margin_pct']).quantize(Decimal('0.1'))} %" in text


async def test_the_post_matches_the_docket_report_command(
    services: Services, engine: AsyncEngine, seeded: dict[str, int], database_url: str
) -> None:
    await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOCKET_")) and k != "DATABASE_URL"
    }
    env["DATABASE_URL"] = database_url
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "docket"),
            "report",
            "profitability",
            "--period",
            "2025-W23",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    runs, rows = await counts(engine)
    snapshot = runs[0].snapshot
    for field in ("period", "currency", "totals", "customers", "contracts", "quality"):
        assert printed[field] == snapshot[field], field
    text = _text(rows[0].payload)
    for field in ("revenue", "labour_cost", "direct_cost", "contribution"):
        assert format_amount(parse_amount(printed["totals"][field]), "EUR") in text, field


async def test_the_summary_has_trend_quality_and_break_even(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    # Twenty more hours on Globex's fixed fee (1,000.00 a month at 50.00/h: 20 h break even).
    await add_time(
        engine, services.workspace_id, customer="Globex", day=date(2025, 6, 3), minutes=20 * 60
    )
    async with make_sessionmaker(engine)() as session:
        ws = await session.get(Workspace, services.workspace_id)
        assert ws is not None
        post = await load_post(session=session, workspace=ws, kind="weekly", period=W23)
    summary = post.summary
    hours = summary.metric("hours")
    # Alice logs 30 more minutes each week; W23 also has 45 min without a contract.
    assert hours.trend == (Decimal("12.00"), Decimal("12.50"), Decimal("13.00"), Decimal("34.25"))
    assert hours.previous == Decimal("13.00")
    assert [c.name for c in summary.top] == ["Acme", "Globex"]
    assert any("1 ticket with time but without a contract (0.75 h)" in q for q in summary.quality)
    assert any(q.startswith("0.75 h unattributed") for q in summary.quality)
    [over] = summary.past_break_even
    assert (over.customer_name, over.contract_name) == ("Globex", "Managed care")
    assert (over.hours, over.break_even_hours) == (Decimal("25.00"), Decimal("20.00"))
    assert len(summary.chart.points) == 8 and summary.chart.points[-1].label == "W23"
    assert summary.has_data


async def test_without_a_managers_channel_the_period_is_skipped_with_the_reason(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        ws = await session.get(Workspace, services.workspace_id)
        assert ws is not None
        ws.managers_channel = None
        session.add(ws)
    outcome = await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    assert outcome.status == "skipped" and "managers' channel" in outcome.reason
    runs, rows = await counts(engine)
    assert [r.status for r in runs] == ["skipped"] and rows == []


async def test_a_process_killed_after_claiming_is_finished_once_on_restart(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    # The first process claimed W23 and died before building anything.
    async with services.transaction() as session:
        run_id = await claim_run(
            session=session,
            workspace_id=services.workspace_id,
            kind="weekly",
            period_key="2025-W23",
            at=DUE,
        )
    assert run_id is not None
    # A fire before the claim is stale leaves it alone (its owner may still be working) ...
    soon = await run_due(
        services,
        workspace_id=services.workspace_id,
        kinds=("weekly",),
        now=DUE + timedelta(minutes=1),
    )
    assert [o.status for o in soon] == []
    assert [len(x) for x in await counts(engine)] == [1, 0]
    # ... the catch-up at start finishes it, once.
    later = DUE + timedelta(minutes=3)
    first = await run_due(
        services,
        workspace_id=services.workspace_id,
        kinds=("weekly",),
        now=later,
        resume_older_than=None,
    )
    second = await run_due(
        services,
        workspace_id=services.workspace_id,
        kinds=("weekly",),
        now=later,
        resume_older_than=None,
    )
    assert [o.status for o in first] == ["queued"] and second == []
    runs, rows = await counts(engine)
    assert [r.status for r in runs] == ["queued"]
    assert [r.idempotency_key for r in rows] == [
        f"report:{services.workspace_id}:weekly:2025-W23",
        f"report:{services.workspace_id}:weekly:2025-W23:chart",
    ]


async def test_a_crash_while_building_leaves_the_claim_for_the_next_start(
    services: Services, engine: AsyncEngine, seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(**_: Any) -> Any:
        raise RuntimeError("killed while building")

    monkeypatch.setattr(weekly, "load_post", boom)
    with pytest.raises(RuntimeError):
        await run_report(
            services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
        )
    runs, rows = await counts(engine)
    assert [r.status for r in runs] == ["claimed"] and rows == []
    monkeypatch.undo()
    outcomes = await run_due(
        services,
        workspace_id=services.workspace_id,
        kinds=("weekly",),
        now=DUE,
        resume_older_than=None,
    )
    assert [(o.period_key, o.status) for o in outcomes] == [("2025-W23", "queued")]
    assert [len(x) for x in await counts(engine)] == [1, 2]


async def test_a_second_completion_of_the_same_claim_queues_nothing(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    # Two processes resuming one abandoned claim: only one moves it to "queued".
    async with services.transaction() as session:
        run_id = await claim_run(
            session=session,
            workspace_id=services.workspace_id,
            kind="weekly",
            period_key="2025-W23",
            at=DUE,
        )
    assert run_id is not None
    results = [
        await weekly._complete(
            services,
            run_id=run_id,
            workspace_id=services.workspace_id,
            kind="weekly",
            period=W23,
            now=DUE,
        )
        for _ in range(2)
    ]
    assert [r.status for r in results] == ["queued", "taken"]
    assert [len(x) for x in await counts(engine)] == [1, 2]


async def test_restatements_of_reported_weeks_are_listed_once(
    services: Services, engine: AsyncEngine, seeded: dict[str, int]
) -> None:
    w22 = parse_period("2025-W22", today=W23_MONDAY)
    await run_report(
        services,
        workspace_id=services.workspace_id,
        kind="weekly",
        period=w22,
        now=DUE - timedelta(days=7),
    )
    # Late time on W22 after it was reported: Alice forgot two hours on Acme.
    async with services.transaction() as session:
        entry = (
            await session.execute(
                sa.select(TimeEntry).where(TimeEntry.work_date == date(2025, 5, 26)).limit(1)
            )
        ).scalar_one()
        late = TimeEntry(
            workspace_id=services.workspace_id,
            member_id=entry.member_id,
            customer_id=entry.customer_id,
            contract_id=entry.contract_id,
            work_date=date(2025, 5, 27),
            minutes=120,
        )
        session.add(late)
        await session.flush()
        await mark_entry_changes(
            session=session,
            workspace_id=services.workspace_id,
            changes=[EntryKey.of(late)],
            at=DUE,
        )
    async with services.transaction() as session:
        await refresh_some(session=session, workspace_id=services.workspace_id, at=DUE)

    await run_report(
        services, workspace_id=services.workspace_id, kind="weekly", period=W23, now=DUE
    )
    runs, rows = await counts(engine)
    w23_post = next(r for r in rows if r.idempotency_key.endswith(":weekly:2025-W23"))
    text = _text(w23_post.payload)
    # Two hours on Acme at 90.00 billed and 50.00 cost: contribution up 80.00.
    assert "Restated earlier periods" in text and "2025-W22 Acme" in text
    assert "(+80.00 EUR)" in text
    async with make_sessionmaker(engine)() as session:
        restated = (await session.execute(sa.select(Restatement))).scalars().all()
    assert [r.reported_in_run_id for r in restated] == [runs[-1].id]

    # The next week's post does not list it again.
    w24 = parse_period("2025-W24", today=W23_MONDAY)
    await run_report(
        services,
        workspace_id=services.workspace_id,
        kind="weekly",
        period=w24,
        now=DUE + timedelta(days=7),
    )
    _, rows = await counts(engine)
    w24_post = next(r for r in rows if r.idempotency_key.endswith(":weekly:2025-W24"))
    assert "Restated" not in _text(w24_post.payload)


# --- end to end: `docket serve` restarted after dying between claim and post ----------------


async def _delivered(engine: AsyncEngine, count: int, timeout: float = 10) -> None:
    """Wait until `count` outbox rows are marked delivered (the worker records after Slack)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _runs, rows = await counts(engine)
        if sum(r.status == "delivered" for r in rows) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, [r.status for r in rows]
        await asyncio.sleep(0.05)


@pytest.mark.e2e
async def test_after_a_restart_the_abandoned_post_is_delivered_to_slack_exactly_once(
    database_url: str, engine: AsyncEngine, workspace: Workspace, emulator: Any
) -> None:
    assert workspace.id is not None
    await seed(engine, workspace.id)
    async with make_sessionmaker(engine)() as session, session.begin():
        # The process that claimed W23 died before it built or queued anything.
        await claim_run(
            session=session,
            workspace_id=workspace.id,
            kind="weekly",
            period_key="2025-W23",
            at=DUE,
        )
    settings = make_settings(
        slack_api_url=emulator.api_url,
        database_url=database_url,
        docket_timezone="Europe/Berlin",
        docket_scheduler=True,
    )

    def report_posts() -> list[Any]:
        return [
            c
            for c in emulator.calls_to("chat.postMessage")
            if c.args.get("channel") == "CMANAGERS" and "2025-W23" in str(c.args.get("text"))
        ]

    # Monday 9 June 2025, a few minutes after the post was due: `docket serve` starts again.
    with freeze_time(DUE + timedelta(minutes=5), tick=True, real_asyncio=True):
        async with running_docket(settings, emulator, SIGNING_SECRET):
            await emulator.wait_for(
                lambda c: c.method == "chat.postMessage" and c.args["channel"] == "CMANAGERS",
                timeout=15,
            )
            await emulator.wait_for(
                lambda c: c.method == "files.completeUploadExternal", timeout=15
            )
            await _delivered(engine, 2)
        # And once more, as if it restarted again: nothing is posted twice.
        async with running_docket(settings, emulator, SIGNING_SECRET):
            await asyncio.sleep(1.0)
    assert len(report_posts()) == 1
    [upload] = emulator.files("CMANAGERS")
    assert upload.data is not None and png_size(upload.data) == (1200, 675)
    post = report_posts()[0]
    assert validate_blocks(post.args["blocks"]) == []
    runs, rows = await counts(engine)
    assert [(r.period_key, r.status) for r in runs] == [("2025-W23", "queued")]
    assert [r.status for r in rows] == ["delivered", "delivered"]
