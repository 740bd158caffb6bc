"""Database engines and sessions for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from models.sql import READONLY_OPTION

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a request may wait for a pooled connection under a burst: queueing is better
# than failing work that was already acknowledged to the user.
POOL_TIMEOUT_SECONDS = 300
# How long the ingress's PostgreSQL statement (a batch of requests before their ack) may wait
# for a lock before it fails and the requests are answered "busy": Slack gives up at 3 s.
INGRESS_LOCK_WAIT_SECONDS = 1.0


def normalise_url(url: str) -> str:
    """Accept the usual spellings and pick the async drivers Docket ships with."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class DatabaseUnavailable(Exception):
    """The database could not be reached at start; the message names it (never a password)."""


CONNECT_TIMEOUT_SECONDS = 30.0


def _missing_sqlite_folder(engine: AsyncEngine) -> str | None:
    """The folder of a SQLite database file when it does not exist (SQLite creates the file,
    never its folder); None otherwise."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (e.g. read-only): left to SQLite
        return None
    folder = Path(database).expanduser().parent
    return None if folder.is_dir() else str(folder)


async def check_reachable(engine: AsyncEngine, *, within: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Open one connection, or raise DatabaseUnavailable saying which database and why."""
    where = engine.url.render_as_string(hide_password=True)
    folder = _missing_sqlite_folder(engine)
    if folder is not None:
        # Said before the driver tries: its thread would otherwise outlive the failed open.
        raise DatabaseUnavailable(
            f"Docket cannot reach the database {where}: the folder {folder} does not exist"
        )
    try:
        async with asyncio.timeout(within):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    except TimeoutError:
        raise DatabaseUnavailable(
            f"Docket cannot reach the database {where}: no answer within {within:g} s"
        ) from None
    except Exception as exc:
        cause = getattr(exc, "orig", None) or exc
        why = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
        raise DatabaseUnavailable(
            f"Docket cannot reach the database {where}: {type(cause).__name__}: {why}"
        ) from None


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the engine. On SQLite every transaction starts with BEGIN IMMEDIATE.

    Taking the write lock up front (with WAL and a busy timeout) means concurrent writers
    queue instead of failing half-way with "database is locked".
    """
    url = normalise_url(url)
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
    # Database errors would otherwise carry the statement's values (customer text) into logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _sqlite_rules(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def _sqlite_rules(sync_engine: sa.Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for every writing transaction."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transaction start instead of the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions (Services.read) take no write lock, so WAL readers never
        # queue behind writers.
        readonly = conn.get_execution_options().get(READONLY_OPTION)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def direct_sqlite_engine(engine: AsyncEngine) -> sa.Engine:
    """A blocking engine on the same SQLite database, with the same rules, for the ingress:
    it writes a batch of requests on the event loop itself (about a millisecond for 200; a
    thread would hand the interpreter lock back and forth once per row). It never waits for
    a lock there: BEGIN IMMEDIATE fails at once when another process holds the write lock
    (the caller retries after a pause), and it leaves WAL checkpoints to the other
    connections."""
    direct = sa.create_engine(
        engine.url.set(drivername="sqlite"),
        connect_args={"timeout": 0, "check_same_thread": False},
        poolclass=sa.pool.StaticPool,
        hide_parameters=engine.sync_engine.hide_parameters,
    )
    _sqlite_rules(direct, busy_timeout_ms=0)

    @event.listens_for(direct, "connect")
    def _no_checkpoints(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    return direct


def ingress_postgres_engine(engine: AsyncEngine) -> AsyncEngine:
    """An engine for the ingress's own PostgreSQL connection, held open in autocommit: a
    batch of requests is one statement and one round trip (no check-out, ping, BEGIN or
    COMMIT). A statement waits at most INGRESS_LOCK_WAIT_SECONDS for a lock, then fails
    (nothing written)."""
    wait_ms = str(int(INGRESS_LOCK_WAIT_SECONDS * 1000))
    return create_async_engine(
        engine.url,
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",
        hide_parameters=engine.sync_engine.hide_parameters,
        connect_args={"server_settings": {"lock_timeout": wait_ms}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def readonly_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for sessions that only read (no write lock on SQLite)."""
    return engine.execution_options(**{READONLY_OPTION: True})
