"""A ticket and its notification are one fact, whatever statement fails.

A fault is injected at a random point of the write path: a listener on the engine raises at
the k-th statement (or at the commit) of one operation, k random. The operations are the real
handler paths: `/ticket <title>` in a customer's channel, the ticket modal with an assignee
(ticket, announcement and DM to the assignee), and the mail worker processing a customer's
reply (reply event, DM to the assignee, copy in the card's thread) or a new customer mail.
Afterwards the database must hold no ticket without its outbox rows and no outbox row without
its ticket or reply, and what the person was told must match what was stored. Mail that failed
is then processed again without faults: each lands exactly once.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.services import Services
from handlers.blocks.tickets import Field, FormMeta
from handlers.respond import SORRY
from handlers.ticket_command import handle_ticket_command
from handlers.ticket_form import handle_ticket_submission
from handlers.ticket_notifications import SlackHooks
from jobs.mail import process_one
from models.inbound_store import PROCESSED, RECEIVED, store_received
from models.tables import Contact, Customer, EmailMessage, Member, Role, Workspace
from tests.conftest import make_settings
from tests.smtp_sink import build_mail

pytestmark = pytest.mark.slow

RUNS = 1000
SUPPORT = "support@example.com"
AGENT, ASSIGNEE = "UAGENT", "UBOB"


class InjectedFault(Exception):
    """The failure the fault listener raises."""


@dataclass
class Faults:
    """Counts statements and commits on an engine; raises at the `k`-th while armed."""

    k: int | None = None
    counting: bool = False
    seen: int = 0
    fired: str | None = None

    def arm(self, k: int | None) -> None:
        """Count from zero; raise at the k-th (None: count only)."""
        self.k, self.counting, self.seen, self.fired = k, True, 0, None

    def disarm(self) -> None:
        self.k, self.counting = None, False

    def _tick(self, what: str) -> None:
        if not self.counting:
            return
        self.seen += 1
        if self.seen == self.k:
            self.fired = what
            raise InjectedFault(f"fault at statement {self.k}: {what}")

    def before_cursor_execute(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._tick(" ".join(statement.split()[:3]))

    def commit(self, _conn: Any) -> None:
        self._tick("COMMIT")

    def install(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self.before_cursor_execute)
        event.listen(engine.sync_engine, "commit", self.commit)

    def remove(self, engine: AsyncEngine) -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", self.before_cursor_execute)
        event.remove(engine.sync_engine, "commit", self.commit)


class FakeSlack:
    """Stands in for the Web API client: records calls, answers ok."""

    token = "xoxb-test-token"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append((method, kwargs))
            return {"ok": True, "view": {"id": "V1", "hash": "h"}}

        return call


@dataclass
class Recorder:
    """An ack or respond that keeps what it was given."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@dataclass
class World:
    services: Services
    engine: AsyncEngine
    customer_id: int
    contact_id: int


@pytest.fixture
async def world(services: Services, engine: AsyncEngine) -> World:
    services.settings = make_settings(
        docket_support_address=SUPPORT,
        # Many replies reach one sender's tickets here; none may be folded into a digest.
        docket_fold_updates=100_000,
    )
    services.slack = FakeSlack()  # type: ignore[assignment]
    async with services.transaction() as session:
        customer = Customer(
            workspace_id=services.workspace_id,
            name="Acme",
            email_domains="acme.test",
            slack_channel="CACME",
        )
        session.add(customer)
        await session.flush()
        assert customer.id is not None
        contact = Contact(
            workspace_id=services.workspace_id,
            customer_id=customer.id,
            email="alice@acme.test",
            name="Alice",
        )
        session.add(contact)
        for slack_id, name in ((AGENT, "Agnes"), (ASSIGNEE, "Bob")):
            session.add(
                Member(
                    workspace_id=services.workspace_id,
                    slack_user_id=slack_id,
                    name=name,
                    role=Role.AGENT,
                )
            )
        await session.flush()
        assert contact.id is not None
    return World(services, engine, customer.id, contact.id)


async def _count(w: World, table: str, where: str = "1=1", **params: Any) -> int:
    async with w.engine.connect() as conn:
        result = await conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
        return int(result.scalar_one())


# -- the operations ----------------------------------------------------------------------


async def quick_create(w: World, run: int) -> bool | None:
    """`/ticket <title>` in the customer's channel; True when the person was shown a card."""
    respond = Recorder()
    command = {
        "text": f"Printer jammed {run}",
        "user_id": AGENT,
        "user_name": "agnes",
        "channel_id": "CACME",
        "trigger_id": "T-1",
    }
    await handle_ticket_command(
        Recorder(),  # type: ignore[arg-type]
        command,
        respond,  # type: ignore[arg-type]
        w.services.slack,
        w.services,
    )
    [answer] = respond.calls
    return answer.get("text") != SORRY


async def modal_create(w: World, run: int, *, contact: bool = False) -> bool | None:
    """The ticket modal, assigned to someone else: True when the modal said "created"."""
    values: dict[str, Any] = {
        Field.TITLE: {"title_input": {"type": "plain_text_input", "value": f"VPN down {run}"}},
        Field.ASSIGNEE: {"assignee_input": {"type": "users_select", "selected_user": ASSIGNEE}},
        Field.CUSTOMER: {
            "customer_input": {
                "type": "external_select",
                "selected_option": {"value": str(w.customer_id), "text": {"text": "Acme"}},
            }
        },
    }
    if contact:
        values[f"{Field.CONTACT}-{w.customer_id}"] = {
            "contact_input": {
                "type": "static_select",
                "selected_option": {"value": str(w.contact_id)},
            }
        }
    view = {"state": {"values": values}, "private_metadata": FormMeta().encode(), "id": "V1"}
    body = {"user": {"id": AGENT, "name": "agnes"}, "view": view}
    ack = Recorder()
    await handle_ticket_submission(ack, body, view, w.services.slack, w.services)  # type: ignore[arg-type]
    [answer] = ack.calls
    return answer.get("response_action") == "update"


async def store_mail(w: World, raw: bytes) -> int:
    async with w.services.transaction() as session:
        return await store_received(
            session=session,
            workspace_id=w.services.workspace_id,
            raw=raw,
            envelope_from="alice@acme.test",
            envelope_to=[SUPPORT],
            at=w.services.now(),
        )


async def claim(w: World, email_id: int) -> None:
    """Take the mail as the worker's claim would (attempts counted, lease set)."""
    async with w.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE email_message SET attempts = attempts + 1 WHERE id = :id"),
            {"id": email_id},
        )


# -- the invariants ----------------------------------------------------------------------

_TICKET_KEY = re.compile(r"^ticket:(\d+):")
_REPLY_KEY = re.compile(r"^notify:reply:(\d+):")


async def violations(w: World) -> list[str]:
    """Everything that breaks "a ticket and its notifications are one fact"."""
    async with w.engine.connect() as conn:
        tickets = {
            row.id: row
            for row in (
                await conn.execute(
                    sa.text("SELECT id, number, assignee_id, created_by_id FROM ticket")
                )
            ).all()
        }
        created = Counter(
            row[0]
            for row in (
                await conn.execute(
                    sa.text("SELECT ticket_id FROM ticket_event WHERE kind = 'created'")
                )
            ).all()
        )
        replies = {
            row[0]: row[1]
            for row in (
                await conn.execute(
                    sa.text("SELECT id, ticket_id FROM ticket_event WHERE kind = 'customer_reply'")
                )
            ).all()
        }
        keys = {
            row[0]
            for row in (await conn.execute(sa.text("SELECT idempotency_key FROM outbox_message")))
        }
        members: dict[int, str] = dict(
            (await conn.execute(sa.text("SELECT id, slack_user_id FROM member"))).all()
        )
    problems: list[str] = []
    for ticket_id, row in tickets.items():
        if created[ticket_id] != 1:
            problems.append(f"ticket {ticket_id} has {created[ticket_id]} 'created' events")
        if f"ticket:{ticket_id}:announce" not in keys:
            problems.append(f"ticket {ticket_id} has no announcement")
        if row.assignee_id is not None and row.assignee_id != row.created_by_id:
            dm = f"ticket:{ticket_id}:v1:dm:{members[row.assignee_id]}"
            if dm not in keys:
                problems.append(f"ticket {ticket_id} has no DM to its assignee")
    for event_id, ticket_id in replies.items():
        for suffix in ("dm", "thread"):
            if f"notify:reply:{event_id}:{suffix}" not in keys:
                problems.append(f"reply {event_id} on ticket {ticket_id} has no {suffix} row")
    for key in keys:
        if (match := _TICKET_KEY.match(key)) and int(match.group(1)) not in tickets:
            problems.append(f"outbox row {key} has no ticket")
        if (match := _REPLY_KEY.match(key)) and int(match.group(1)) not in replies:
            problems.append(f"outbox row {key} has no reply")
    return problems


# -- the test ------------------------------------------------------------------------------


async def test_faults_at_random_statements_never_split_a_ticket_from_its_notifications(
    world: World, engine: AsyncEngine, backend: str
) -> None:
    w = world
    rng = random.Random(20261127)
    faults = Faults()
    runs = RUNS
    # One ticket that customers answer by mail: assigned, with the contact as requester.
    assert await modal_create(w, 0, contact=True)
    async with w.services.read() as session:
        ws = await session.get(Workspace, w.services.workspace_id)
        assert ws is not None
    reply_number = 1

    operations = ("quick", "modal", "reply", "new-mail")
    # Statements each operation makes when nothing fails (measured: k is drawn up to this).
    longest: dict[str, int] = {}
    fired: Counter[str] = Counter()
    told_vs_stored: list[str] = []
    stored_mail: dict[int, str] = {}
    faults.install(engine)
    started = time.monotonic()
    try:
        for run in range(1, runs + 1):
            op = operations[run % len(operations)]
            if op in ("reply", "new-mail"):
                subject = (
                    f"Re: [#{reply_number}] still broken {run}" if op == "reply" else f"New {run}"
                )
                email_id = await store_mail(
                    w, build_mail(sender="Alice <alice@acme.test>", to=SUPPORT, subject=subject)
                )
                stored_mail[email_id] = op
                await claim(w, email_id)
            k = rng.randint(1, longest[op] + 1) if op in longest else None
            tickets_before = await _count(w, "ticket")
            faults.arm(k)
            if op == "quick":
                told: bool | None = await quick_create(w, run)
            elif op == "modal":
                told = await modal_create(w, run)
            else:
                await process_one(w.services, email_id, hooks=SlackHooks(w.services))
                told = None
            seen, what = faults.seen, faults.fired
            faults.disarm()
            if k is None:
                longest[op] = seen
            elif what is not None:
                fired[op] += 1
            tickets_after = await _count(w, "ticket")
            if told is not None and told != (tickets_after == tickets_before + 1):
                told_vs_stored.append(f"run {run} ({op}, fault {what}): told {told}")
            if run % 50 == 0:
                assert await violations(w) == [], f"after run {run}"
    finally:
        faults.remove(engine)
    elapsed = time.monotonic() - started

    assert told_vs_stored == []
    assert await violations(w) == []
    # Most runs really failed part-way (k can land past the operation's last statement).
    assert sum(fired.values()) >= runs * 0.8, fired
    assert set(fired) == set(operations), fired

    # Mail that failed is still stored; processed again without faults, each lands once.
    failed = [
        i
        for i in stored_mail
        if await _count(w, "email_message", "id = :id AND status = :s", id=i, s=RECEIVED)
    ]
    assert failed, "no mail processing failed"
    for email_id in failed:
        await process_one(w.services, email_id, hooks=SlackHooks(w.services))
    assert await violations(w) == []
    async with w.services.read() as session:
        rows = (
            await session.exec(select(EmailMessage).where(EmailMessage.direction == "in"))
        ).all()
    for row in rows:
        assert row.status == PROCESSED, (row.id, row.status, row.outcome)
    for email_id, op in stored_mail.items():
        landed = await _count(w, "ticket_event", "email_id = :id", id=email_id)
        opened = await _count(
            w, "email_message m JOIN ticket t ON t.id = m.ticket_id", "m.id = :id", id=email_id
        )
        assert opened == 1, (email_id, op)
        if op == "reply":
            assert landed == 1, (email_id, landed)
    print(
        f"\n{runs} runs on {backend} in {elapsed:.1f} s; faults fired: {dict(fired)}; "
        f"statements per operation: {longest}; mail retried: {len(failed)}"
    )
