"""Migrations create the schema on every backend, and they match the models."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from bot.migrate import current_revision, upgrade


async def test_schema_is_at_head_and_matches_the_models(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is not None

    def diff(sync_conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return list(compare_metadata(ctx, SQLModel.metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], "models changed without a migration: run `make migration`"


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    before = await current_revision(engine)
    await upgrade(engine)
    assert await current_revision(engine) == before


async def test_every_table_exists(engine: AsyncEngine) -> None:
    def names(sync_conn: Any) -> set[str]:
        return set(sa.inspect(sync_conn).get_table_names())

    async with engine.connect() as conn:
        tables = await conn.run_sync(names)
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables
