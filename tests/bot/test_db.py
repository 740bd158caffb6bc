"""Database behaviour the rest of Docket relies on."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from bot.db import normalise_url
from bot.services import Services
from models.people import ensure_member


def test_urls_pick_the_async_drivers() -> None:
    assert normalise_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


async def test_reads_do_not_wait_for_a_writer(services: Services, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    release = asyncio.Event()
    holding = asyncio.Event()

    async def writer() -> None:
        async with services.transaction() as session:
            await session.execute(sa.text("UPDATE workspace SET name = 'locked'"))
            holding.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    started = time.monotonic()
    async with services.read() as session:
        count = (await session.execute(sa.text("SELECT count(*) FROM workspace"))).scalar_one()
    elapsed = time.monotonic() - started
    release.set()
    await task
    assert count == 1
    assert elapsed < 1.0


async def test_a_new_user_seen_twice_at_once_becomes_one_member(services: Services) -> None:
    async def first_sight() -> int | None:
        async with services.transaction() as session:
            member = await ensure_member(
                session=session,
                workspace_id=services.workspace_id,
                slack_user_id="UNEW",
                name="New",
                email="new@example.com",
                at=services.now(),
            )
            return member.id

    ids = await asyncio.gather(*(first_sight() for _ in range(4)))
    assert len(set(ids)) == 1
