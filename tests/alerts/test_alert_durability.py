"""Alert deliveries survive SIGKILL after their 202, and two replicas process each once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.db import make_engine, make_sessionmaker
from models.tables import AlertDelivery, AlertState, Customer, Ticket, Workspace
from tests.alerts.support import am_alert, am_payload, post_alerts, wait_until
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import DOCKET, ServeProcess, serve_env, start_serve

pytestmark = pytest.mark.e2e


def add_source(env: dict[str, str], tmp_path: Path, *args: str) -> str:
    """`docket integrations add prom ...`; the secret is the last line it prints."""
    proc = subprocess.run(
        [str(DOCKET), "integrations", "add", "prom", *args],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


async def add_customers(database_url: str, *names: str) -> None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            ws = (await session.exec(select(Workspace))).one()
            for name in names:
                session.add(Customer(workspace_id=ws.id or 0, name=name))
    finally:
        await engine.dispose()


class Db:
    """Reads the shared database from the test process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    async def pending(self) -> int:
        async with self.sessions() as session:
            stmt = select(sa.func.count()).select_from(AlertDelivery)
            return int((await session.exec(stmt.where(AlertDelivery.status != "done"))).one())

    async def tickets(self) -> list[Ticket]:
        async with self.sessions() as session:
            return list((await session.exec(select(Ticket).order_by(col(Ticket.number)))).all())

    async def states(self) -> list[AlertState]:
        async with self.sessions() as session:
            return list((await session.exec(select(AlertState))).all())

    async def deliveries(self) -> list[AlertDelivery]:
        async with self.sessions() as session:
            return list((await session.exec(select(AlertDelivery))).all())


def triage_cards(emulator: Any) -> list[Any]:
    return [
        c
        for c in emulator.calls_to("chat.postMessage")
        if c.args.get("channel") == "CTRIAGE" and c.ok
    ]


async def test_alerts_answered_before_a_sigkill_are_processed_once_after_restart(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
    )
    # An ingress-only replica answers and stores, then dies before anything processes them.
    first = await start_serve({**env, "DOCKET_PROCESS_EVENTS": "false"}, tmp_path / "serve1.log")
    secret = add_source(env, tmp_path, "--auto-resolve")
    await add_customers(database_url, "Acme", "Globex")
    bodies = [
        am_payload([am_alert("DiskFull", "Acme"), am_alert("HostDown", "Globex")]),
        am_payload([am_alert("DiskFull", "Acme", description="disk at 99%")]),
        am_payload([am_alert("BackupFailed", "Globex")]),
    ]
    for body in bodies:
        status, answer = await post_alerts(first.url, body, secret)
        assert (status, answer["duplicate"]) == (202, False)
    first.kill()
    assert not emulator.calls_to("chat.postMessage")

    db = Db(database_url)
    second = await start_serve(env, tmp_path / "serve2.log")
    try:
        await wait_until(lambda: _zero(db.pending), timeout=30)
        await emulator.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args["channel"] == "CTRIAGE" and c.ok,
            count=3,
            timeout=20,
        )
        # The monitoring system re-sends what it already sent: stored once, nothing new.
        for body in bodies:
            status, answer = await post_alerts(second.url, body, secret)
            assert (status, answer["duplicate"]) == (202, True)
    finally:
        assert second.terminate() == 0
    found = await db.tickets()
    assert len(found) == 3
    states = {s.fingerprint: s.occurrences for s in await db.states()}
    assert states == {"fp-DiskFull-host-1": 2, "fp-HostDown-host-1": 1, "fp-BackupFailed-host-1": 1}
    assert len(triage_cards(emulator)) == 3
    assert all(d.status == "done" for d in await db.deliveries())
    await db.engine.dispose()


async def _zero(count: Any) -> bool:
    return int(await count()) == 0


async def test_two_replicas_process_each_delivery_once(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
    )
    replicas: list[ServeProcess] = [await start_serve(env, tmp_path / "a.log")]
    secret = add_source(env, tmp_path)
    await add_customers(database_url, "Acme", "Globex")
    replicas.append(await start_serve(env, tmp_path / "b.log"))
    db = Db(database_url)
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(10):
                body = am_payload([am_alert(f"Check{i}", "Acme" if i % 2 else "Globex")])
                status, _ = await post_alerts(replicas[i % 2].url, body, secret, http=http)
                assert status == 202
            for i in range(20):
                flap = am_alert("Flap", "Acme", description=f"flap {i}")
                status, _ = await post_alerts(
                    replicas[i % 2].url, am_payload([flap]), secret, http=http
                )
                assert status == 202
        await wait_until(lambda: _zero(db.pending), timeout=60)
        await emulator.wait_for(
            lambda c: c.method == "chat.postMessage" and c.args["channel"] == "CTRIAGE" and c.ok,
            count=11,
            timeout=30,
        )
    finally:
        for replica in replicas:
            assert replica.terminate() == 0
    assert len(await db.tickets()) == 11
    flap = [s for s in await db.states() if s.fingerprint == "fp-Flap-host-1"]
    assert [s.occurrences for s in flap] == [20]
    done = await db.deliveries()
    assert len(done) == 30 and all(d.status == "done" for d in done)
    assert {d.lease_owner for d in done} and len(triage_cards(emulator)) == 11
    await db.engine.dispose()
