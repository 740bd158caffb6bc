"""Alembic environment: uses the connection handed over by bot.migrate, or DATABASE_URL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import models.tables  # noqa: F401  (registers every table on SQLModel.metadata)

target_metadata = SQLModel.metadata


def _configure_and_run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from bot.db import normalise_url

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from bot.config import load_settings

        url = load_settings().database_url

    async def _go() -> None:
        engine = create_async_engine(normalise_url(url))
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
        await engine.dispose()

    asyncio.run(_go())


if context.is_offline_mode():
    raise SystemExit("Docket runs migrations online only: use `docket migrate`.")
run_migrations_online()
