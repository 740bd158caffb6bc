"""Events are stored before Slack gets its 200, and processed exactly once, across SIGKILL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import serve_env, start_serve
from tests.slack_signing import SlackRequests

pytestmark = pytest.mark.e2e


def _mention(i: int) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> help",
        "channel": "CGENERAL",
        "ts": f"1700000000.{i:06d}",
    }


async def _post(url: str, req: Any) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/slack/events", data=req.body, headers=req.headers) as resp:
            return resp.status


async def test_an_answered_event_survives_sigkill_and_is_processed_once(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
    )
    requests = SlackRequests(SIGNING_SECRET, team_id=emulator.team_id)
    deliveries = [requests.event(_mention(i), event_id=f"EvKill{i}") for i in range(5)]

    # An ingress-only replica answers and stores, then dies before anything processes them.
    first = await start_serve({**env, "DOCKET_PROCESS_EVENTS": "false"}, tmp_path / "serve1.log")
    for req in deliveries:
        assert await _post(first.url, req) == 200
    first.kill()
    assert not emulator.calls_to("chat.postMessage")

    second = await start_serve(env, tmp_path / "serve2.log")
    try:
        for i in range(5):
            ts = f"1700000000.{i:06d}"
            await emulator.wait_for(
                lambda c, ts=ts: c.method == "chat.postMessage" and c.args.get("thread_ts") == ts,
                timeout=15,
            )
        # Slack retries the same deliveries: answered, not processed again.
        for req in deliveries:
            retry = requests.event(req_event(req), event_id=req_event_id(req), retry_num=1)
            assert await _post(second.url, retry) == 200
    finally:
        assert second.terminate() == 0
    replies = [
        c for c in emulator.calls_to("chat.postMessage") if c.args.get("channel") == "CGENERAL"
    ]
    assert sorted(c.args["thread_ts"] for c in replies) == [f"1700000000.{i:06d}" for i in range(5)]


def req_event(req: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(req.body)["event"])


def req_event_id(req: Any) -> str:
    import json

    return str(json.loads(req.body)["event_id"])
