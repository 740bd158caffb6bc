"""Two `docket serve` processes on one database at the scheduled time: one post per period.

The claim (a unique ReportRun row) decides; each replica has its own engine, as separate
processes do. PostgreSQL is the scale-out engine, so the real test is there; SQLite (one file,
two engines) must hold too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import make_engine, make_sessionmaker
from bot.runtime import make_slack_client
from bot.services import Services
from jobs.scheduler import ReportScheduler
from models.tables import Workspace
from tests.conftest import POSTGRES_URL, TEAM_ID, make_settings, truncate_postgres
from tests.jobs.report_data import counts, seed

ROOT = Path(__file__).resolve().parents[2]
# Monday 9 June 2025 08:00 in Berlin: W23's post is due (and May's monthly post is long done).
DUE = datetime(2025, 6, 9, 6, 0, tzinfo=UTC)
NO_POSTGRES = "DOCKET_TEST_POSTGRES_URL is not set: the PostgreSQL replica test needs a server"


def replica(url: str, workspace_id: int) -> Services:
    """A second process's view: its own engine and sessions on the same database."""
    settings = make_settings(database_url=url, slack_api_url="http://127.0.0.1:9/api/")
    engine = make_engine(url)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        slack=make_slack_client(settings),
        workspace_id=workspace_id,
        team_id=TEAM_ID,
        bot_user_id="UBOT",
        timezone=ZoneInfo("Europe/Berlin"),
        clock=lambda: DUE,
    )


async def _setup(engine: AsyncEngine) -> int:
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = Workspace(
            team_id=TEAM_ID,
            timezone="Europe/Berlin",
            managers_channel="CMANAGERS",
            monthly_post=False,
        )
        session.add(ws)
        await session.flush()
        assert ws.id is not None
        workspace_id = ws.id
    # Reporting since 13 May: W20..W23 are all due, so each replica has four periods to race.
    await seed(engine, workspace_id, weeks=6, since=datetime(2025, 5, 13, tzinfo=UTC))
    return workspace_id


async def _race(url: str, engine: AsyncEngine) -> None:
    workspace_id = await _setup(engine)
    replicas = [replica(url, workspace_id) for _ in range(2)]
    schedulers = [ReportScheduler(r) for r in replicas]
    try:
        # Both fire at the scheduled time, as two `docket serve` processes would.
        await asyncio.gather(*(s.fire(workspace_id, "weekly") for s in schedulers))
        await asyncio.gather(*(s.catch_up() for s in schedulers))  # and both restart
    finally:
        for r in replicas:
            await r.engine.dispose()
    runs, rows = await counts(engine)
    keys = [r.period_key for r in runs]
    assert sorted(keys) == ["2025-W20", "2025-W21", "2025-W22", "2025-W23"]
    assert all(r.status == "queued" for r in runs)
    posts = [r.idempotency_key for r in rows if r.kind == "slack"]
    charts = [r.idempotency_key for r in rows if r.kind == "upload"]
    assert sorted(posts) == [f"report:{workspace_id}:weekly:{k}" for k in sorted(keys)]
    assert sorted(charts) == [p + ":chart" for p in sorted(posts)]


@pytest.fixture
async def pg_engine(postgres_ready: bool) -> AsyncIterator[AsyncEngine]:
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    eng = make_engine(POSTGRES_URL)
    await truncate_postgres(eng)
    yield eng
    await eng.dispose()


async def test_two_replicas_on_postgresql_post_each_period_once(pg_engine: AsyncEngine) -> None:
    assert POSTGRES_URL
    await _race(POSTGRES_URL, pg_engine)


async def test_two_replicas_on_one_sqlite_file_post_each_period_once(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        await _race(sqlite_url, engine)
    finally:
        await engine.dispose()


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo
    from bot.db import make_engine, make_sessionmaker
    from bot.config import Settings
    from bot.runtime import make_slack_client
    from bot.services import Services
    from jobs.weekly import run_due

    url, workspace_id = sys.argv[1], int(sys.argv[2])

    async def main():
        settings = Settings(_env_file=None, database_url=url, docket_scheduler=False,
                            slack_api_url="http://127.0.0.1:9/api/")
        engine = make_engine(url)
        services = Services(settings=settings, engine=engine, sessions=make_sessionmaker(engine),
                            slack=make_slack_client(settings), workspace_id=workspace_id,
                            team_id="T0001", bot_user_id="UBOT", timezone=ZoneInfo("UTC"))
        print("ready", flush=True)
        sys.stdin.readline()  # both start when the test says "go"
        now = datetime(2025, 6, 9, 6, 0, tzinfo=UTC)
        outcomes = await run_due(services, workspace_id=workspace_id, kinds=("weekly",), now=now)
        print(",".join(f"{o.period_key}:{o.status}" for o in outcomes))
        await engine.dispose()

    asyncio.run(main())
    """
)


async def test_two_processes_on_postgresql_post_each_period_once(pg_engine: AsyncEngine) -> None:
    assert POSTGRES_URL
    workspace_id = await _setup(pg_engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DOCKET_"))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, POSTGRES_URL, str(workspace_id)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:  # both have imported Docket and connected nothing yet
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
    outputs = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    queued = [item for out in outputs for item in out.split(",") if item.endswith(":queued")]
    assert sorted(queued) == [f"2025-W{n}:queued" for n in (20, 21, 22, 23)]
    runs, rows = await counts(pg_engine)
    assert len(runs) == 4 and len([r for r in rows if r.kind == "slack"]) == 4
    assert len({r.idempotency_key for r in rows}) == len(rows) == 8
