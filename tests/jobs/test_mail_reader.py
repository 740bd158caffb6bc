"""A large stored mail is read by a child process: same reading, failures and time limit."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import pytest

import jobs.mail_reader as reader
from jobs.mail_reader import CHILD_BYTES, ChildRead
from models.inbound_read import read_mail
from tests.smtp_sink import build_mail


async def _pieces(raw: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def test_the_child_reads_a_large_mail_as_read_mail_does() -> None:
    body = "Printer on floor 2 is down again.\n\n" + "log line\n" * 150_000
    raw = build_mail(
        sender="alice@acme.test",
        subject="Big one",
        body=body,
        attachments=[("trace.bin", "application/octet-stream", b"\x00\x01" * 300_000)],
    )
    assert len(raw) > CHILD_BYTES
    child = await ChildRead.start(_pieces(raw), envelope_from="<alice@acme.test>")
    got = await child.result()
    expected = read_mail(raw, envelope_from="<alice@acme.test>")
    assert got.parsed is not None and expected.parsed is not None
    assert (got.reply_text, got.cut, got.parsed.subject, got.parsed.text) == (
        expected.reply_text,
        expected.cut,
        expected.parsed.subject,
        expected.parsed.text,
    )
    assert [(a.filename, a.size, a.content) for a in got.parsed.attachments] == [
        ("trace.bin", 600_000, None)
    ]


async def test_a_failing_child_raises_with_its_last_line(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys; sys.stdin.buffer.read(); print('Boom: bad mail', file=sys.stderr); exit(3)"
    monkeypatch.setattr(reader, "_CHILD", (sys.executable, "-c", code))
    child = await ChildRead.start(_pieces(b"x" * 10), envelope_from=None)
    with pytest.raises(RuntimeError, match=r"exit 3\): Boom: bad mail"):
        await child.result()


async def test_a_child_over_its_time_limit_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, time; sys.stdin.buffer.read(); time.sleep(60)"
    monkeypatch.setattr(reader, "_CHILD", (sys.executable, "-c", code))
    monkeypatch.setattr(reader, "TIME_LIMIT", 1.0)
    child = await ChildRead.start(_pieces(b"x" * 10), envelope_from=None)
    with pytest.raises(TimeoutError, match="more than 1 s"):
        await child.result()
    assert child._proc.returncode is not None
