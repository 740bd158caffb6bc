"""A permanent Slack error is tried once, parked with its reason, and admins hear once.

End to end: `/ticket` through the real server queues the card for the triage channel; Slack
(the emulator) refuses it for good. tests/jobs/test_outbox.py covers the worker's rules in
detail (classification, retry windows, alerts that die); this proves the three errors the
issue names on the running service.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from models.tables import OutboxMessage, OutboxStatus

pytestmark = pytest.mark.e2e


def _break(emulator: Any, error: str) -> None:
    if error == "channel_not_found":
        emulator.missing_channels.add("CTRIAGE")
    elif error == "not_in_channel":
        emulator.not_in_channels.add("CTRIAGE")
    else:
        emulator.fail_next("chat.postMessage", error)


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "invalid_auth"])
async def test_a_permanent_error_is_tried_once_parked_and_told_to_admins_once(
    docket: Any, error: str
) -> None:
    emulator = docket.emulator
    _break(emulator, error)
    reply = await docket.command("/ticket", "Printer on fire", user_id="UAGENT")
    assert reply.status == 200

    def to_admin(call: Any) -> bool:
        return call.method == "chat.postMessage" and call.args.get("channel") == "UADMIN"

    alert = await emulator.wait_for(to_admin, timeout=10)
    await asyncio.sleep(1.0)  # room for a (wrong) second try or second alert
    tries = [
        c
        for c in emulator.calls_to("chat.postMessage")
        if c.args.get("channel") == "CTRIAGE" and not c.ok
    ]
    assert len(tries) == 1 and tries[0].response["error"] == error
    assert len([c for c in emulator.calls if to_admin(c)]) == 1
    assert error in alert.args["text"] and "/docket outbox" in alert.args["text"]
    async with docket.services.read() as session:
        dead = (
            await session.exec(
                select(OutboxMessage).where(col(OutboxMessage.status) == OutboxStatus.DEAD)
            )
        ).all()
    assert [(row.last_error, row.attempts) for row in dead] == [(error, 1)]
    assert dead[0].idempotency_key.endswith(":announce")
