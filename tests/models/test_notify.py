"""Customer-reply notifications: who hears, and how bursts fold into one digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.db import make_sessionmaker
from models.notify import (
    Audience,
    ReplyNotice,
    ReplyRenderers,
    admin_slack_ids,
    digest_ordering_key,
    notify_customer_reply,
    ordering_key,
    should_fold,
    unreachable_reason,
)
from models.outbox import LANE_DM
from models.tables import (
    Customer,
    EventKind,
    Member,
    OutboxMessage,
    OutboxStatus,
    Role,
    Ticket,
    TicketEvent,
    Workspace,
)
from tests.jobs.outbox_support import make_member, make_ticket

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
FOLD_UPDATES = 3
FOLD_MINUTES = 10


def _render() -> ReplyRenderers:
    """Renderers that keep the facts visible to assertions."""
    return ReplyRenderers(
        dm=lambda n: {"text": f"dm #{n.ticket_number}: {n.text}"},
        thread=lambda n, ask: {"text": f"thread{' ask' if ask else ''}: {n.text}"},
        triage=lambda n, reason: {"text": f"triage ({reason}): {n.text}"},
        digest=lambda n, count, minutes: {"text": f"digest {count} in {minutes}: {n.text}"},
    )


@pytest.mark.parametrize(
    ("recent", "digest_open", "fold"),
    [(1, False, False), (3, False, False), (4, False, True), (1, True, True), (9, True, True)],
)
def test_fold_after_n_updates_or_while_a_digest_collects(
    recent: int, digest_open: bool, fold: bool
) -> None:
    assert should_fold(recent_replies=recent, fold_updates=3, digest_open=digest_open) is fold


def test_unreachable_reasons() -> None:
    active = Member(workspace_id=1, slack_user_id="U1", name="Ann")
    assert unreachable_reason(active) is None
    assert "deactivated" in (
        unreachable_reason(Member(workspace_id=1, name="Bo", active=False)) or ""
    )
    assert "no Slack account" in (unreachable_reason(Member(workspace_id=1, name="Cy")) or "")
    assert "no longer" in (unreachable_reason(None) or "")


class World:
    """A workspace with a customer, an assignee and a ticket; replies are added one by one."""

    def __init__(self, sessions: Any, workspace: Workspace) -> None:
        self.sessions = sessions
        assert workspace.id is not None
        self.workspace_id = workspace.id
        self.ticket_id = 0

    async def setup(self, *, assignee: str | None = "UASSIGNEE", active: bool = True) -> None:
        async with self.sessions() as session, session.begin():
            customer = Customer(workspace_id=self.workspace_id, name="Acme")
            session.add(customer)
            await session.flush()
            member = None
            if assignee is not None:
                member = await make_member(
                    session, self.workspace_id, assignee, name="Ann", active=active
                )
            ticket = await make_ticket(
                session, self.workspace_id, 12, assignee=member, customer=customer
            )
            assert ticket.id is not None
            self.ticket_id = ticket.id

    async def reply(self, text: str, at: datetime, *, again: int | None = None) -> Any:
        """Write a customer reply (or reuse event `again`) and notify, like the mail code."""
        async with self.sessions() as session, session.begin():
            ticket = await session.get(Ticket, self.ticket_id)
            assert ticket is not None
            if again is None:
                event = TicketEvent(
                    workspace_id=self.workspace_id,
                    ticket_id=self.ticket_id,
                    kind=EventKind.CUSTOMER_REPLY,
                    body=text,
                    created_at=at,
                )
                session.add(event)
                await session.flush()
            else:
                event = await session.get(TicketEvent, again)
                assert event is not None
            plan = await notify_customer_reply(
                session=session,
                workspace_id=self.workspace_id,
                ticket=ticket,
                event=event,
                text=text,
                at=at,
                fold_updates=FOLD_UPDATES,
                fold_minutes=FOLD_MINUTES,
                render=_render(),
            )
            return plan

    async def outbox(self) -> list[OutboxMessage]:
        async with self.sessions() as session:
            stmt = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            return list((await session.exec(stmt)).all())

    async def events(self) -> int:
        async with self.sessions() as session:
            stmt = sa.select(sa.func.count()).select_from(TicketEvent)
            return int((await session.execute(stmt)).scalar_one())


@pytest.fixture
async def world(engine: AsyncEngine, workspace: Workspace) -> World:
    return World(make_sessionmaker(engine), workspace)


def _dms(rows: list[OutboxMessage]) -> list[OutboxMessage]:
    return [r for r in rows if r.idempotency_key.endswith(":dm")]


async def test_assigned_reply_queues_a_dm_with_only_the_new_text_and_a_thread_copy(
    world: World,
) -> None:
    await world.setup()
    plan = await world.reply("The printer is on fire now", T0)
    assert plan.audience is Audience.ASSIGNEE and plan.dm and plan.digest is None
    rows = await world.outbox()
    assert [r.idempotency_key.rsplit(":", 1)[1] for r in rows] == ["dm", "thread"]
    dm, thread = rows
    assert dm.payload["method"] == "chat.postMessage"
    assert dm.payload["args"] == {
        "channel": "UASSIGNEE",
        "text": "dm #12: The printer is on fire now",
    }
    assert thread.payload["thread_of_ticket"] == world.ticket_id
    assert "channel" not in thread.payload["args"]  # filled in from the card at delivery
    # The DM waits only behind the person's earlier DMs, never behind the ticket's card.
    assert thread.ordering_key == ordering_key(world.ticket_id)
    assert dm.ordering_key == "dm:UASSIGNEE" and dm.lane == LANE_DM < thread.lane


async def test_notifying_the_same_reply_twice_queues_nothing_new(world: World) -> None:
    await world.setup()
    await world.reply("hello", T0)
    first = await world.outbox()
    event_id = int(first[0].idempotency_key.split(":")[2])
    await world.reply("hello", T0, again=event_id)
    assert [r.id for r in await world.outbox()] == [r.id for r in first]


async def test_unassigned_reply_asks_in_the_thread_who_takes_it(world: World) -> None:
    await world.setup(assignee=None)
    plan = await world.reply("anyone?", T0)
    assert plan.audience is Audience.UNASSIGNED and not plan.dm
    rows = await world.outbox()
    assert len(rows) == 1
    assert rows[0].payload["args"]["text"] == "thread ask: anyone?"
    assert rows[0].payload["thread_of_ticket"] == world.ticket_id


async def test_deactivated_assignee_sends_the_reply_to_triage(world: World) -> None:
    await world.setup(active=False)
    plan = await world.reply("hello?", T0)
    assert plan.audience is Audience.UNREACHABLE and not plan.dm
    rows = await world.outbox()
    triage = [r for r in rows if r.idempotency_key.endswith(":triage")]
    assert len(triage) == 1
    assert triage[0].payload["args"]["channel"] == "CTRIAGE"
    assert "Ann is deactivated" in triage[0].payload["args"]["text"]
    assert not _dms(rows)


async def test_a_burst_folds_into_one_digest_due_at_the_window_end(world: World) -> None:
    await world.setup()
    for i in range(6):
        await world.reply(f"reply {i}", T0 + timedelta(minutes=i))
    rows = await world.outbox()
    # The first three are DMed one by one; the other three fold into one digest.
    assert [r.payload["args"]["text"] for r in _dms(rows)] == [
        "dm #12: reply 0",
        "dm #12: reply 1",
        "dm #12: reply 2",
    ]
    digests = [r for r in rows if r.ordering_key == digest_ordering_key(world.ticket_id)]
    assert len(digests) == 1
    digest = digests[0]
    assert digest.payload["args"]["text"] == "digest 3 in 10: reply 5"
    assert digest.payload["args"]["channel"] == "UASSIGNEE"
    assert digest.next_attempt_at == T0 + timedelta(minutes=3 + FOLD_MINUTES)
    # Nothing is dropped: every reply is in the history and gets its thread copy.
    assert await world.events() == 6
    assert len([r for r in rows if r.idempotency_key.endswith(":thread")]) == 6


async def test_refolding_the_same_reply_does_not_grow_the_count(world: World) -> None:
    await world.setup()
    for i in range(5):
        await world.reply(f"reply {i}", T0 + timedelta(seconds=i))
    digest = next(
        r for r in await world.outbox() if r.ordering_key and r.ordering_key.endswith("digest")
    )
    last_event = digest.payload["digest"]["event_ids"][-1]
    await world.reply("reply 4", T0 + timedelta(seconds=4), again=last_event)
    again = next(r for r in await world.outbox() if r.id == digest.id)
    assert again.payload["args"]["text"] == "digest 2 in 10: reply 4"


async def test_after_the_window_replies_are_dmed_again(world: World) -> None:
    await world.setup()
    for i in range(4):
        await world.reply(f"burst {i}", T0 + timedelta(minutes=i))
    await world.reply("much later", T0 + timedelta(minutes=45))
    dms = _dms(await world.outbox())
    assert dms[-1].payload["args"]["text"] == "dm #12: much later"
    assert len(dms) == 4


async def test_a_digest_already_on_its_way_starts_a_new_one(world: World) -> None:
    await world.setup()
    for i in range(4):
        await world.reply(f"burst {i}", T0 + timedelta(minutes=i))
    async with world.sessions() as session, session.begin():
        digest = (
            await session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.ordering_key == digest_ordering_key(world.ticket_id)
                )
            )
        ).one()
        digest.lease_owner, digest.lease_until = "w", T0 + timedelta(hours=1)
        session.add(digest)
    await world.reply("burst 4", T0 + timedelta(minutes=4))
    rows = await world.outbox()
    digests = [r for r in rows if r.ordering_key == digest_ordering_key(world.ticket_id)]
    assert [d.payload["args"]["text"] for d in digests] == [
        "digest 1 in 10: burst 3",
        "digest 1 in 10: burst 4",
    ]


async def test_admins_come_from_roles_and_settings(
    engine: AsyncEngine, workspace: Workspace
) -> None:
    assert workspace.id is not None
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await make_member(session, workspace.id, "UADMIN1", role=Role.ADMIN)
        await make_member(session, workspace.id, "UADMIN2", role=Role.ADMIN, active=False)
        await make_member(session, workspace.id, "UAGENT", role=Role.AGENT)
    async with sessions() as session:
        found = await admin_slack_ids(
            session=session, workspace_id=workspace.id, extra=["UENV", "UADMIN1"]
        )
    assert found == ["UADMIN1", "UENV"]


def test_notice_defaults_are_plain_values() -> None:
    notice = ReplyNotice(1, 2, "t", "Acme", "x", 3, T0)
    assert notice.status == "open" and notice.assignee_slack_id is None


async def test_outbox_rows_stay_pending_for_the_worker(world: World) -> None:
    await world.setup()
    await world.reply("x", T0)
    assert {r.status for r in await world.outbox()} == {OutboxStatus.PENDING}
