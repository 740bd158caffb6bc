"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AlertDelivery, SlackEvent

Leased = TypeVar("Leased", AlertDelivery, SlackEvent)

READONLY_OPTION = "docket_readonly"
"""Execution option of a connection that only reads: on SQLite its transactions begin with
a plain BEGIN (no write lock) instead of BEGIN IMMEDIATE (see bot.db)."""


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _insert(session: AsyncSession, table: Table) -> Any:
    return _insert_for(dialect(session), table)


def _insert_for(dialect_name: str, table: Table) -> Any:
    return postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table)


def insert_ignore_statement(
    dialect_name: str, model: type[SQLModel], *, conflict: list[str], key: str
) -> Any:
    """INSERT … ON CONFLICT (`conflict`) DO NOTHING RETURNING id, `key`, for executemany."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return (
        _insert_for(dialect_name, table)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(table.c.id, table.c[key])
    )


def new_ids(returned: Sequence[Any], rows: Sequence[dict[str, Any]], key: str) -> list[int | None]:
    """Each row's new id from `(id, key)` pairs returned by an insert that skips conflicts;
    None for a row that existed, or that repeats a `key` value earlier in `rows`."""
    new = {value: int(row_id) for row_id, value in returned}
    return [new.pop(row[key], None) for row in rows]


async def insert_ignore_many(
    session: AsyncSession,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: list[str],
    key: str,
) -> list[int | None]:
    """Insert many rows unless their `conflict` key exists (one executemany; the statement is
    compiled once and cached, whatever the number of rows).

    Returns each row's new id, or None for a row that existed (or repeats a `key` value
    earlier in `rows`). Every row must have the same columns.
    """
    if not rows:
        return []
    stmt = insert_ignore_statement(dialect(session), model, conflict=conflict, key=key)
    result = await session.execute(stmt, list(rows))
    return new_ids(result.all(), rows, key)


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any], *, conflict: list[str]
) -> int | None:
    """Insert a row unless one with the same `conflict` key exists; return the new id or None.

    Used wherever a retried delivery must not create a second row (events, outbox keys).
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    stmt = _insert(session, table).values(**values).on_conflict_do_nothing(index_elements=conflict)
    stmt = stmt.returning(table.c.id)
    result = await session.execute(stmt)
    row = result.first()
    return None if row is None else int(row[0])


async def lease_pending(
    session: AsyncSession,
    model: type[Leased],
    scope: Any,
    *,
    now: datetime,
    limit: int,
    lease_seconds: int,
) -> list[Leased]:
    """Lease up to `limit` pending rows in `scope`, oldest first, counting an attempt on each.

    `processed_at` is a pending row's lease deadline: a row without one, or whose lease has
    passed, is free. On PostgreSQL rows another transaction is leasing are skipped. The
    caller flushes (after adding what else its lease records).
    """
    stmt = (
        select(model)
        .where(
            scope,
            model.status == "pending",
            sa.or_(col(model.processed_at).is_(None), col(model.processed_at) < now),
        )
        .order_by(col(model.id))
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.exec(stmt)).all())
    for row in rows:
        row.processed_at = now + timedelta(seconds=lease_seconds)
        row.attempts += 1
        session.add(row)
    return rows
