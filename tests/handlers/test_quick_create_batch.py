"""A backlog of stored `/ticket <title>` requests is created many per transaction.

The requests are stored the way the ingress stores them (the signed body Slack sent), all in
one transaction, so the running worker finds them together and runs them as one batch.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from handlers.ids import Command
from models.intake import IntakeRequest, intake_key, store_requests
from models.tables import OutboxMessage, SlackIntake, Ticket, TicketEvent
from tests.handlers.test_tickets_e2e import eventually, setup_users

FORM = "application/x-www-form-urlencoded"


async def store_commands(docket: Any, texts: list[str]) -> list[str]:
    """Store quick creates as the ingress would; returns each one's response_url."""
    from urllib.parse import parse_qsl

    items = []
    urls = []
    for i, text in enumerate(texts):
        url = docket.emulator.response_url(f"q{i}")
        body, _headers = docket.requests.slash_command(
            Command.TICKET.value, text, user_id="U1" if i % 2 else "UBOB", response_url=url
        )
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        request = IntakeRequest(
            team_id=fields["team_id"],
            kind="slash_command",
            name=Command.TICKET.value,
            user_id=fields["user_id"],
            response_url=url,
            trigger_id=fields["trigger_id"],
            content_type=FORM,
            body=body.decode(),
        )
        items.append((request, intake_key("slash_command", fields, body.decode()), None, 30))
        urls.append(url)
    services = docket.services
    async with services.transaction() as session:
        ids = await store_requests(
            session=session, workspace_id=services.workspace_id, items=items, at=services.now()
        )
    assert all(ids)
    return urls


async def count(docket: Any, model: type) -> int:
    async with docket.services.read() as session:
        return int((await session.exec(select(sa.func.count()).select_from(model))).one())


async def test_a_backlog_is_created_in_one_batch_each_answered_once(
    docket: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handlers.quick_create")
    setup_users(docket)
    titles = [f"Printer {i} jams" for i in range(30)]
    urls = await store_commands(docket, titles)

    async def all_answered() -> bool:
        calls = docket.emulator.calls_to("response_url")
        return len({c.path for c in calls}) >= len(urls)

    await eventually(all_answered, timeout=30)
    async with docket.services.read() as session:
        tickets = list((await session.exec(select(Ticket).order_by(col(Ticket.number)))).all())
        rows = list((await session.exec(select(SlackIntake))).all())
        created = list(
            (await session.exec(select(TicketEvent).where(TicketEvent.kind == "created"))).all()
        )
        cards = list(
            (
                await session.exec(
                    select(OutboxMessage).where(
                        col(OutboxMessage.idempotency_key).like("ticket:%:announce")
                    )
                )
            ).all()
        )
    # Exactly one ticket per request, numbered without gaps, each with its event and card.
    assert sorted(t.title for t in tickets) == sorted(titles)
    assert [t.number for t in tickets] == list(range(1, 31))
    assert len(created) == 30 and {e.ticket_id for e in created} == {t.id for t in tickets}
    assert {c.target for c in cards} == {"slack:CTRIAGE"} and len(cards) == 30
    assert all(r.status == "done" and r.attempts == 1 for r in rows)
    # Each person got exactly one answer, replacing the "Creating ticket…" ephemeral, with the
    # card of the ticket their own text created.
    by_title = {t.title: t for t in tickets}
    for i, title in enumerate(titles):
        answers = docket.emulator.responses(f"q{i}")
        assert len(answers) == 1, (title, answers)
        assert answers[0]["replace_original"] is True
        assert f"#{by_title[title].number}" in str(answers[0]["blocks"])
    # They were created together, not one transaction each.
    batches = [r.args[0] for r in caplog.records if "stored quick creates" in r.getMessage()]
    assert batches and max(batches) > 1 and sum(batches) == 30
    # The batch went through the emulator without one failed call.
    assert all(c.ok for c in docket.emulator.calls)


async def test_a_request_the_ticket_rules_refuse_runs_alone(
    docket: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A request the ticket rules refuse does not join the batch: the others are created
    together, once each, and the refused one is told why, once."""
    caplog.set_level(logging.INFO, logger="handlers.quick_create")
    setup_users(docket)
    titles = [f"Disk {i} full" for i in range(8)]
    titles[3] = "x" * 20_001  # longer than a description may be
    urls = await store_commands(docket, titles)

    async def settled() -> bool:
        async with docket.services.read() as session:
            rows = (await session.exec(select(SlackIntake))).all()
        return all(r.status == "done" for r in rows)

    await eventually(settled, timeout=30)
    assert await count(docket, Ticket) == 7
    async with docket.services.read() as session:
        got = sorted(t.title for t in (await session.exec(select(Ticket))).all())
    assert got == sorted(t for i, t in enumerate(titles) if i != 3)
    refused = docket.emulator.responses("q3")
    assert len(refused) == 1 and "Not created" in refused[0]["text"], refused
    assert "20,000" in refused[0]["text"] or "20000" in refused[0]["text"]
    assert len(urls) == 8
    batches = [r.args[0] for r in caplog.records if "stored quick creates" in r.getMessage()]
    assert sum(batches) == 7 and max(batches) > 1, batches
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]
