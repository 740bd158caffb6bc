"""Two workspaces on one database: each `docket serve` takes only its own workspace's work."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.db import make_engine, make_sessionmaker
from models.outbox import enqueue, slack_call
from models.tables import Member, OutboxMessage, SlackEvent, Workspace, utcnow
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import serve_env, start_serve
from tests.slack_signing import SlackRequests

pytestmark = pytest.mark.e2e

BRAVO_TOKEN = "xoxb-bravo-token"
BRAVO_TEAM = "T0002"


async def _post(url: str, req: Any) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/slack/events", data=req.body, headers=req.headers) as resp:
            return resp.status


def _home_opened(user: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"}


def _mentions(call: Any, *words: str) -> bool:
    text = json.dumps(call.args)
    return any(word in text for word in words)


async def test_two_workspaces_on_one_database_keep_their_work_apart(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    emulator.add_bot(BRAVO_TOKEN, team_id=BRAVO_TEAM, team_name="Bravo", bot_user_id="UBOTB")
    emulator.add_user("UALPHA1", real_name="Alma Alpha")
    bravo_user = emulator.add_user("UBRAVO1", real_name="Bruno Bravo")
    bravo_user["team_id"] = BRAVO_TEAM
    bravo_user["profile"]["team"] = BRAVO_TEAM
    common = {"database_url": database_url, "api_url": emulator.api_url}
    env_a = serve_env(
        **common, signing_secret=SIGNING_SECRET, token=BOT_TOKEN, DOCKET_SCHEDULER="true"
    )
    env_b = serve_env(
        **common,
        signing_secret=SIGNING_SECRET,
        token=BRAVO_TOKEN,
        DOCKET_TRIAGE_CHANNEL="CTRIAGEB",
        DOCKET_MANAGERS_CHANNEL="CMANAGERSB",
    )

    # Bravo's process stores an event and stops before processing it (an upgrade, a crash);
    # a card for Bravo waits in the outbox.
    bravo_ingress = await start_serve(
        {**env_b, "DOCKET_PROCESS_EVENTS": "false"}, tmp_path / "bravo1.log"
    )
    bravo_requests = SlackRequests(SIGNING_SECRET, team_id=BRAVO_TEAM)
    assert await _post(bravo_ingress.url, bravo_requests.event(_home_opened("UBRAVO1"))) == 200
    assert bravo_ingress.terminate() == 0
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as s, s.begin():
            bravo = (
                await s.exec(sa.select(Workspace).where(Workspace.team_id == BRAVO_TEAM))  # type: ignore[call-overload]
            ).scalar_one()
            bravo_id = bravo.id
            await enqueue(
                session=s,
                workspace_id=bravo_id,
                kind="slack",
                key="bravo-card",
                payload=slack_call("chat.postMessage", channel="CTRIAGEB", text="Bravo card"),
                at=utcnow(),
            )

        # Alpha's process (events, outbox, scheduler) runs with Bravo's work in the database.
        alpha = await start_serve(env_a, tmp_path / "alpha.log")
        try:
            alpha_requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
            assert await _post(alpha.url, alpha_requests.event(_home_opened("UALPHA1"))) == 200
            await emulator.wait_for(
                lambda c: c.method == "views.publish" and c.args["user_id"] == "UALPHA1",
                timeout=15,
            )
            await asyncio.sleep(3.0)  # several outbox and event rounds
            wrong = [
                f"{c.method} {json.dumps(c.args)[:120]}"
                for c in emulator.calls
                if c.token == BOT_TOKEN and _mentions(c, "UBRAVO1", "CTRIAGEB", "Bravo card")
            ]
            assert wrong == [], "Alpha's bot did Bravo's work"
            async with sessions() as s:
                event = (
                    await s.exec(sa.select(SlackEvent).where(SlackEvent.team_id == BRAVO_TEAM))  # type: ignore[call-overload]
                ).scalar_one()
                row = (
                    await s.exec(
                        sa.select(OutboxMessage).where(
                            OutboxMessage.idempotency_key == "bravo-card"
                        )
                    )  # type: ignore[call-overload]
                ).scalar_one()
                assert (event.status, event.attempts) == ("pending", 0)
                assert (row.status, row.attempts, row.lease_owner) == ("pending", 0, None)
            assert f"workspace {bravo_id}: weekly report" not in alpha.log()

            # Bravo comes back and does its own work, through its own bot.
            bravo_proc = await start_serve(env_b, tmp_path / "bravo2.log")
            try:
                home = await emulator.wait_for(
                    lambda c: c.method == "views.publish" and c.args["user_id"] == "UBRAVO1",
                    timeout=15,
                )
                card = await emulator.wait_for(
                    lambda c: c.method == "chat.postMessage" and c.args["channel"] == "CTRIAGEB",
                    timeout=15,
                )
                assert home.token == BRAVO_TOKEN and card.token == BRAVO_TOKEN
            finally:
                assert bravo_proc.terminate() == 0
        finally:
            assert alpha.terminate() == 0
        async with sessions() as s:
            members = (
                await s.exec(sa.select(Member.slack_user_id, Member.workspace_id))  # type: ignore[call-overload]
            ).all()
        by_user = {user: ws for user, ws in members}
        assert by_user["UBRAVO1"] == bravo_id
        assert by_user["UALPHA1"] != bravo_id
        assert sum(1 for user, _ in members if user == "UBRAVO1") == 1
    finally:
        await engine.dispose()
