"""Forged mail over real SMTP: labelled unverified, never relayed into a customer's channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlmodel import select

from models.tables import Customer, EventKind, Member, Ticket, TicketEvent, TicketStatus
from tests.handlers.test_mail_e2e import AGENT, mail_docket
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import build_mail

pytestmark = pytest.mark.e2e

TRUSTED = "mx.docket.test"


def passed(domain: str, server: str = TRUSTED) -> dict[str, str]:
    return {"Authentication-Results": f"{server}; spf=pass; dmarc=pass header.from={domain}"}


def _posts(emulator: SlackEmulator, channel: str) -> list[str]:
    return [
        json.dumps(c.args)
        for c in emulator.calls_to("chat.postMessage")
        if c.args.get("channel") == channel
    ]


async def _until(check: Any, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met")


async def test_forged_mail_is_labelled_and_never_reaches_the_customers_channel(
    database_url: str, emulator: SlackEmulator
) -> None:
    async with mail_docket(database_url, emulator, docket_mail_trusted_authserv_id=TRUSTED) as mail:
        services = mail.docket.services
        card = emulator.add_message("CACME", "ticket #900 card")
        async with services.transaction() as s:
            acme = await s.get(Customer, mail.customer_id)
            assert acme is not None
            acme.slack_channel = "CACME"
            agent = (await s.exec(select(Member).where(Member.slack_user_id == AGENT))).one()
            s.add(
                Ticket(
                    workspace_id=services.workspace_id,
                    number=900,
                    title="Invoice question",
                    customer_id=acme.id,
                    assignee_id=agent.id,
                    status=TicketStatus.RESOLVED,
                    requester_email="alice@acme.test",
                    card_channel="CACME",
                    card_ts=card["ts"],
                )
            )

        # 1. A forged reply: a contact's From, a guessed tag, and a "pass" from a server we do
        # not trust (anyone can write that header).
        forged = build_mail(
            sender="Alice <alice@acme.test>",
            subject="Re: [#900] Our bank details changed",
            body="Pay all invoices to IBAN XX00 FORGED from today.",
            headers=passed("acme.test", server="mx.evil.test"),
        )
        await mail.send(forged)
        await mail.settled(1)
        dm = await emulator.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args["channel"] == AGENT, timeout=15
        )
        assert "Unverified sender" in json.dumps(dm.args)
        await _until(lambda: any("FORGED" in p for p in _posts(emulator, "CTRIAGE")))
        assert not [p for p in _posts(emulator, "CACME") if "FORGED" in p]
        async with services.read() as s:
            ticket = (await s.exec(select(Ticket).where(Ticket.number == 900))).one()
            reply = (
                await s.exec(
                    select(TicketEvent).where(
                        TicketEvent.ticket_id == ticket.id,
                        TicketEvent.kind == EventKind.CUSTOMER_REPLY,
                    )
                )
            ).one()
        assert reply.data["verified"] is False  # reached the ticket, marked unverified

        # 2. A forged new mail at the customer's domain: a ticket, unverified, card in triage.
        await mail.send(
            build_mail(sender="bob@acme.test", subject="Urgent: new bank", body="FORGED2"),
            sender="bob@acme.test",
        )
        await mail.settled(2)
        async with services.read() as s:
            new = (await s.exec(select(Ticket).where(Ticket.title == "Urgent: new bank"))).one()
        assert new.verified is False
        await _until(lambda: any("Urgent: new bank" in p for p in _posts(emulator, "CTRIAGE")))
        triage_card = next(p for p in _posts(emulator, "CTRIAGE") if "Urgent: new bank" in p)
        assert "Unverified sender" in triage_card
        assert not [p for p in _posts(emulator, "CACME") if "new bank" in p]

        # 3. A forger floods with the contact's address; the contact's authenticated mail with
        # the same subject still opens a ticket and is verified.
        for _ in range(6):
            await mail.send(build_mail(sender="alice@acme.test", subject="Flood", body="x"))
        await mail.send(
            build_mail(
                sender="alice@acme.test",
                subject="Flood",
                body="The real Alice",
                headers=passed("acme.test"),
            )
        )
        rows = await mail.settled(9)
        assert rows[-1].sender_verified is True
        assert "flooding" not in (rows[-1].outcome or "")
        async with services.read() as s:
            real = (
                await s.exec(select(Ticket).where(Ticket.description.contains("The real Alice")))  # type: ignore[attr-defined]
            ).one()
        assert real.verified is True and real.customer_id == mail.customer_id

        # 4. An authenticated reply on #900 is verified, and its copy goes to the card's thread.
        await mail.send(
            build_mail(
                sender="alice@acme.test",
                subject="Re: [#900] Invoice question",
                body="GENUINE answer",
                headers=passed("acme.test"),
            )
        )
        await mail.settled(10)
        await _until(lambda: any("GENUINE" in p for p in _posts(emulator, "CACME")))
