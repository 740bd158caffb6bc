"""Shared fixtures: clean environment, real databases (SQLite file, PostgreSQL), services.

Persistence tests take the `engine` fixture and run once per backend: SQLite always, and
PostgreSQL too when DOCKET_TEST_POSTGRES_URL is set (CI sets it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from bot.config import Settings
from bot.db import make_engine, make_sessionmaker
from bot.migrate import upgrade
from bot.runtime import make_slack_client
from bot.services import Services
from models.tables import Workspace

_SERVER_URL = os.environ.get("DOCKET_TEST_POSTGRES_URL")
# Under pytest-xdist each worker gets a database of its own on the same server (test_gw0, ...),
# so workers never truncate each other's tables.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
POSTGRES_URL = (
    _SERVER_URL.rsplit("/", 1)[0] + "/" + _SERVER_URL.rsplit("/", 1)[1] + "_" + _WORKER
    if _SERVER_URL and _WORKER
    else _SERVER_URL
)
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
TEAM_ID = "T0001"

# Environment that would make tests reach the network or change Bolt's mode.
_SCRUB = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


def pytest_configure(config: pytest.Config) -> None:
    for name in list(os.environ):
        if name in _SCRUB or (
            name.startswith(("SLACK_", "DOCKET_")) and name != "DOCKET_TEST_POSTGRES_URL"
        ):
            os.environ.pop(name, None)
    os.environ.pop("DATABASE_URL", None)


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: never read the developer's .env file."""
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "docket_smtp_port": 0,
        "port": 0,
        "host": "127.0.0.1",
        "docket_scheduler": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> bool:
    """Reset the PostgreSQL test database to the migrated schema once per session."""
    if not POSTGRES_URL:
        return False

    async def build() -> None:
        if POSTGRES_URL != _SERVER_URL:
            await _create_worker_database()
        engine = make_engine(POSTGRES_URL)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(sa.text("CREATE SCHEMA public"))
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return True


async def _create_worker_database() -> None:
    """Create this worker's database on the test server if it is not there yet."""
    assert _SERVER_URL and POSTGRES_URL
    name = POSTGRES_URL.rsplit("/", 1)[1]
    server = make_engine(_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            exists = await conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await server.dispose()


def _table_names() -> list[str]:
    return [t.name for t in SQLModel.metadata.sorted_tables]


async def truncate_postgres(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        names = ", ".join(f'"{n}"' for n in _table_names())
        await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, tmp_path: Path, sqlite_template: Path, postgres_ready: bool
) -> Iterator[str]:
    """A fresh, migrated database for one test on the chosen backend."""
    if backend == "sqlite":
        path = tmp_path / "docket.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    assert POSTGRES_URL and postgres_ready

    async def clean() -> None:
        engine = make_engine(POSTGRES_URL)
        await truncate_postgres(engine)
        await engine.dispose()

    asyncio.run(clean())
    yield POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "docket.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def workspace(engine: AsyncEngine) -> Workspace:
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(
            team_id=TEAM_ID,
            name="Acme IT",
            timezone="Europe/Berlin",
            currency="EUR",
            triage_channel="CTRIAGE",
            managers_channel="CMANAGERS",
            bot_user_id="UBOT",
        )
        session.add(ws)
        await session.flush()
    return ws


@pytest.fixture
async def services(engine: AsyncEngine, workspace: Workspace) -> AsyncIterator[Services]:
    """Services over the test database, with a Slack client that goes nowhere by default."""
    settings = make_settings(slack_api_url="http://127.0.0.1:9/api/")
    assert workspace.id is not None
    svc = Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        slack=make_slack_client(settings),
        workspace_id=workspace.id,
        team_id=TEAM_ID,
        bot_user_id="UBOT",
        timezone=ZoneInfo(workspace.timezone),
    )
    yield svc


@pytest.fixture
async def emulator() -> AsyncIterator[Any]:
    """The Slack Web API emulator on a loopback port."""
    from tests.slack_emulator import SlackEmulator

    emu = SlackEmulator(token=BOT_TOKEN, team_id=TEAM_ID)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def docket(database_url: str, emulator: Any) -> AsyncIterator[Any]:
    """A running Docket (HTTP, workers) on the test database, talking to the emulator."""
    from tests.harness import running_docket

    settings = make_settings(
        slack_api_url=emulator.api_url,
        database_url=database_url,
        docket_triage_channel="CTRIAGE",
        docket_managers_channel="CMANAGERS",
        docket_admins=["UADMIN"],
        docket_timezone="Europe/Berlin",
    )
    async with running_docket(settings, emulator, SIGNING_SECRET) as harness:
        yield harness
