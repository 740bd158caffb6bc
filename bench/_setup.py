"""Building a migrated database and a Services object for in-process benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.db import make_engine, make_sessionmaker
from bot.migrate import upgrade
from bot.runtime import make_slack_client
from bot.services import Services
from models.tables import Workspace

TOKEN = "xoxb-bench-token"
TEAM = "T0001"
SECRET = "bench-signing-secret"


def bench_settings(**overrides: Any) -> Settings:
    """Settings that never read a .env file or the environment's Slack variables."""
    values: dict[str, Any] = {
        "slack_bot_token": TOKEN,
        "slack_signing_secret": SECRET,
        "docket_smtp_port": 0,
        "port": 0,
        "host": "127.0.0.1",
        "docket_scheduler": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def sqlite_services(path: Path, *, api_url: str) -> Services:
    """A migrated SQLite file with one workspace, and Services talking to `api_url`."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(
            team_id=TEAM,
            name="Bench IT",
            timezone="UTC",
            currency="EUR",
            triage_channel="CTRIAGE",
            managers_channel="CMANAGERS",
            bot_user_id="UBOT",
        )
        session.add(ws)
        await session.flush()
        ws_id = ws.id
    assert ws_id is not None
    settings = bench_settings(slack_api_url=api_url, database_url=url)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        slack=make_slack_client(settings),
        workspace_id=ws_id,
        team_id=TEAM,
        bot_user_id="UBOT",
        timezone=ZoneInfo("UTC"),
    )
