"""Many large mails at once through the real SMTP receiver of `docket serve`.

The receiver takes at most DOCKET_SMTP_MAX_SESSIONS sessions (421 beyond them, and senders
retry) and writes each message to a spool as it arrives, then to the database in pieces; the
mail worker reads one large mail at a time in a child process. Docket's process grows by at
most sessions x (message size + OVERHEAD) while receiving and processing, and every accepted
mail is stored byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlmodel import col, select

from bot.db import make_engine, make_sessionmaker
from models.inbound_store import FINAL_STATUSES, stored_raw
from models.tables import EmailMessage
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.procs import free_port, serve_env, start_serve

pytestmark = pytest.mark.e2e

MB = 1024 * 1024
SESSIONS, SIZE, SENDERS = 4, 16 * MB, 6
# What a session, the store and the mail worker may add beyond the message itself.
OVERHEAD = 8 * MB


def _mail(n: int) -> bytes:
    """A distinct mail of about SIZE bytes whose lines all start with a dot (smtplib doubles
    it, the receiver must take it off again)."""
    head = (
        f"From: alice@acme.test\r\nTo: support@example.com\r\nSubject: big {n}\r\n"
        f"Message-ID: <big-{n}@acme.test>\r\n\r\n"
    ).encode()
    line = b".%02d %08d " + b"y" * 62 + b"\r\n"
    return head + b"".join(line % (n, i) for i in range(SIZE // 78))


def _send(port: int, raw: bytes) -> tuple[int, int]:
    """Send one mail, retrying while the receiver is full (as MTAs do on 421); returns the final
    code and how many times the connection was refused."""
    refused = 0
    for _ in range(1200):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
                smtp.ehlo()
                smtp.mail("alice@acme.test")
                smtp.rcpt("support@example.com")
                return smtp.data(raw)[0], refused
        except smtplib.SMTPConnectError as exc:
            assert exc.smtp_code == 421
            refused += 1
        except smtplib.SMTPServerDisconnected:
            refused += 1
        time.sleep(0.05)
    raise TimeoutError("never accepted")


async def _settled(database_url: str, count: int, timeout: float) -> list[EmailMessage]:
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with make_sessionmaker(engine)() as session:
                stmt = select(EmailMessage).where(EmailMessage.direction == "in")
                rows = list((await session.exec(stmt.order_by(col(EmailMessage.id)))).all())
            if len(rows) >= count and all(r.status in FINAL_STATUSES for r in rows):
                return rows
            assert time.monotonic() < deadline, [r.status for r in rows]
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def _digests(database_url: str, rows: list[EmailMessage]) -> dict[str, str]:
    engine = make_engine(database_url)
    found: dict[str, str] = {}
    try:
        for row in rows:
            assert row.id is not None
            async with make_sessionmaker(engine)() as session:
                raw = await stored_raw(
                    session=session, workspace_id=row.workspace_id, email_id=row.id
                )
            assert raw is not None
            found[row.subject or ""] = hashlib.sha256(raw).hexdigest()
    finally:
        await engine.dispose()
    return found


@pytest.mark.slow
async def test_large_mails_at_once_stay_within_sessions_times_size(
    database_url: str, emulator: Any, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(
        database_url=database_url,
        api_url=emulator.api_url,
        signing_secret=SIGNING_SECRET,
        token=BOT_TOKEN,
        DOCKET_SMTP_PORT=str(port),
        DOCKET_SUPPORT_ADDRESS="support@example.com",
        DOCKET_SMTP_MAX_SESSIONS=str(SESSIONS),
        DOCKET_SMTP_MAX_BYTES=str(SIZE + MB),
    )
    mails = [_mail(n) for n in range(SENDERS)]
    sent = {f"big {n}": hashlib.sha256(raw).hexdigest() for n, raw in enumerate(mails)}
    serve = await start_serve(env, tmp_path / "serve.log")
    try:
        process = psutil.Process(serve.proc.pid)
        small = b"From: alice@acme.test\r\nTo: support@example.com\r\nSubject: hi\r\n\r\nhi\r\n"
        assert (await asyncio.to_thread(_send, port, small))[0] == 250
        await _settled(database_url, 1, timeout=20)
        await asyncio.sleep(0.5)
        before = process.memory_info().rss
        peaks = {"receiving": before, "processing": before, "readers": 0}
        phase = "receiving"
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peaks[phase] = max(peaks[phase], process.memory_info().rss)
                readers = 0
                for child in process.children():
                    try:
                        readers += child.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                peaks["readers"] = max(peaks["readers"], readers)
                time.sleep(0.01)

        sampler = asyncio.ensure_future(asyncio.to_thread(sample))
        started = time.monotonic()
        try:
            results = await asyncio.gather(*(asyncio.to_thread(_send, port, raw) for raw in mails))
            received = time.monotonic() - started
            phase = "processing"
            rows = await _settled(database_url, SENDERS + 1, timeout=60)
            processed = time.monotonic() - started
        finally:
            stop.set()
            await sampler
        await asyncio.sleep(1.0)
        after = process.memory_info().rss
        peak = max(peaks["receiving"], peaks["processing"])
        refused = sum(r for _, r in results)
        bound = SESSIONS * (SIZE + OVERHEAD)
        print(
            f"\n{SENDERS} x {SIZE // MB} MB at once, {SESSIONS} sessions: "
            f"{[c for c, _ in results]} in {received:.1f} s, all processed after "
            f"{processed:.1f} s, {refused} connections told 421; RSS {before / MB:.0f} MB "
            f"before, peak +{(peaks['receiving'] - before) / MB:.0f} MB while receiving, "
            f"+{(peaks['processing'] - before) / MB:.0f} MB while processing, "
            f"+{(after - before) / MB:.0f} MB after (bound {SESSIONS} x "
            f"({SIZE // MB} + {OVERHEAD // MB}) MB = {bound // MB} MB); the mail reader "
            f"child process at most {peaks['readers'] / MB:.0f} MB"
        )
        assert [c for c, _ in results] == [250] * SENDERS
        assert refused > 0
        assert peak - before <= bound
        digests = await _digests(database_url, rows)
        assert {s: d for s, d in digests.items() if s in sent} == sent
    finally:
        assert await asyncio.to_thread(serve.terminate) == 0
