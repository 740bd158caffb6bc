"""The Slack directory sync: pure rules, and end to end against the emulator (paging, a 429)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from jobs.directory_sync import seconds_until_next, sync_slack_users
from models.outbox import SLACK
from models.slack_directory import SlackUser, is_colleague, parse_user, reassignment_text
from models.tables import Member, OutboxMessage, Role, Ticket, TicketStatus

TEAM = "T0001"


@pytest.mark.parametrize(
    ("user", "colleague"),
    [
        (SlackUser("U1", TEAM, "Ann", "ann@p.test", False, False, False), True),
        (SlackUser("U2", "TOTHER", "Ext", "ext@c.test", False, False, False), False),
        (SlackUser("U3", TEAM, "Ext", "ext@c.test", False, False, True), False),
        (SlackUser("B1", TEAM, "Bot", None, False, True, False), False),
    ],
)
def test_only_our_team_counts(user: SlackUser, colleague: bool) -> None:
    assert is_colleague(user, TEAM) is colleague


def test_parse_user_and_text() -> None:
    user = parse_user(
        {
            "id": "U1",
            "team_id": TEAM,
            "deleted": True,
            "updated": 17,
            "profile": {"real_name": " Ann  Lee ", "email": "Ann@P.test"},
        }
    )
    assert user == SlackUser("U1", TEAM, "Ann Lee", "ann@p.test", True, False, False, 17)
    assert parse_user({"id": "USLACKBOT"}).is_bot  # type: ignore[union-attr]
    assert parse_user({}) is None
    text = reassignment_text("Ann <x>", [(3, "VPN & mail")])
    assert "Ann &lt;x&gt; was deactivated" in text and "• #3 VPN &amp; mail" in text


class _Svc:
    timezone = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        (datetime(2025, 6, 20, 4, 0, tzinfo=UTC), 0.5),  # 06:00 Berlin: 06:30 today
        (datetime(2025, 6, 20, 5, 0, tzinfo=UTC), 23.5),  # 07:00 Berlin: tomorrow
    ],
)
def test_daily_at_half_past_six_local(now: datetime, hours: float) -> None:
    assert seconds_until_next(now, _Svc()) == hours * 3600  # type: ignore[arg-type]


async def _member(s: Any, ws: int, slack: str | None, email: str, name: str) -> Member:
    member = Member(workspace_id=ws, slack_user_id=slack, email=email, name=name, role=Role.MANAGER)
    s.add(member)
    await s.flush()
    return member


@pytest.mark.e2e
async def test_sync_end_to_end_with_paging_and_a_429(docket: Any) -> None:
    emu = docket.emulator
    services = docket.services
    ws = services.workspace_id
    emu.add_user("UALICE", real_name="Alice", email="alice@provider.test", deleted=True)
    emu.add_user("UBOB", real_name="Robert Builder", email="bob@new.test")
    emu.add_user("UCAROL", real_name="Carol", email="carol@provider.test")
    emu.add_user("UDAVE", real_name="Dave", email="dave@provider.test")  # new: not added
    stranger = emu.add_user("UEVE", real_name="Eve", email="eve@customer.test")
    stranger["team_id"], stranger["is_stranger"] = "TCUSTOMER", True
    emu.add_user("UBOTX", real_name="Some bot", is_bot=True)
    async with services.transaction() as s:
        alice = await _member(s, ws, "UALICE", "alice@provider.test", "Alice")
        await _member(s, ws, "UBOB", "bob@provider.test", "Bob")
        await _member(s, ws, None, "carol@provider.test", "Carol C.")
        await _member(s, ws, None, "eve@customer.test", "Eve")
        for number, status in ((1, TicketStatus.OPEN), (2, TicketStatus.WAITING), (3, "closed")):
            s.add(
                Ticket(
                    workspace_id=ws,
                    number=number,
                    title=f"Problem {number}",
                    status=status,
                    assignee_id=alice.id,
                )
            )
    emu.rate_limit_next("users.list", retry_after=1)
    result = await sync_slack_users(services, page_size=2)

    pages = [c for c in emu.calls_to("users.list")]
    assert [c.status for c in pages].count(429) == 1
    assert len([c for c in pages if c.status == 200]) == 4  # 7 users (with the bot) in pages of 2
    assert result.deactivated == ["Alice"] and result.posts == 1
    assert result.linked == ["carol@provider.test"]
    assert result.skipped_external == 1 and result.not_members == 1
    async with services.read() as s:
        members = {
            m.slack_user_id or m.email: (m.name, m.email, m.active, m.role)
            for m in (await s.exec(select(Member).where(Member.workspace_id == ws))).all()
        }
    assert members == {
        "UALICE": ("Alice", "alice@provider.test", False, "manager"),
        "UBOB": ("Robert Builder", "bob@new.test", True, "manager"),
        "UCAROL": ("Carol", "carol@provider.test", True, "manager"),
        "eve@customer.test": ("Eve", "eve@customer.test", True, "manager"),  # never linked
    }
    post = await emu.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args.get("channel") == "CTRIAGE",
        timeout=10,
    )
    assert "Alice was deactivated" in post.args["text"]
    assert "#1 Problem 1" in post.args["text"] and "#2 Problem 2" in post.args["text"]
    assert "#3" not in post.args["text"]

    again = await sync_slack_users(services, page_size=200)
    assert again.deactivated == [] and again.posts == 0 and again.updated == []
    await asyncio.sleep(0.5)
    triage = [
        c
        for c in emu.calls_to("chat.postMessage")
        if c.args.get("channel") == "CTRIAGE" and "deactivated" in c.args.get("text", "")
    ]
    assert len(triage) == 1
    async with services.read() as s:
        rows = (
            await s.exec(
                select(OutboxMessage).where(
                    OutboxMessage.kind == SLACK,
                    col(OutboxMessage.idempotency_key).startswith("member-deactivated:"),
                )
            )
        ).all()
    assert len(rows) == 1


@pytest.mark.e2e
async def test_docket_sync_slack_users_command(
    database_url: str, emulator: Any, tmp_path: Any
) -> None:
    """`docket sync slack-users` in a real process against the emulator."""
    import subprocess

    from tests.bot.test_cli import _clean_env
    from tests.conftest import BOT_TOKEN, SIGNING_SECRET
    from tests.procs import DOCKET

    emulator.add_user("UALICE", real_name="Alice", email="alice@provider.test")
    env = _clean_env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=emulator.api_url,
        DATABASE_URL=database_url,
        DOCKET_LOG_LEVEL="WARNING",
    )
    proc = await asyncio.to_thread(
        subprocess.run,
        [str(DOCKET), "sync", "slack-users"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Slack user(s): 0 deactivated" in proc.stdout
    assert "1 not members (left alone)" in proc.stdout
