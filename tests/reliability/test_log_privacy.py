"""Nothing private in the logs: canaries through every path never appear at INFO or above.

Canary customer text, email addresses and secrets (bot token, signing secret, mail secret,
response_url) go through slash commands, modal submissions, events, a mail over SMTP, a reply
mail the relay refuses (echoing the address, as real relays do) and Slack delivery failures.
Run twice: in-process with the loggers set as `docket serve` sets them (caplog at INFO), and as
a real `docket serve` subprocess whose log file is read afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.cli import configure_logging
from bot.db import make_engine, make_sessionmaker
from handlers.blocks.conversation import REPLY_BLOCK, REPLY_INPUT
from handlers.blocks.tickets import Field, FormMeta
from handlers.ids import Action, View
from models.tables import Contact, Customer, Member, Role, Workspace
from tests.conftest import make_settings
from tests.harness import running_docket
from tests.procs import free_port, serve_env, start_serve
from tests.slack_emulator import SlackEmulator
from tests.slack_signing import SlackRequests
from tests.smtp_sink import SmtpSink, build_mail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CANARY = "zqcanary"  # every private value below contains it; the logs must not
TEXT = f"{CANARY}-text"
SENDER = f"{CANARY}.person@example.net"
TOKEN = f"xoxb-{CANARY}-token"
SIGNING = f"{CANARY}-signing-secret"
MAIL_SECRET = f"{CANARY}-mail-secret"
SUPPORT = "support@example.com"


@dataclass
class Target:
    """A running Docket to send the canaries to."""

    url: str
    smtp_port: int
    emulator: SlackEmulator
    sink: SmtpSink
    requests: SlackRequests
    database_url: str

    async def send(self, signed: Any) -> int:
        body, headers = signed
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + "/slack/events", data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

    async def sql(self, query: str, **params: Any) -> list[Any]:
        engine = make_engine(self.database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(query), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    async def until(self, query: str, timeout: float = 20.0, **params: Any) -> None:
        """Wait until `query` (a count) is positive."""
        deadline = time.monotonic() + timeout
        while not (await self.sql(query, **params))[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(query)
            await asyncio.sleep(0.1)


def _emulator_users(emulator: SlackEmulator) -> None:
    emulator.add_user("UAGENT", name="agnes", real_name="Agnes", email="agnes@provider.test")
    emulator.add_user("UADMIN", name="ada", real_name="Ada", email="ada@provider.test")
    emulator.add_user("UCUST", name="carol", real_name="Carol", email="carol@acme.test")
    emulator.users["UCUST"]["team_id"] = "TCUSTOMER"


async def _seed(target: Target) -> None:
    engine = make_engine(target.database_url)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            ws = (await s.exec(select(Workspace))).one()
            assert ws.id is not None
            customer = Customer(workspace_id=ws.id, name="Acme", slack_channel="CACME")
            s.add(customer)
            await s.flush()
            assert customer.id is not None
            s.add(
                Contact(
                    workspace_id=ws.id,
                    customer_id=customer.id,
                    email="carol@acme.test",
                    name="Carol",
                    slack_user_id="UCUST",
                )
            )
            s.add(Member(workspace_id=ws.id, slack_user_id="UAGENT", name="Agnes"))
            s.add(Member(workspace_id=ws.id, slack_user_id="UADMIN", name="Ada", role=Role.ADMIN))
    finally:
        await engine.dispose()


async def journey(target: Target) -> None:
    """Every path a canary can take into Docket."""
    req, emulator = target.requests, target.emulator
    url = emulator.response_url

    # Slack refuses a delivery for good (the error is logged; nothing private with it).
    emulator.fail_next("chat.postMessage", "invalid_blocks")
    # Slash commands.
    quick = req.slash_command(
        "/ticket", f"{TEXT} quick ticket", user_id="UAGENT", channel_id="CTRIAGE",
        response_url=url(f"{CANARY}-response-1"),
    )  # fmt: skip
    assert await target.send(quick) == 200
    await target.until("SELECT count(*) FROM ticket")
    for command, text in (
        ("/time", f"30m #1 {TEXT} time note"),
        ("/docket", f"{TEXT} junk"),
        ("/ticket", f"list {TEXT} no such customer"),
        ("/profit", f"{TEXT} customer"),
    ):
        signed = req.slash_command(
            command, text, user_id="UAGENT", response_url=url(f"{CANARY}-response-x")
        )
        assert await target.send(signed) == 200

    # A modal submission (a new ticket, assigned).
    values: dict[str, Any] = {
        Field.TITLE: {"title_input": {"type": "plain_text_input", "value": f"{TEXT} modal"}},
        Field.DESCRIPTION: {
            "description_input": {"type": "plain_text_input", "value": f"{TEXT} description"}
        },
        Field.ASSIGNEE: {"assignee_input": {"type": "users_select", "selected_user": "UAGENT"}},
    }
    submit = req.view_submission(View.TICKET, values, FormMeta().encode(), user_id="UADMIN")
    assert await target.send(req.interactivity(submit)) == 200

    # A mail from a stranger over SMTP: stored, then a new (unverified) ticket.
    mail = build_mail(
        sender=f"Zq Canary <{SENDER}>",
        to=SUPPORT,
        subject=f"{TEXT} mail subject",
        body=f"{TEXT} mail body\n\nCall me on {CANARY} 0123.",
        message_id=f"<{CANARY}-message@example.net>",
    )

    def send_mail() -> None:
        with smtplib.SMTP("127.0.0.1", target.smtp_port, timeout=10) as smtp:
            smtp.sendmail(SENDER, [SUPPORT], mail)

    await asyncio.to_thread(send_mail)
    await target.until(
        "SELECT count(*) FROM email_message WHERE direction = 'in' AND status = 'processed'"
    )
    [(mail_ticket, mail_number)] = await target.sql(
        "SELECT t.id, t.number FROM ticket t JOIN email_message m ON m.ticket_id = t.id"
    )

    # Events: a customer's message in their channel, a mention, a note in a card's thread.
    for event, event_id in (
        (req.message_event(f"{TEXT} channel message", channel="CACME", user="UCUST"), "EvC1"),
        (req.app_mention(f"<@UBOT> {TEXT} mention", user="UAGENT", channel="CTRIAGE"), "EvC2"),
    ):
        assert await target.send(req.event(event, event_id=event_id)) == 200
    await target.until("SELECT count(*) FROM ticket WHERE card_ts IS NOT NULL AND number = 2")
    [(card_channel, card_ts)] = await target.sql(
        "SELECT card_channel, card_ts FROM ticket WHERE number = 2"
    )
    note = req.message_event(
        f"{TEXT} internal note", channel=card_channel, user="UAGENT", thread_ts=card_ts
    )
    assert await target.send(req.event(note, event_id="EvC3")) == 200

    # Replies to the mail's sender: the relay refuses the first, echoing the address.
    target.sink.fail_next(f"550 5.1.1 <{SENDER}>: Recipient address rejected ({TEXT})")
    reply = req.view_submission(
        View.REPLY,
        {REPLY_BLOCK: {REPLY_INPUT: {"type": "plain_text_input", "value": f"{TEXT} reply"}}},
        json.dumps({"ticket_id": mail_ticket}),
        user_id="UAGENT",
    )
    assert await target.send(req.interactivity(reply)) == 200
    command_reply = req.slash_command(
        "/ticket", f"reply {mail_number} {TEXT} quick reply", user_id="UAGENT",
        response_url=url(f"{CANARY}-response-2"),
    )  # fmt: skip
    assert await target.send(command_reply) == 200

    # Buttons and type-ahead with canary values, one of them unknown to Docket.
    for payload, status in (
        (req.block_actions("no_such_action", f"{TEXT} value", user_id="UAGENT"), 404),
        (req.block_suggestion(Action.TICKET_CUSTOMER, f"{TEXT} typed", "UAGENT"), 200),
        (req.block_actions(Action.CLOSE, f"{TEXT}", user_id="UAGENT"), 200),
    ):
        assert await target.send(req.interactivity(payload)) == status
    # A forged request carrying a canary: refused, and only the reason is logged.
    forged = req.slash_command("/ticket", f"{TEXT} forged", signature="v0=" + "0" * 64)
    assert await target.send(forged) == 401

    # Everything settles: both replies handled (one parked dead), events and mail done.
    await target.until(
        "SELECT count(*) FROM outbox_message WHERE status = 'dead' AND kind = 'email'",
        timeout=30,
    )
    await target.sink.wait_for(lambda m: SENDER in m.rcpt_tos)
    await target.until(
        "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM slack_event WHERE status = 'pending'"
    )
    await target.until(
        "SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM outbox_message "
        "WHERE status = 'pending'"
    )
    await asyncio.sleep(0.5)


def _leaks(text: str) -> list[str]:
    lines = text.splitlines()
    return [line[:300] for line in lines if CANARY in line.lower()]


@asynccontextmanager
async def _tools() -> AsyncIterator[tuple[SlackEmulator, SmtpSink]]:
    async with SlackEmulator(token=TOKEN) as emulator, SmtpSink() as sink:
        _emulator_users(emulator)
        yield emulator, sink


@pytest.fixture
def production_log_levels() -> Any:
    """The logger levels `docket serve` sets (restored afterwards)."""
    names = ("slack_bolt", "slack_sdk", "aiosmtpd", "mail.log", "apscheduler")
    before = {name: logging.getLogger(name).level for name in names}
    configure_logging("INFO")
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


async def test_in_process_logs_hold_no_canary(
    database_url: str, caplog: Any, production_log_levels: Any
) -> None:
    caplog.set_level(logging.INFO)
    async with _tools() as (emulator, sink):
        settings = make_settings(
            slack_api_url=emulator.api_url,
            slack_bot_token=TOKEN,
            slack_signing_secret=SIGNING,
            docket_secret=MAIL_SECRET,
            database_url=database_url,
            docket_triage_channel="CTRIAGE",
            docket_admins=["UADMIN"],
            docket_support_address=SUPPORT,
            docket_smtp_port=free_port(),
            docket_smtp_relay=sink.relay_url,
        )
        async with running_docket(settings, emulator, SIGNING) as docket:
            assert docket.runtime.smtp_port is not None
            target = Target(
                docket.url,
                docket.runtime.smtp_port,
                emulator,
                sink,
                SlackRequests(SIGNING, team_id=emulator.team_id),
                database_url,
            )
            await _seed(target)
            await journey(target)
    logged = []
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            logged.append(record.getMessage())
            if record.exc_info:
                logged.append(logging.Formatter().formatException(record.exc_info))
    text = "\n".join(logged)
    assert len(logged) > 3, "nothing was logged: the test would pass vacuously"
    leaks = _leaks(text)
    assert not leaks, "\n".join(leaks)


async def test_docket_serve_log_file_holds_no_canary(database_url: str, tmp_path: Path) -> None:
    async with _tools() as (emulator, sink):
        smtp_port = free_port()
        env = serve_env(
            database_url=database_url,
            api_url=emulator.api_url,
            signing_secret=SIGNING,
            token=TOKEN,
            DOCKET_SMTP_PORT=str(smtp_port),
            DOCKET_SMTP_RELAY=sink.relay_url,
            DOCKET_SUPPORT_ADDRESS=SUPPORT,
            DOCKET_SECRET=MAIL_SECRET,
            DOCKET_ADMINS="UADMIN",
        )
        serve = await start_serve(env, tmp_path / "serve.log")
        try:
            target = Target(
                serve.url,
                smtp_port,
                emulator,
                sink,
                SlackRequests(SIGNING, team_id=emulator.team_id),
                database_url,
            )
            await _seed(target)
            await journey(target)
        finally:
            assert await asyncio.to_thread(serve.terminate) == 0
    log = serve.log()
    assert "stored inbound mail" in log, log[-2000:]
    leaks = _leaks(log)
    assert not leaks, "\n".join(leaks)


# Keep the type checker honest about the journey's callables.
_: Callable[[Target], Awaitable[None]] = journey


async def test_a_database_error_logs_no_customer_text(
    docket: Any, caplog: Any, production_log_levels: Any
) -> None:
    """SQLAlchemy puts a failed statement's parameters in its error message; the engine must
    hide them, or the traceback of any database error carries customer text into the log."""
    caplog.set_level(logging.INFO)
    services = docket.services
    async with services.transaction() as session:
        session.add(
            Customer(workspace_id=services.workspace_id, name="Acme", slack_channel="CACME")
        )
    broken: list[str] = []

    def break_ticket_insert(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> Any:
        if not broken and statement.lstrip().upper().startswith("INSERT INTO TICKET "):
            broken.append(statement)
            statement = statement.replace("INSERT INTO ticket ", "INSERT INTO no_such_table ", 1)
        return statement, params

    sync_engine = services.engine.sync_engine
    sa.event.listen(sync_engine, "before_cursor_execute", break_ticket_insert, retval=True)
    try:
        req = docket.requests
        event = req.message_event(f"{TEXT} channel message", channel="CACME", user="UCUST")
        assert (await docket.event(event, event_id="EvDbError")).status == 200
        deadline = time.monotonic() + 10
        while not await _event_failed(docket):
            assert time.monotonic() < deadline, "the event never failed"
            await asyncio.sleep(0.05)
    finally:
        sa.event.remove(sync_engine, "before_cursor_execute", break_ticket_insert)
    assert broken
    logged = []
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            logged.append(record.getMessage())
            if record.exc_info:
                logged.append(logging.Formatter().formatException(record.exc_info))
    text = "\n".join(logged)
    assert "no_such_table" in text  # the error itself is logged
    leaks = _leaks(text)
    assert not leaks, "\n".join(leaks)


async def _event_failed(docket: Any) -> bool:
    async with docket.services.read() as session:
        result = await session.execute(
            sa.text("SELECT count(*) FROM slack_event WHERE last_error IS NOT NULL")
        )
        return bool(result.scalar_one())
