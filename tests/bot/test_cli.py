"""`docket` as a newcomer runs it: no Slack yet, migrate, serve against the emulator."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import DOCKET, serve_env, start_serve
from tests.slack_signing import SlackRequests

pytestmark = pytest.mark.e2e


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOCKET_", "DATABASE_")) and "PROXY" not in k.upper()
    }
    env.update(extra)
    return env


def test_serve_without_slack_explains_the_app_setup_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(DOCKET), "serve"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "manifest.yml" in proc.stderr and "SLACK_BOT_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_settings_stop_start_up_with_one_message(tmp_path: Path) -> None:
    env = _clean_env(
        SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", DOCKET_TIMEZONE="Nowhere/Land"
    )
    proc = subprocess.run(
        [str(DOCKET), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "DOCKET_TIMEZONE" in proc.stderr and "Traceback" not in proc.stderr


def test_migrate_creates_the_schema(database_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(DOCKET), "migrate"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    from alembic.script import ScriptDirectory

    from bot.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"revision {head}" in proc.stdout


async def test_serve_answers_health_and_acks_a_signed_command(
    sqlite_url: str, emulator: Any, tmp_path: Path
) -> None:
    env = serve_env(
        database_url=sqlite_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
    )
    child = await start_serve(env, tmp_path / "serve.log")
    try:
        req = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id).slash_command(
            command="/docket", text="help"
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(
                child.url + "/slack/events", data=req.body, headers=req.headers
            ) as resp:
                assert resp.status == 200
                assert "/ticket" in await resp.text()
    finally:
        assert child.terminate() == 0, "SIGTERM stops docket serve cleanly"
