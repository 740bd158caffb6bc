"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


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
