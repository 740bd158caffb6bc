"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any], *, conflict: list[str]
) -> int | None:
    """Insert a row unless one with the same `conflict` key exists; return the new id or None.

    Used wherever a retried delivery must not create a second row (events, outbox keys).
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    ins: Any
    if dialect(session) == "postgresql":
        ins = postgresql.insert(table)
    else:
        ins = sqlite.insert(table)
    stmt = ins.values(**values).on_conflict_do_nothing(index_elements=conflict)
    stmt = stmt.returning(table.c.id)
    result = await session.execute(stmt)
    row = result.first()
    return None if row is None else int(row[0])
