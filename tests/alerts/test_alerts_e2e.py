"""Monitoring alerts end to end: HTTP into the real server, cards checked in the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from models.alerts import create_source
from models.tables import (
    AlertDelivery,
    AlertState,
    Customer,
    EventKind,
    Member,
    Role,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from models.tickets import TicketUpdate, update_ticket
from tests.alerts.support import (
    am_alert,
    am_payload,
    deliveries,
    encode,
    grafana_payload,
    post_alerts,
    wait_processed,
)

pytestmark = pytest.mark.e2e

TRIAGE = "CTRIAGE"


async def setup(docket: Any, **source: Any) -> str:
    """Two customers and a source called prom; returns its secret."""
    services = docket.services
    async with services.transaction() as session:
        for name in ("Acme", "Globex"):
            session.add(Customer(workspace_id=services.workspace_id, name=name))
        created = await create_source(
            session=session,
            workspace_id=services.workspace_id,
            name="prom",
            at=services.now(),
            **source,
        )
    return created.secret


async def tickets(docket: Any) -> list[Ticket]:
    async with docket.services.read() as session:
        rows = await session.exec(select(Ticket).order_by(col(Ticket.number)))
        return list(rows.all())


async def customer_names(docket: Any) -> dict[int, str]:
    async with docket.services.read() as session:
        return {c.id: c.name for c in (await session.exec(select(Customer))).all() if c.id}


def card_posts(docket: Any) -> list[Any]:
    return [
        c
        for c in docket.emulator.calls_to("chat.postMessage")
        if c.args.get("channel") == TRIAGE and c.ok
    ]


def card_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []))


async def test_three_alerts_open_three_cards_and_the_same_payload_again_changes_nothing(
    docket: Any,
) -> None:
    secret = await setup(docket)
    body = am_payload(
        [
            am_alert("DiskFull", "Acme", severity="critical"),
            am_alert("BackupFailed", "Acme", severity="warning"),
            am_alert("HostDown", "Globex", severity="info"),
        ]
    )
    status, answer = await post_alerts(docket.url, body, secret)
    assert (status, answer["alerts"], answer["duplicate"]) == (202, 3, False)
    await wait_processed(docket.services)

    found = await tickets(docket)
    names = await customer_names(docket)
    assert sorted((names[t.customer_id], t.priority) for t in found if t.customer_id) == [
        ("Acme", "normal"),
        ("Acme", "urgent"),
        ("Globex", "low"),
    ]
    assert all(t.status == TicketStatus.NEW and t.card_ts for t in found)
    posts = card_posts(docket)
    assert len(posts) == 3
    assert {p.args["text"].split(":", 1)[0] for p in posts} == {f"Alert #{t.number}" for t in found}
    assert "1* occurrence" in card_text(posts[0].args)

    status, answer = await post_alerts(docket.url, body, secret)
    assert (status, answer["duplicate"]) == (202, True)
    await wait_processed(docket.services)
    assert len(await tickets(docket)) == 3
    assert len(await deliveries(docket.services)) == 1
    assert len(card_posts(docket)) == 3
    assert not [c for c in docket.emulator.calls if not c.ok]


async def test_fifty_repeats_leave_one_ticket_with_51_occurrences_and_one_card(docket: Any) -> None:
    secret = await setup(docket)
    for i in range(51):
        alert = am_alert("DiskFull", "Acme", description=f"disk at {90 + i % 10}% (check {i})")
        status, _ = await post_alerts(docket.url, am_payload([alert]), secret, mode="hmac")
        assert status == 202
    await wait_processed(docket.services)

    [ticket] = await tickets(docket)
    async with docket.services.read() as session:
        [state] = (await session.exec(select(AlertState))).all()
    assert (state.ticket_id, state.occurrences) == (ticket.id, 51)
    assert len(card_posts(docket)) == 1
    updates = [c for c in docket.emulator.calls_to("chat.update") if c.ok]
    assert updates, "the card shows the counter"
    # Refreshes waiting at once were folded: far fewer updates than occurrences.
    assert len(updates) < 51
    [message] = docket.emulator.messages(TRIAGE)
    assert "*51* occurrences" in card_text(message)
    assert "check 50" in card_text(message)


async def test_resolved_alerts_clear_resolve_the_untouched_and_dm_the_assignee(
    docket: Any,
) -> None:
    secret = await setup(docket, auto_resolve=True)
    docket.emulator.add_user("U1", name="alice", real_name="Alice Agent", email="a@p.test")
    firing = [am_alert("DiskFull", "Acme"), am_alert("HostDown", "Globex")]
    assert (await post_alerts(docket.url, am_payload(firing), secret))[0] == 202
    await wait_processed(docket.services)
    untouched, touched = await tickets(docket)

    services = docket.services
    async with services.transaction() as session:
        alice = Member(
            workspace_id=services.workspace_id, slack_user_id="U1", name="Alice", role=Role.AGENT
        )
        session.add(alice)
        await session.flush()
        await update_ticket(
            session=session,
            workspace_id=services.workspace_id,
            ticket_id=touched.id or 0,
            expected_version=touched.version,
            changes=TicketUpdate(assignee_id=alice.id),
            actor=alice,
            at=services.now(),
        )

    resolved = [
        am_alert("DiskFull", "Acme", status="resolved"),
        am_alert("HostDown", "Globex", status="resolved"),
    ]
    assert (await post_alerts(docket.url, am_payload(resolved, status="resolved"), secret))[
        0
    ] == 202
    await wait_processed(docket.services)

    after = {t.id: t for t in await tickets(docket)}
    assert after[untouched.id].status == TicketStatus.RESOLVED
    assert after[touched.id].status == TicketStatus.OPEN
    async with services.read() as session:
        notes = (
            await session.exec(select(TicketEvent).where(TicketEvent.kind == EventKind.NOTE))
        ).all()
    assert sorted(n.ticket_id for n in notes) == sorted([untouched.id, touched.id])
    assert all(n.body.startswith("Cleared:") for n in notes)
    dms = [c for c in docket.emulator.calls_to("chat.postMessage") if c.args["channel"] == "U1"]
    assert len(dms) == 1 and "cleared" in dms[0].args["text"]
    # The same resolved payload again changes nothing.
    assert (await post_alerts(docket.url, am_payload(resolved, status="resolved"), secret))[1][
        "duplicate"
    ]


async def test_a_burst_of_200_alerts_opens_one_storm_ticket_per_customer(docket: Any) -> None:
    secret = await setup(docket)
    burst = [
        am_alert(f"Check{i}", "Acme" if i % 2 else "Globex", instance=f"h{i}") for i in range(200)
    ]
    status, answer = await post_alerts(docket.url, am_payload(burst), secret)
    assert (status, answer["alerts"]) == (202, 200)
    await wait_processed(docket.services)

    found = await tickets(docket)
    names = await customer_names(docket)
    assert sorted(names[t.customer_id] for t in found if t.customer_id) == ["Acme", "Globex"]
    assert len(found) == 2
    assert all(t.title.startswith("Alert storm from prom") for t in found)
    assert len(card_posts(docket)) == 2
    async with docket.services.read() as session:
        members = (
            await session.exec(
                select(AlertState.ticket_id, sa.func.count())
                .where(AlertState.kind == "alert")
                .group_by(col(AlertState.ticket_id))
            )
        ).all()
    assert sorted(n for _, n in members) == [100, 100]
    for message in docket.emulator.messages(TRIAGE):
        assert "100 new alerts" in card_text(message)

    # A further new alert within the minute still folds into the storm.
    more = am_payload([am_alert("Late", "Acme", instance="late")])
    assert (await post_alerts(docket.url, more, secret))[0] == 202
    await wait_processed(docket.services)
    assert len(await tickets(docket)) == 2


async def test_an_alert_for_no_known_customer_opens_an_unassigned_flagged_ticket(
    docket: Any,
) -> None:
    secret = await setup(docket)
    body = am_payload([am_alert("HostDown", "Initech"), am_alert("Ping", None)])
    assert (await post_alerts(docket.url, body, secret))[0] == 202
    await wait_processed(docket.services)
    found = await tickets(docket)
    assert [(t.customer_id, t.assignee_id) for t in found] == [(None, None), (None, None)]
    texts = [card_text(m) for m in docket.emulator.messages(TRIAGE)]
    assert len(texts) == 2 and all("Customer unknown" in t for t in texts)
    assert any("Initech" in t for t in texts)


async def test_grafana_and_generic_bodies_open_tickets_and_severity_rises(docket: Any) -> None:
    secret = await setup(docket)
    assert (await post_alerts(docket.url, grafana_payload("Globex"), secret))[0] == 202
    generic = {
        "title": "Backup failed",
        "severity": "warning",
        "customer": "acme",
        "fingerprint": "backup-acme",
        "status": "firing",
        "details": {"job": "nightly", "exit": 2},
        "url": "https://backup.provider.test/jobs/1",
    }
    assert (await post_alerts(docket.url, generic, secret, mode="hmac"))[0] == 202
    await wait_processed(docket.services)
    grafana, backup = await tickets(docket)
    names = await customer_names(docket)
    assert names[grafana.customer_id or 0] == "Globex"
    assert "44.2" in grafana.description
    assert (names[backup.customer_id or 0], backup.priority) == ("Acme", "normal")

    before = len(docket.emulator.calls_to("chat.postMessage"))
    same = {**generic, "details": "still failing"}
    assert (await post_alerts(docket.url, same, secret))[0] == 202
    await wait_processed(docket.services)
    assert len(docket.emulator.calls_to("chat.postMessage")) == before
    worse = {**generic, "severity": "critical", "details": "failed three nights"}
    assert (await post_alerts(docket.url, worse, secret))[0] == 202
    await wait_processed(docket.services)
    _, backup = await tickets(docket)
    assert backup.priority == "urgent"
    posts = docket.emulator.calls_to("chat.postMessage")
    assert len(posts) == before + 1
    assert posts[-1].args.get("thread_ts") == backup.card_ts
    assert "critical" in posts[-1].args["text"]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("wrong secret", 401),
        ("no credentials", 401),
        ("bad signature", 401),
        ("unknown source", 401),
        ("not json", 400),
        ("no alerts", 400),
        ("bad status", 400),
        ("oversized", 413),
    ],
)
async def test_refused_requests_store_nothing(docket: Any, case: str, status: int) -> None:
    secret = await setup(docket)
    body = encode(am_payload([am_alert("DiskFull", "Acme")]))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
    path = "/integrations/alerts/prom"
    if case == "wrong secret":
        headers["Authorization"] = "Bearer " + "x" * 43
    elif case == "no credentials":
        headers.pop("Authorization")
    elif case == "bad signature":
        headers.pop("Authorization")
        headers["X-Docket-Signature"] = "sha256=" + "0" * 64
    elif case == "unknown source":
        path = "/integrations/alerts/nagios"
    elif case == "not json":
        body = b"{not json"
    elif case == "no alerts":
        body = encode({"version": "4", "alerts": []})
    elif case == "bad status":
        body = encode(am_payload([{**am_alert("X", "Acme"), "status": "exploded"}]))
    elif case == "oversized":
        body = encode({"title": "big", "details": "x" * (1024 * 1024)})
    reply = await docket.send(body, headers, path=path)
    assert reply.status == status, reply.body
    if status == 400:
        assert reply.json()["error"]
    assert await deliveries(docket.services) == []
    async with docket.services.read() as session:
        count = (await session.exec(select(sa.func.count()).select_from(AlertDelivery))).one()
    assert count == 0


async def test_admins_add_a_source_in_slack_and_its_secret_works(docket: Any) -> None:
    denied = await docket.command("/docket", "integrations add zabbix", user_id="U1")
    assert "Only Docket admins" in denied.body.decode()
    reply = await docket.command(
        "/docket",
        "integrations add zabbix --auto-resolve --customer-label tenant",
        user_id="UADMIN",
    )
    assert reply.status == 200
    text = json.dumps(reply.json())
    assert "/integrations/alerts/zabbix" in text
    secret = text.split("Secret: `", 1)[1].split("`", 1)[0]
    again = await docket.command("/docket", "integrations add zabbix", user_id="UADMIN")
    assert "already a source called zabbix" in again.body.decode()
    listing = await docket.command("/docket", "integrations", user_id="UADMIN")
    assert "auto-resolves untouched tickets" in listing.body.decode()

    body = {"title": "Disk full", "customer": "nobody", "severity": "high"}
    status, _ = await post_alerts(docket.url, body, secret, source="zabbix", mode="hmac")
    assert status == 202
    await wait_processed(docket.services)
    [ticket] = await tickets(docket)
    assert (ticket.title, ticket.priority, ticket.customer_id) == ("Disk full", "high", None)
