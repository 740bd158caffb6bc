"""SQLite under pressure: concurrent writers never see "database is locked"; SIGKILL mid-write
leaves a database that passes `PRAGMA integrity_check`."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db import make_engine, make_sessionmaker
from models.tables import Customer, Ticket, Workspace

pytestmark = pytest.mark.slow

WRITER = [sys.executable, "-m", "tests.reliability.sqlite_writer"]
ROOT = Path(__file__).resolve().parents[2]


async def _seed(url: str) -> None:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session, session.begin():
        session.add(Workspace(id=1, team_id="T1"))
        await session.flush()
        session.add(Customer(id=1, workspace_id=1, name="Acme"))
        await session.flush()
        session.add(Ticket(id=1, workspace_id=1, number=1, title="t", customer_id=1))
    await engine.dispose()


def _path(url: str) -> str:
    return url.split("///", 1)[1]


async def test_four_writers_times_1000_transactions_never_lock(sqlite_url: str) -> None:
    await _seed(sqlite_url)
    procs = [
        subprocess.Popen(
            [*WRITER, sqlite_url, f"w{i}", "1000"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"database is locked" not in err
    with sqlite3.connect(_path(sqlite_url)) as db:
        assert db.execute("SELECT count(*) FROM outbox_message").fetchone()[0] == 4000
        assert db.execute("SELECT count(*) FROM ticket_event").fetchone()[0] == 4000


async def test_sigkill_mid_write_never_corrupts(sqlite_url: str) -> None:
    await _seed(sqlite_url)
    rng = random.Random(20261127)
    committed_before = 0
    for run in range(50):
        proc = subprocess.Popen(
            [*WRITER, sqlite_url, f"k{run}", "100000"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        # Wait until it is in its write loop, then kill it at a random moment.
        assert proc.stdout is not None
        assert await asyncio.to_thread(proc.stdout.readline) == b"writing\n"
        await asyncio.sleep(rng.random() * 0.2)
        proc.kill()
        proc.wait(timeout=10)
        with sqlite3.connect(_path(sqlite_url)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"run {run}"
            count = db.execute("SELECT count(*) FROM outbox_message").fetchone()[0]
            events = db.execute("SELECT count(*) FROM ticket_event").fetchone()[0]
        # Each transaction wrote one row of each: a torn transaction would break the pairing.
        assert count == events
        assert count >= committed_before
        committed_before = count
    assert committed_before > 0, "the writers never committed anything before being killed"
