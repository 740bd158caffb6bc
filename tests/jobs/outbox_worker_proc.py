"""A child process that runs one outbox worker until it is killed (tests/jobs/test_outbox_kill.py).

python -m tests.jobs.outbox_worker_proc DATABASE_URL SLACK_API_URL WORKSPACE_ID LEASE OWNER
"""

from __future__ import annotations

import asyncio
import sys
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.db import make_engine, make_sessionmaker
from bot.services import Services
from jobs.outbox import OutboxWorker, WorkerConfig
from jobs.ratelimit import RateLimiter

TOKEN = "xoxb-test-token"


async def main(url: str, api_url: str, workspace_id: int, lease: float, owner: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token=SecretStr(TOKEN),
        slack_api_url=api_url,
        database_url=url,
    )
    engine = make_engine(url)
    services = Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        slack=AsyncWebClient(token=TOKEN, base_url=api_url),
        workspace_id=workspace_id,
        team_id="T0001",
        bot_user_id="UBOT",
        timezone=ZoneInfo("UTC"),
    )
    worker = OutboxWorker(
        services,
        owner=owner,
        limiter=RateLimiter.unlimited(),
        config=WorkerConfig(lease_seconds=lease, idle_poll=0.1),
    )
    print("worker running", flush=True)
    await worker.run(asyncio.Event())  # until SIGKILL


if __name__ == "__main__":
    url, api_url, workspace_id, lease, owner = sys.argv[1:6]
    asyncio.run(main(url, api_url, int(workspace_id), float(lease), owner))
