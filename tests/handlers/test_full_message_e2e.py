""" "Show full message" end to end: SMTP in, the assignee's DM, the button, the modal.

Docket runs as `docket serve` does with its SMTP receiver on a loopback port; the button is
pressed with a signed interactivity request and the modal opens through views.open in the
Slack emulator, which enforces Block Kit's limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from sqlmodel import select

from handlers.ids import Action, View
from models.tables import Member, Ticket
from tests.handlers.test_mail_e2e import AGENT, MailDocket, mail_docket
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import build_mail

pytestmark = pytest.mark.e2e

HISTORY = "Please restart the printer and check the cable."


@pytest.fixture
async def mail(database_url: str, emulator: SlackEmulator) -> AsyncIterator[MailDocket]:
    async with mail_docket(database_url, emulator, docket_smtp_max_bytes=1_000_000) as running:
        yield running


async def _assigned_ticket(mail: MailDocket) -> Ticket:
    await mail.send(build_mail(sender="alice@acme.test", subject="Printer", body="It jams."))
    await mail.settled(1)
    async with mail.docket.services.transaction() as session:
        member = (await session.exec(select(Member).where(Member.slack_user_id == AGENT))).one()
        ticket = (await session.exec(select(Ticket))).one()
        ticket.assignee_id = member.id
        session.add(ticket)
    return ticket


def _html_reply(number: int, new: str, history: str) -> bytes:
    markup = (
        f'<div dir="ltr">{new}</div><br><div class="gmail_quote"><div class="gmail_attr">'
        "On Mon, 3 Mar 2025 at 10:15, Agnes &lt;support@example.com&gt; wrote:<br></div>"
        f'<blockquote class="gmail_quote">{history}</blockquote></div>'
    )
    message = EmailMessage()
    message["From"] = "alice@acme.test"
    message["To"] = "support@example.com"
    message["Subject"] = f"Re: [#{number}] Printer"
    message.set_content(markup, subtype="html", charset="utf-8")
    return message.as_bytes(policy=SMTP)


async def _dm(mail: MailDocket, token: str) -> Any:
    return await mail.emulator.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and str(c.args.get("channel", "")).startswith(("D", AGENT))
            and token in str(c.args.get("blocks"))
        ),
        timeout=20,
    )


async def _press(mail: MailDocket, dm: Any) -> dict[str, Any]:
    [button] = [
        element
        for block in dm.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == Action.SHOW_FULL_MESSAGE
    ]
    assert button["text"]["text"] == "Show full message"
    docket = mail.docket
    message = dm.response["message"] if dm.response else None
    click = docket.requests.block_actions(
        Action.SHOW_FULL_MESSAGE,
        button["value"],
        user_id=AGENT,
        message={**message, "channel": dm.response["channel"]} if message else None,
        channel_id=dm.response["channel"] if dm.response else None,
        response_url=mail.emulator.response_url("full"),
    )
    mail.emulator.clear()
    answer = await docket.interact(click)
    assert answer.status == 200
    opened = await mail.emulator.wait_for(lambda c: c.method == "views.open")
    assert opened.ok, opened.response
    view: dict[str, Any] = opened.args["view"]
    assert view["callback_id"] == View.FULL_MESSAGE
    return view


def _shown_text(view: dict[str, Any]) -> str:
    return "".join(
        block["text"]["text"]
        for block in view["blocks"]
        if block["type"] == "section" and block["text"]["type"] == "plain_text"
    )


async def test_dm_quotes_the_new_text_and_the_button_shows_the_whole_mail(
    mail: MailDocket,
) -> None:
    ticket = await _assigned_ticket(mail)
    await mail.send(_html_reply(ticket.number, "The cable was loose, fixed now.", HISTORY))
    await mail.settled(2)
    dm = await _dm(mail, "The cable was loose")
    assert HISTORY not in str(dm.args["blocks"])  # the DM quotes only the new text
    view = await _press(mail, dm)
    shown = _shown_text(view)
    assert "The cable was loose, fixed now." in shown
    assert HISTORY in shown and "Agnes" in shown  # the quoted history is all there
    assert "not shown" not in str(view["blocks"])


async def test_an_over_long_mail_stays_within_slacks_limits(mail: MailDocket) -> None:
    ticket = await _assigned_ticket(mail)
    log = "".join(f"> Line {i:06d} of the log the customer pasted before.\n" for i in range(6_000))
    body = f"Log attached below.\n\nOn Mon, 3 Mar 2025, Agnes <support@example.com> wrote:\n{log}"
    assert len(body) > 300_000
    await mail.send(
        build_mail(sender="alice@acme.test", subject=f"Re: [#{ticket.number}] x", body=body)
    )
    await mail.settled(2)
    dm = await _dm(mail, "Log attached below.")
    view = await _press(mail, dm)  # the emulator refuses a view over Slack's limits
    assert len(view["blocks"]) <= 100
    sections = [b for b in view["blocks"] if b["type"] == "section"]
    assert len(sections) > 50 and all(len(b["text"]["text"]) <= 3000 for b in sections)
    shown = _shown_text(view)
    assert shown.startswith("Log attached below.")
    assert "> Line 000000" in shown and "> Line 003000" in shown
    assert "longer than Docket keeps" in str(view["blocks"][-1])


async def test_someone_outside_the_team_cannot_open_it(mail: MailDocket) -> None:
    ticket = await _assigned_ticket(mail)
    await mail.send(_html_reply(ticket.number, "Secret details here.", HISTORY))
    await mail.settled(2)
    dm = await _dm(mail, "Secret details")
    async with mail.docket.services.transaction() as session:
        member = (await session.exec(select(Member).where(Member.slack_user_id == AGENT))).one()
        member.active = False
        session.add(member)
    [button] = [
        e
        for b in dm.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == Action.SHOW_FULL_MESSAGE
    ]
    mail.emulator.clear()
    answer = await mail.docket.interact(
        mail.docket.requests.block_actions(
            Action.SHOW_FULL_MESSAGE,
            button["value"],
            user_id=AGENT,
            response_url=mail.emulator.response_url("denied"),
        )
    )
    assert answer.status == 200
    said = await mail.emulator.wait_for(lambda c: c.method == "response_url")
    assert "support team" in str(said.args)
    assert not mail.emulator.calls_to("views.open")
