"""Time entries: refusals, who may change what, ticket attribution and stale marks."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from models.tables import ContractKind, Role, StalePeriod, TicketEvent, TimeEntry, Workspace
from models.timelog import TimeRefused, refusal, retarget_ticket_time
from tests.models.profit_world import TODAY, World

# ---------------------------------------------------------------------------------------
# The pure refusal rule
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "day", "other", "reason"),
    [
        (0, TODAY, 0, "more than zero"),
        (-30, TODAY, 0, "more than zero"),
        (30, date(2025, 6, 21), 0, "in the future"),
        (61, TODAY, 1380, "more than 24h"),  # 23 h already
        (30, TODAY, 1410, None),  # exactly 24 h is allowed
        (30, date(2020, 1, 1), 0, None),
    ],
)
def test_refusal(minutes: int, day: date, other: int, reason: str | None) -> None:
    found = refusal(minutes=minutes, work_date=day, today=TODAY, other_minutes_that_day=other)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_the_day_refusal_shows_the_total() -> None:
    text = refusal(minutes=120, work_date=TODAY, today=TODAY, other_minutes_that_day=1380)
    assert text is not None and "25h" in text and "23h" in text


# ---------------------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def w(engine: AsyncEngine, workspace: Workspace) -> World:
    assert workspace.id is not None
    return World(engine, workspace.id)


async def _stale(w: World) -> set[tuple[int | None, str, date]]:
    async with w.sessions() as s:
        rows = (await s.exec(select(StalePeriod))).all()
    return {(r.customer_id, r.period_kind, r.period_start) for r in rows}


async def _clear_stale(w: World) -> None:
    async with w.sessions() as s, s.begin():
        await s.execute(sa.delete(StalePeriod))


async def test_more_than_a_day_in_one_day_is_refused(w: World) -> None:
    alice = await w.member("Alice")
    await w.log(alice, 600, TODAY)
    await w.log(alice, 600, TODAY)
    with pytest.raises(TimeRefused, match="more than 24h"):
        await w.log(alice, 241, TODAY)
    await w.log(alice, 240, TODAY)  # exactly 24 h
    other = await w.member("Bob")
    await w.log(other, 600, TODAY)  # per person


async def test_future_and_zero_are_refused(w: World) -> None:
    alice = await w.member("Alice")
    with pytest.raises(TimeRefused, match="future"):
        await w.log(alice, 30, date(2025, 6, 21))
    with pytest.raises(TimeRefused, match="more than zero"):
        await w.log(alice, 0, TODAY)
    async with w.sessions() as s:
        assert (await s.exec(select(TimeEntry))).all() == []


async def test_an_edit_counts_the_entry_once(w: World) -> None:
    alice = await w.member("Alice")
    entry = await w.log(alice, 1200, TODAY)
    await w.edit(alice, entry, minutes=1440)  # replaces its own 20 h
    with pytest.raises(TimeRefused, match="more than 24h"):
        await w.edit(alice, entry, minutes=1441)
    with pytest.raises(TimeRefused, match="future"):
        await w.edit(alice, entry, work_date=date(2025, 7, 1))


async def test_people_change_their_own_time_and_managers_anyone_s(w: World) -> None:
    alice = await w.member("Alice")
    bob = await w.member("Bob")
    boss = await w.member("Boss", role=Role.MANAGER)
    entry = await w.log(alice, 60, TODAY)
    with pytest.raises(TimeRefused, match="someone else's"):
        await w.edit(bob, entry, minutes=30)
    with pytest.raises(TimeRefused, match="someone else's"):
        await w.delete(bob, entry)
    await w.edit(boss, entry, minutes=30)
    await w.delete(boss, entry)
    with pytest.raises(TimeRefused, match="no time entry"):
        await w.delete(alice, entry)


async def test_time_on_a_ticket_takes_its_customer_and_contract(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    other = await w.customer("Other")
    support = await w.contract(acme, "Support", ContractKind.HOURLY, date(2025, 1, 1))
    ticket = await w.ticket(123, acme, support)
    entry_id = await w.log(alice, 90, TODAY, ticket_id=ticket, customer_id=other)
    async with w.sessions() as s:
        entry = await s.get(TimeEntry, entry_id)
        assert entry is not None
        assert (entry.customer_id, entry.contract_id, entry.ticket_id) == (acme, support, ticket)
        (event,) = (await s.exec(select(TicketEvent))).all()
        assert event.kind == "time_logged" and event.data["minutes"] == 90
        assert event.body == "Logged 1h30 on 2025-06-20"


async def test_a_contract_brings_its_customer(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    other = await w.customer("Other")
    support = await w.contract(acme, "Support", ContractKind.HOURLY, date(2025, 1, 1))
    entry_id = await w.log(alice, 30, TODAY, contract_id=support)
    async with w.sessions() as s:
        entry = await s.get(TimeEntry, entry_id)
        assert entry is not None and entry.customer_id == acme
    with pytest.raises(TimeRefused, match="another customer"):
        await w.log(alice, 30, TODAY, customer_id=other, contract_id=support)


async def test_moving_an_entry_marks_both_weeks_and_months(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    entry = await w.log(alice, 30, date(2025, 5, 30), customer_id=acme)
    assert await _stale(w) == {
        (acme, "week", date(2025, 5, 26)),
        (acme, "month", date(2025, 5, 1)),
    }
    await _clear_stale(w)
    await w.edit(alice, entry, work_date=date(2025, 6, 2))
    assert await _stale(w) == {
        (acme, "week", date(2025, 5, 26)),
        (acme, "month", date(2025, 5, 1)),
        (acme, "week", date(2025, 6, 2)),
        (acme, "month", date(2025, 6, 1)),
    }


async def test_late_block_time_marks_every_later_period_with_time(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    block = await w.contract(
        acme,
        "Block",
        ContractKind.BLOCK,
        date(2025, 1, 1),
        block_minutes=600,
        block_price_minor=100000,
    )
    await w.log(alice, 60, date(2025, 6, 18), contract_id=block)
    await _clear_stale(w)
    await w.log(alice, 60, date(2025, 4, 10), contract_id=block)
    assert await _stale(w) == {
        (acme, "week", date(2025, 4, 7)),
        (acme, "month", date(2025, 4, 1)),
        (acme, "week", date(2025, 6, 16)),
        (acme, "month", date(2025, 6, 1)),
    }


async def test_internal_time_is_marked_and_refreshed_without_a_customer(w: World) -> None:
    alice = await w.member("Alice")
    await w.cost_rate(3000, date(2025, 1, 1))  # the workspace default
    await w.log(alice, 60, TODAY)
    await w.log(alice, 30, TODAY)
    assert {(c, k) for c, k, _ in await _stale(w)} == {(None, "week"), (None, "month")}
    await w.refresh()
    assert await w.stale() == 0
    (line,) = (await w.report("2025-06")).customers
    assert (line.customer_id, line.figures.minutes, line.figures.labour_cost_60) == (
        None,
        90,
        90 * 3000,
    )


async def test_a_group_move_marks_the_member_s_time_when_it_becomes_costed(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    await w.log(alice, 60, date(2025, 3, 3), customer_id=acme)
    await _clear_stale(w)
    await w.member("Alice", group="juniors")  # no rate there either: nothing changes
    assert await _stale(w) == set()
    await w.member("Sam", group="seniors")
    await w.cost_rate(5000, date(2025, 1, 1), group_id=await w.group_id("seniors"))
    await w.member("Alice", group="seniors")  # uncosted -> costed: recomputed
    assert await _stale(w) == {
        (acme, "week", date(2025, 3, 3)),
        (acme, "month", date(2025, 3, 1)),
    }


async def test_a_ticket_moved_to_another_customer_takes_its_time_along(w: World) -> None:
    alice = await w.member("Alice")
    acme = await w.customer("Acme")
    beta = await w.customer("Beta")
    support = await w.contract(beta, "Support", ContractKind.HOURLY, date(2025, 1, 1))
    ticket = await w.ticket(5, acme, None)
    await w.log(alice, 30, date(2025, 6, 2), ticket_id=ticket)
    await w.log(alice, 30, date(2025, 6, 3), ticket_id=ticket)
    await _clear_stale(w)
    async with w.sessions() as s, s.begin():
        moved = await retarget_ticket_time(
            session=s,
            workspace_id=w.ws,
            ticket_id=ticket,
            customer_id=None,
            contract_id=support,
            at=w.at,
        )
    assert moved == 2
    async with w.sessions() as s:
        entries = (await s.exec(select(TimeEntry))).all()
    assert {(e.customer_id, e.contract_id) for e in entries} == {(beta, support)}
    assert await _stale(w) == {
        (c, kind, start)
        for c in (acme, beta)
        for kind, start in (("week", date(2025, 6, 2)), ("month", date(2025, 6, 1)))
    }
