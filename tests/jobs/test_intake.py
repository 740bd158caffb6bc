"""The intake worker: bounded runs, retries with back-off, and one message on final failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.services import Services
from jobs.intake import Batch, IntakeWorker, StoredRequest
from models.intake import IntakeRequest, store_request
from models.tables import SlackIntake

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _store(services: Services, n: int, response_url: str) -> int:
    async with services.transaction() as session:
        row_id = await store_request(
            session=session,
            workspace_id=services.workspace_id,
            request=IntakeRequest(
                team_id=services.team_id,
                kind="slash_command",
                name="/ticket",
                user_id="U1",
                response_url=response_url,
                trigger_id=f"t{n}",
                content_type="application/x-www-form-urlencoded",
                body=f"command=%2Fticket&text=n{n}",
            ),
            key=f"k{n}",
            at=AT,
        )
    assert row_id is not None
    return row_id


async def test_a_request_that_keeps_failing_is_reported_once(
    services: Services, emulator: Any
) -> None:
    now = [AT]
    services.clock = lambda: now[0]
    row_id = await _store(services, 1, emulator.response_url("fails"))
    runs: list[int] = []

    async def broken(request: StoredRequest) -> str | None:
        runs.append(request.intake_id)
        raise RuntimeError("the database went away")

    worker = IntakeWorker(services, broken, owner="w1")
    for _ in range(8):
        await worker.step()
        await worker.drain()
        now[0] += timedelta(minutes=5)
    assert runs == [row_id] * 5
    told = [c for c in emulator.calls_to("response_url") if c.path.endswith("/fails")]
    assert len(told) == 1
    assert "could not finish your `/ticket` command" in told[0].args["text"]
    assert told[0].args.get("replace_original") is True
    async with services.read() as session:
        row = await session.get(SlackIntake, row_id)
        assert row is not None and row.status == "failed" and "went away" in (row.last_error or "")


async def test_no_more_than_capacity_run_at_once(services: Services) -> None:
    services.clock = lambda: AT
    for n in range(10):
        await _store(services, n, "http://127.0.0.1:9/r")
    running = 0
    peak = 0
    release = asyncio.Event()

    async def slow(request: StoredRequest) -> str | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return ""

    worker = IntakeWorker(services, slow, owner="w1", capacity=3)
    await worker.step()
    await worker.step()
    await asyncio.sleep(0.05)
    assert len(worker.in_flight) == 3 and peak == 3
    release.set()
    while True:
        await worker.drain()
        if await worker.step() is None and not worker.in_flight:
            break
    assert peak == 3
    async with services.read() as session:
        from sqlmodel import select

        statuses = (await session.exec(select(SlackIntake.status))).all()
    assert statuses == ["done"] * 10


async def _run_until_idle(worker: IntakeWorker) -> None:
    while True:
        await worker.drain()
        if await worker.step() is None and not worker.in_flight:
            return


async def test_a_body_the_batch_refuses_runs_alone_and_the_rest_stay_together(
    services: Services,
) -> None:
    services.clock = lambda: AT
    ids = [await _store(services, n, "http://127.0.0.1:9/r") for n in range(6)]
    batches: list[list[str]] = []
    alone: list[int] = []

    async def together(bodies: list[str]) -> None:
        batches.append(bodies)
        async with services.transaction():  # marks the batch's rows done at its commit
            pass

    async def one(request: StoredRequest) -> str | None:
        alone.append(request.intake_id)
        return ""

    batch = Batch(
        kind="slash_command", name="/ticket", run=together, accepts=lambda b: "n3" not in b
    )
    worker = IntakeWorker(services, one, owner="w1", batch=batch)
    await _run_until_idle(worker)
    assert [len(b) for b in batches] == [5] and not any("n3" in b for b in batches[0])
    assert alone == [ids[3]]
    async with services.read() as session:
        from sqlmodel import select

        statuses = (await session.exec(select(SlackIntake.status))).all()
    assert statuses == ["done"] * 6


async def test_a_batch_that_fails_runs_each_request_on_its_own_once(services: Services) -> None:
    services.clock = lambda: AT
    ids = [await _store(services, n, "http://127.0.0.1:9/r") for n in range(4)]
    alone: list[int] = []

    async def broken(bodies: list[str]) -> None:
        raise RuntimeError("the batch's transaction failed")

    async def one(request: StoredRequest) -> str | None:
        alone.append(request.intake_id)
        return ""

    batch = Batch(kind="slash_command", name="/ticket", run=broken)
    worker = IntakeWorker(services, one, owner="w1", batch=batch)
    await _run_until_idle(worker)
    assert sorted(alone) == ids
