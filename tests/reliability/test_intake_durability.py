"""Commands, buttons and form submissions are stored before they are acknowledged.

A real `docket serve` is killed (SIGKILL) right after answering a burst; after a restart
every acknowledged request has been done exactly once, and Slack's retries of the same
bodies do nothing more.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from bot.db import make_engine
from handlers.ids import Action, Command, View
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.handlers.test_tickets_e2e import form_values
from tests.procs import serve_env, start_serve
from tests.slack_signing import SignedRequest, SlackRequests

pytestmark = pytest.mark.e2e

BURST = 40


async def _post(http: aiohttp.ClientSession, url: str, req: SignedRequest) -> tuple[int, Any]:
    async with http.post(url + "/slack/events", data=req.body, headers=req.headers) as resp:
        body = await resp.read()
        return resp.status, body


def _retry(requests: SlackRequests, req: SignedRequest, num: int = 1) -> SignedRequest:
    """The same body again, freshly signed, as Slack retries it."""
    return requests.signed(
        req.body,
        req.headers["Content-Type"],
        extra_headers={"X-Slack-Retry-Num": str(num), "X-Slack-Retry-Reason": "http_timeout"},
    )


async def _scalar(url: str, sql: str) -> Any:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(sql))).all()
    finally:
        await engine.dispose()


async def _until(check: Any, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("not done in time")
        await asyncio.sleep(0.25)


def _env(database_url: str, emulator: Any) -> dict[str, str]:
    return serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
        DOCKET_INTAKE_LEASE_SECONDS="2",
    )


async def test_acked_quick_creates_survive_sigkill_once_each(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    emulator.add_user("U1", name="alice", email="alice@provider.test")
    env = _env(database_url, emulator)
    requests = SlackRequests(
        SIGNING_SECRET, team_id=emulator.team_id, response_base=emulator.response_url("")
    )
    burst = [
        requests.slash_command("/ticket", f"Kill test {i}", user_id="U1") for i in range(BURST)
    ]

    first = await start_serve(env, tmp_path / "serve1.log")
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(_post(http, first.url, r) for r in burst))
        first.kill()  # right after the last answer: most of the work has not run yet
    assert all(status == 200 for status, _ in answers)
    assert [b.decode() for _, b in answers if "Creating ticket" not in b.decode()] == []

    second = await start_serve(env, tmp_path / "serve2.log")
    try:

        async def all_there() -> bool:
            rows = await _scalar(database_url, "SELECT count(*) FROM ticket")
            return bool(rows[0][0] >= BURST)

        await _until(all_there)
        async with aiohttp.ClientSession() as http:
            for req in burst[:10]:
                status, _ = await _post(http, second.url, _retry(requests, req))
                assert status == 200
        await asyncio.sleep(2.5)  # past the lease: a retry stored twice would have run by now
    finally:
        assert second.terminate() == 0
    titles = Counter(t for (t,) in await _scalar(database_url, "SELECT title FROM ticket"))
    assert titles == Counter({f"Kill test {i}": 1 for i in range(BURST)})
    pending = await _scalar(
        database_url, "SELECT count(*) FROM slack_intake WHERE status <> 'done'"
    )
    assert pending[0][0] == 0
    # The result replaced each "Creating ticket…" ephemeral through its response_url.
    answered = [c for c in emulator.calls_to("response_url") if "Kill test" in str(c.args)]
    assert answered and all(c.args.get("replace_original") is True for c in answered)


async def _card(emulator: Any, number: int) -> dict[str, Any]:
    call = await emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and f"#{number} ·" in str(c.args.get("blocks")),
        timeout=15,
    )
    return {
        "channel": call.args["channel"],
        "ts": call.response["ts"],
        "blocks": call.args["blocks"],
        "text": call.args.get("text", ""),
    }


async def test_form_button_and_time_survive_sigkill_and_retries(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    emulator.add_user("U1", name="alice", email="alice@provider.test")
    env = _env(database_url, emulator)
    requests = SlackRequests(
        SIGNING_SECRET, team_id=emulator.team_id, response_base=emulator.response_url("")
    )
    first = await start_serve(env, tmp_path / "serve1.log")
    async with aiohttp.ClientSession() as http:
        await _post(http, first.url, requests.slash_command("/ticket", "Card ticket"))
        card = await _card(emulator, 1)
        button = next(
            e
            for b in card["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == Action.ASSIGN_TO_ME.value
        )
        burst = [
            requests.interactivity(
                requests.view_submission(View.TICKET.value, form_values(title="Form ticket"))
            ),
            requests.interactivity(
                requests.block_actions(
                    Action.ASSIGN_TO_ME.value,
                    value=button.get("value"),
                    message=card,
                    channel_id=card["channel"],
                )
            ),
            requests.slash_command(Command.TIME.value, "1h30 #1 fixed the printer"),
        ]
        answers = await asyncio.gather(*(_post(http, first.url, r) for r in burst))
        first.kill()
    assert [status for status, _ in answers] == [200, 200, 200]

    second = await start_serve(env, tmp_path / "serve2.log")
    try:

        async def all_done() -> bool:
            rows = await _scalar(
                database_url, "SELECT count(*) FROM slack_intake WHERE status = 'pending'"
            )
            return bool(rows[0][0] == 0)

        await _until(all_done)
        async with aiohttp.ClientSession() as http:
            for req in [*burst, *burst]:
                status, _ = await _post(http, second.url, _retry(requests, req))
                assert status == 200
        await asyncio.sleep(2.5)
        await _until(all_done)
    finally:
        assert second.terminate() == 0
    titles = sorted(t for (t,) in await _scalar(database_url, "SELECT title FROM ticket"))
    assert titles == ["Card ticket", "Form ticket"]
    assigned = await _scalar(database_url, "SELECT assignee_id FROM ticket WHERE number = 1")
    assert assigned[0][0] is not None
    minutes = await _scalar(database_url, "SELECT minutes FROM time_entry")
    assert [m for (m,) in minutes] == [90]
    kinds = await _scalar(database_url, "SELECT kind, status FROM slack_intake ORDER BY id")
    assert sorted(kinds) == sorted(
        [
            ("slash_command", "done"),
            ("view_submission", "done"),
            ("block_actions", "done"),
            ("slash_command", "done"),
        ]
    )
