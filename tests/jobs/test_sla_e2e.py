"""SLA notices end to end through the real server: customer mail opens tickets, the team works
them through signed Slack requests, the scan runs with the server's clock moved forward, and
the notices reach the Slack emulator once each. `docket report sla` agrees with the card."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.cli import main
from handlers.blocks.conversation import REPLY_BLOCK, REPLY_INPUT
from handlers.blocks.tickets import card_sla_text
from handlers.ids import Action, View
from models.periods import week_of
from models.sla import PriorityTargets
from models.sla_store import save_policy
from models.tables import OutboxMessage, OutboxStatus, SlaNotice, Ticket, utcnow
from models.tickets import load_card
from tests.conftest import SIGNING_SECRET
from tests.handlers.test_mail_e2e import AGENT, MailDocket, mail_docket
from tests.harness import running_docket
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import build_mail


def _sla_post(
    text: str, *, channel: str | None = None, thread: bool = False
) -> Callable[[Any], bool]:
    def match(call: Any) -> bool:
        if call.method != "chat.postMessage" or text not in str(call.args.get("text", "")):
            return False
        if channel is not None and call.args.get("channel") != channel:
            return False
        return not thread or call.args.get("thread_ts") is not None

    return match


def _count(emulator: SlackEmulator, match: Callable[[Any], bool]) -> int:
    return sum(1 for call in emulator.calls_to("chat.postMessage") if match(call))


async def _tickets(mail: MailDocket) -> dict[str, Ticket]:
    async with mail.docket.services.read() as session:
        rows = (await session.exec(select(Ticket).order_by(col(Ticket.number)))).all()
    return {t.title: t for t in rows}


async def _reply(mail: MailDocket, ticket: Ticket, text: str) -> None:
    """The agent answers the customer from the card's "Reply to customer"."""
    docket, emulator = mail.docket, mail.emulator
    card = await emulator.wait_for(
        lambda c: c.method == "chat.postMessage" and c.ok and ticket.title in str(c.args)
    )
    emulator.clear()
    click = docket.requests.block_actions(
        Action.REPLY,
        str(ticket.id),
        user_id=AGENT,
        message={**card.response["message"], "channel": "CTRIAGE"} if card.response else None,
        channel_id="CTRIAGE",
        response_url=emulator.response_url("reply"),
    )
    assert (await docket.interact(click)).status == 200
    opened = await emulator.wait_for(lambda c: c.method == "views.open")
    view = opened.response["view"] if opened.response else opened.args["view"]
    submit = docket.requests.view_submission(
        View.REPLY,
        {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": text}}},
        view=view,
        user_id=AGENT,
    )
    assert (await docket.interact(submit)).status == 200
    await mail.sink.wait_for(lambda m: text in m.text)


async def test_warning_and_breach_arrive_once_and_the_report_agrees(
    database_url: str,
    emulator: SlackEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with mail_docket(database_url, emulator) as mail:
        docket = mail.docket
        services = docket.services
        real_clock = services.clock
        offset = [timedelta(0)]
        services.clock = lambda: real_clock() + offset[0]

        async def at_minute(minutes: int) -> None:
            offset[0] = timedelta(minutes=minutes)
            services.wake.sla.set()
            await asyncio.sleep(0.3)

        async with services.transaction() as session:
            await save_policy(
                session=session,
                workspace_id=services.workspace_id,
                name="default",
                calendar="24x7",
                targets={"normal": PriorityTargets("1h", "1d")},
            )
        for subject, msgid in (
            ("Printer on fire", "<a@acme.test>"),
            ("Mouse broken", "<b@acme.test>"),
        ):
            await mail.send(
                build_mail(
                    sender="Alice <alice@acme.test>", subject=subject, body="Help", message_id=msgid
                )
            )
        await mail.settled(2)
        tickets = await _tickets(mail)
        unanswered, answered = tickets["Printer on fire"], tickets["Mouse broken"]

        # The agent takes the first ticket and answers the second after 10 minutes.
        await docket.interact(
            docket.requests.block_actions(
                Action.ASSIGN_TO_ME,
                str(unanswered.id),
                user_id=AGENT,
                response_url=emulator.response_url("assign"),
            )
        )
        offset[0] = timedelta(minutes=10)
        await _reply(mail, answered, "Try another mouse.")

        await at_minute(30)
        assert _count(emulator, _sla_post("SLA")) == 0
        # 75% of the hour: the assignee is warned by DM.
        await at_minute(46)
        dm = await emulator.wait_for(_sla_post("SLA warning", channel=AGENT), timeout=10)
        assert f"#{unanswered.number}" in dm.args["text"]
        # Past due: a post in the card's thread and a DM.
        await at_minute(61)
        await emulator.wait_for(_sla_post("SLA breached", thread=True), timeout=10)
        await emulator.wait_for(_sla_post("SLA breached", channel=AGENT), timeout=10)
        # The card is redrawn with the breach.
        await emulator.wait_for(
            lambda c: (
                c.method == "chat.update" and "First response breached" in str(c.args.get("blocks"))
            ),
            timeout=10,
        )
        for minute in (62, 75, 120):
            await at_minute(minute)
        await asyncio.sleep(1.0)
        assert _count(emulator, _sla_post("SLA warning")) == 1
        assert _count(emulator, _sla_post("SLA breached", thread=True)) == 1
        assert _count(emulator, _sla_post("SLA breached", channel=AGENT)) == 1
        assert _count(emulator, _sla_post(f"#{answered.number} ")) == 0

        # `/ticket list overdue` names the breached ticket and not the answered one.
        await docket.command(
            "/ticket", "list overdue", user_id=AGENT, response_url=emulator.response_url("over")
        )
        listed = await emulator.wait_for(lambda c: c.path.endswith("/over"))
        assert "Printer on fire" in str(listed.args["blocks"])
        assert "Mouse broken" not in str(listed.args["blocks"])

        # `/profit Acme week` shows the same service levels beside the margin.
        await docket.command(
            "/profit", "Acme week", user_id="UADMIN", response_url=emulator.response_url("prof")
        )
        profit = await emulator.wait_for(lambda c: c.path.endswith("/prof"))
        assert "of 2 finished targets met (first response 50%" in str(profit.args["blocks"])
        assert "Acme: 1 breached · 50% met · median first response 1h 5m" in str(
            profit.args["blocks"]
        )

        # The report, as of this moment, says what the cards say.
        now = services.now()
        async with services.read() as session:
            cards = {
                t.number: await load_card(
                    session=session, workspace_id=services.workspace_id, ticket=t
                )
                for t in (unanswered, answered)
            }
        texts = {n: card_sla_text(c, now=now) for n, c in cards.items()}
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("DOCKET_LOG_LEVEL", "WARNING")
        period = week_of(now.astimezone(services.timezone).date()).key
        args = ["report", "sla", "--period", period, "--format", "json", "--at", now.isoformat()]
        capsys.readouterr()
        assert await asyncio.to_thread(main, args) == 0
        report = json.loads(capsys.readouterr().out)
    rows = {t["number"]: t for t in report["tickets"]}
    late = rows[unanswered.number]["first_response"]
    assert (late["status"], late["target_minutes"], late["used_minutes"]) == ("breached", 60, 120)
    assert "First response breached 1h ago" in texts[unanswered.number]
    met = rows[answered.number]["first_response"]
    assert (met["status"], met["used_minutes"]) == ("met", 10)
    assert "First response met in 10m" in texts[answered.number]
    running = rows[unanswered.number]["resolution"]
    due = datetime.fromisoformat(running["due"])
    assert running["status"] == "running"
    assert f"Resolution due {due.strftime('%a %H:%M')}" in texts[unanswered.number]
    assert report["customers"] == [
        {
            "customer": "Acme",
            "first_response_met": 1,
            "first_response_breached": 1,
            "resolution_met": 0,
            "resolution_breached": 0,
            "median_first_response_minutes": 65,
        }
    ]


async def _claimed_rows(services: Any) -> int:
    """Outbox rows a worker holds right now (claimed, not yet settled)."""
    async with services.read() as session:
        stmt = select(sa.func.count()).where(
            col(OutboxMessage.status) == OutboxStatus.PENDING,
            col(OutboxMessage.lease_until).is_not(None),
        )
        return int((await session.exec(stmt)).one())


async def test_two_replicas_send_each_notice_once(
    database_url: str, emulator: SlackEmulator
) -> None:
    """Two `docket serve` runtimes on one database scan together: one notice per ticket."""
    async with mail_docket(database_url, emulator) as mail:
        first = mail.docket.services
        settings = first.settings.model_copy(update={"docket_smtp_port": 0})
        async with running_docket(settings, emulator, SIGNING_SECRET) as second_docket:
            second = second_docket.services
            offset = [timedelta(0)]
            for services in (first, second):
                services.clock = lambda: utcnow() + offset[0]

            async def at_minute(minutes: int) -> None:
                offset[0] = timedelta(minutes=minutes)
                for _ in range(3):
                    first.wake.sla.set()
                    second.wake.sla.set()
                    await asyncio.sleep(0.2)

            async with first.transaction() as session:
                await save_policy(
                    session=session,
                    workspace_id=first.workspace_id,
                    name="default",
                    calendar="24x7",
                    targets={"normal": PriorityTargets("1h", "1d")},
                )
            for n in range(4):
                await mail.send(
                    build_mail(
                        sender="alice@acme.test",
                        subject=f"Outage {n}",
                        body="Help",
                        message_id=f"<r{n}@acme.test>",
                    )
                )

            async def sends_finished() -> None:
                # The test's clock jumps ahead by minutes: a send still in flight when it
                # jumps would see its lease run out and go to the other replica (a real
                # lease is minutes long, a real send well under one).
                deadline = asyncio.get_running_loop().time() + 15
                while await _claimed_rows(first):
                    assert asyncio.get_running_loop().time() < deadline, "sends never finished"
                    await asyncio.sleep(0.05)

            await mail.settled(4)
            await at_minute(46)
            await emulator.wait_for(_sla_post("SLA warning", thread=True), timeout=15, count=4)
            await sends_finished()
            await at_minute(61)
            await emulator.wait_for(_sla_post("SLA breached", thread=True), timeout=15, count=4)
            await sends_finished()
            await at_minute(90)
            await asyncio.sleep(1.0)
            warnings = [
                c for c in emulator.calls_to("chat.postMessage") if _sla_post("SLA warning")(c)
            ]
            breaches = [
                c for c in emulator.calls_to("chat.postMessage") if _sla_post("SLA breached")(c)
            ]
            assert len(warnings) == len(breaches) == 4
            numbers = sorted(str(c.args["text"]).split("#")[1].split()[0] for c in warnings)
            assert numbers == ["1", "2", "3", "4"]
            async with first.read() as session:
                notices = (await session.exec(select(SlaNotice))).all()
            assert len(notices) == 8
