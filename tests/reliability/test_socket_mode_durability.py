"""Socket Mode: acknowledged envelopes survive a crash, as acknowledged HTTP requests do.

A real `docket serve` in Socket Mode (SLACK_APP_TOKEN set) is connected to the emulator's
WebSocket, acknowledges a burst of `/ticket <title>` envelopes and is killed (SIGKILL) at
once. After a restart every acknowledged request has become exactly one ticket, and the same
envelopes delivered again change nothing. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import serve_env, start_serve
from tests.reliability.test_intake_durability import _scalar, _until
from tests.slack_emulator import SlackEmulator
from tests.slack_signing import SlackRequests, envelope_payload

pytestmark = pytest.mark.e2e

BURST = 40


def _connected(emulator: SlackEmulator, opened: int) -> Any:
    return lambda: len(emulator.sockets) >= opened and bool(emulator.open_sockets())


async def _deliver(emulator: SlackEmulator, payloads: list[dict[str, Any]]) -> list[Any]:
    """Send each payload as a slash command envelope; return the acks' payloads."""
    ids = [await emulator.send_envelope("slash_commands", p) for p in payloads]
    acks = await asyncio.gather(*(emulator.wait_for_ack(i, timeout=15) for i in ids))
    return [ack.get("payload") for ack in acks]


async def test_acked_socket_mode_quick_creates_survive_sigkill_once_each(
    database_url: str, emulator: SlackEmulator, tmp_path: Path
) -> None:
    emulator.add_user("U1", name="alice", email="alice@provider.test")
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
        SLACK_APP_TOKEN=emulator.app_token,
        DOCKET_INTAKE_LEASE_SECONDS="2",
    )
    requests = SlackRequests(
        SIGNING_SECRET, team_id=emulator.team_id, response_base=emulator.response_url("")
    )
    payloads = [
        envelope_payload(requests.slash_command("/ticket", f"Socket kill {i}", user_id="U1"))
        for i in range(BURST)
    ]

    first = await start_serve(env, tmp_path / "serve1.log", ready=_connected(emulator, 1))
    try:
        answers = await _deliver(emulator, payloads)
    finally:
        first.kill()  # right after the last ack: most of the work has not run yet
    assert [
        a for a in answers if a != {"response_type": "ephemeral", "text": "Creating ticket…"}
    ] == []

    second = await start_serve(env, tmp_path / "serve2.log", ready=_connected(emulator, 2))
    try:

        async def all_there() -> bool:
            rows = await _scalar(database_url, "SELECT count(*) FROM ticket")
            return bool(rows[0][0] >= BURST)

        await _until(all_there)
        # Slack delivers some of the same envelopes again: acknowledged alike, nothing stored.
        again = await _deliver(emulator, payloads[:10])
        assert all(a["text"] == "Creating ticket…" for a in again)

        async def all_done() -> bool:
            rows = await _scalar(
                database_url, "SELECT status, count(*) FROM slack_intake GROUP BY status"
            )
            return dict(rows) == {"done": BURST}

        await _until(all_done)
    finally:
        # In a thread: the emulator in this loop must answer the client's close frame.
        assert await asyncio.to_thread(second.terminate) == 0
    titles = Counter(t for (t,) in await _scalar(database_url, "SELECT title FROM ticket"))
    assert titles == Counter({f"Socket kill {i}": 1 for i in range(BURST)})
    # The result replaced each "Creating ticket…" ephemeral through its response_url.
    answered = [c for c in emulator.calls_to("response_url") if "Socket kill" in str(c.args)]
    assert answered and all(c.args.get("replace_original") is True for c in answered)
