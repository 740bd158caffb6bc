"""Helpers for the outbox tests: a fast clock, a running worker, rows and tickets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from jobs.outbox import OutboxWorker, TimeSource, WorkerConfig
from jobs.ratelimit import RateLimiter
from models.outbox import SLACK, enqueue, slack_call
from models.tables import Customer, Member, OutboxMessage, OutboxStatus, Role, Ticket
from tests.conftest import BOT_TOKEN, make_settings

START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


class ScaledTime:
    """Simulated time running `speed` times faster than the wall clock.

    `now`, `monotonic` and `sleep` agree with each other, so ten simulated minutes of
    back-off pass in 600/speed real seconds while the emulator answers in real time.
    """

    def __init__(self, speed: float, start: datetime = START) -> None:
        self.speed = speed
        self.start = start
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def source(self) -> TimeSource:
        return TimeSource(now=self.now, monotonic=self.monotonic, sleep=self.sleep)


def point_at(services: Services, emulator: Any, **settings: Any) -> Services:
    """Make `services` talk to the emulator (and take extra settings)."""
    services.settings = make_settings(slack_api_url=emulator.api_url, **settings)
    services.slack = AsyncWebClient(token=BOT_TOKEN, base_url=emulator.api_url)
    return services


@asynccontextmanager
async def running_worker(
    services: Services,
    *,
    owner: str = "worker-1",
    clock: ScaledTime | None = None,
    limiter: RateLimiter | None = None,
    **config: Any,
) -> AsyncIterator[OutboxWorker]:
    """A worker running in the background until the block ends."""
    if clock is not None:
        services.clock = clock.now
    source = clock.source() if clock else None
    monotonic = source.monotonic if source else time.monotonic
    worker = OutboxWorker(
        services,
        owner=owner,
        clock=source,
        limiter=limiter or RateLimiter.unlimited(clock=monotonic),
        config=WorkerConfig(**config),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def wait_until(predicate: Any, timeout: float = 10.0, every: float = 0.02) -> None:
    """Poll an async predicate until it is true; TimeoutError with the timeout otherwise."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


async def rows(services: Services) -> list[OutboxMessage]:
    async with services.read() as session:
        result = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(result.all())


async def count_status(services: Services, status: OutboxStatus) -> int:
    async with services.read() as session:
        stmt = sa.select(sa.func.count()).where(col(OutboxMessage.status) == status)
        return int((await session.execute(stmt)).scalar_one())


async def all_settled(services: Services) -> bool:
    return await count_status(services, OutboxStatus.PENDING) == 0


async def post(
    services: Services,
    key: str,
    *,
    channel: str = "C1",
    text: str | None = None,
    ordering_key: str | None = None,
    at: datetime | None = None,
    **extra: Any,
) -> int | None:
    """Queue one chat.postMessage in its own transaction (waking the worker)."""
    payload = replace(slack_call("chat.postMessage", channel=channel, text=text or key), **extra)
    async with services.transaction() as session:
        return await enqueue(
            session=session,
            workspace_id=services.workspace_id,
            kind=SLACK,
            key=key,
            payload=payload,
            at=at or services.now(),
            ordering_key=ordering_key,
        )


async def make_member(
    session: AsyncSession,
    workspace_id: int,
    slack_user_id: str | None,
    *,
    name: str = "",
    role: Role = Role.AGENT,
    active: bool = True,
) -> Member:
    member = Member(
        workspace_id=workspace_id,
        slack_user_id=slack_user_id,
        name=name or (slack_user_id or "someone").lower(),
        role=role,
        active=active,
    )
    session.add(member)
    await session.flush()
    return member


async def make_ticket(
    session: AsyncSession,
    workspace_id: int,
    number: int,
    *,
    assignee: Member | None = None,
    customer: Customer | None = None,
    card: tuple[str, str] | None = None,
    title: str = "Printer jams",
) -> Ticket:
    ticket = Ticket(
        workspace_id=workspace_id,
        number=number,
        title=title,
        assignee_id=assignee.id if assignee else None,
        customer_id=customer.id if customer else None,
        card_channel=card[0] if card else None,
        card_ts=card[1] if card else None,
    )
    session.add(ticket)
    await session.flush()
    return ticket
