"""Hostile and odd mail through the REAL SMTP receiver: it never crashes, nothing is lost.

CPython's own email test corpus plus a few hundred generated malformed messages (broken MIME,
bad charsets, huge headers, deep nesting, 8-bit junk) go through smtplib to Docket's receiver.
Every message must be stored and end with an outcome (processed, ignored, held or quarantined,
with its reason), without a processing error, and the receiver must still work afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import random
import smtplib
import sysconfig
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from models.inbound_store import FINAL_STATUSES, RECEIVED
from models.tables import EmailMessage
from tests.conftest import SIGNING_SECRET, make_settings
from tests.harness import DocketHarness, running_docket
from tests.procs import free_port
from tests.slack_emulator import SlackEmulator
from tests.smtp_sink import build_mail

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SUPPORT = "support@example.com"
CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
# Docket refuses lines longer than this (500); the generator stays below it.
MAX_LINE = 60_000


@pytest.fixture
async def docket(database_url: str, emulator: SlackEmulator) -> AsyncIterator[DocketHarness]:
    settings = make_settings(
        slack_api_url=emulator.api_url,
        database_url=database_url,
        docket_support_address=SUPPORT,
        docket_smtp_port=free_port(),
    )
    async with running_docket(settings, emulator, SIGNING_SECRET) as harness:
        yield harness


def corpus_messages() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(CORPUS.iterdir()) if p.is_file()]


def _junk(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(size))


def _deep_multipart(depth: int) -> bytes:
    head = b"From: deep@acme.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = [head]
    for level in range(depth):
        parts.append(
            f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
        )
    parts.append(b"Content-Type: text/plain\r\n\r\nbottom\r\n")
    for level in reversed(range(depth)):
        parts.append(f"--b{level}--\r\n".encode())
    return b"".join(parts)


def _deep_rfc822(depth: int) -> bytes:
    body = b"From: inner@acme.test\r\nSubject: inner\r\n\r\ninnermost\r\n"
    for _ in range(depth):
        body = (
            b"From: wrap@acme.test\r\nSubject: wrapped\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: message/rfc822\r\n\r\n" + body
        )
    return body


def _folded(name: str, value_chars: int, rng: random.Random) -> bytes:
    words = ["x" * 70, "=?utf-8?q?=C3=A9t=C3=A9?=", "<a@b>", "y"]
    line = f"{name}: start"
    out = [line]
    total = 0
    while total < value_chars:
        piece = rng.choice([*words, "word", "=?bogus?Q?zz?=", '"quoted', "(comment"])
        out.append(f" {piece}")
        total += len(piece) + 1
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def generated_messages(count: int = 240, seed: int = 20250602) -> Iterator[tuple[str, bytes]]:
    """Malformed mail of many kinds; deterministic for a seed."""
    rng = random.Random(seed)
    fixed: list[tuple[str, bytes]] = [
        ("empty", b""),
        ("only-newlines", b"\r\n\r\n\r\n"),
        ("no-separator", b"From: a@acme.test\r\nSubject: x"),
        ("to-angle", b"From: alice@acme.test\r\nTo: <\r\nSubject: x\r\n\r\nbody\r\n"),
        (
            "name-star",
            b"From: alice@acme.test\r\nContent-Type: text/plain; name*\r\n\r\nbody\r\n",
        ),
        (
            "exchange-msgid",
            b"From: alice@acme.test\r\nMessage-ID: <[1.2.3.4]@[abc def]>\r\n"
            b"In-Reply-To: <<<>>>\r\nReferences: <a> <b\r\n\r\nhello\r\n",
        ),
        ("empty-msgid", b"From: alice@acme.test\r\nMessage-ID: <>\r\n\r\nx\r\n"),
        (
            "spoofed-from",
            b"From: alice@acme.test)<bob@evil.test>\r\nSubject: [#1] pay me\r\n\r\nx\r\n",
        ),
        ("two-froms", b"From: a@acme.test\r\nFrom: b@evil.test\r\n\r\nx\r\n"),
        ("nul-headers", b"From: a\x00@acme.test\r\nSubject: nul\x00 here\r\n\r\nnul\x00body\r\n"),
        ("latin1-header", b"From: J\xfcrgen <j@acme.test>\r\nSubject: Gr\xfc\xdfe\r\n\r\n\xe4\r\n"),
        (
            "bad-base64",
            b"From: a@acme.test\r\nContent-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not*base64===\r\n",
        ),
        (
            "bad-qp",
            b"From: a@acme.test\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=",
        ),
        (
            "unclosed-boundary",
            b"From: a@acme.test\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
            b"Content-Type: text/plain\r\n\r\nnever closed\r\n",
        ),
        (
            "missing-boundary",
            b"From: a@acme.test\r\nContent-Type: multipart/alternative\r\n\r\nno parts\r\n",
        ),
        (
            "empty-boundary",
            b'From: a@acme.test\r\nContent-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n',
        ),
        (
            "html-bomb",
            b"From: a@acme.test\r\nContent-Type: text/html\r\n\r\n" + b"<ul><li>" * 5000 + b"\r\n",
        ),
        ("many-headers", b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\nbody\r\n"),
        ("huge-folded-from", _folded("From", 300_000, rng) + b"\r\nbody\r\n"),
        ("huge-folded-subject", _folded("Subject", 500_000, rng) + b"\r\nbody\r\n"),
        (
            "long-line-header",
            b"From: a@acme.test\r\nX-Long: " + b"a" * (MAX_LINE - 20) + b"\r\n\r\nx\r\n",
        ),
        (
            "many-references",
            b"From: a@acme.test\r\nReferences: "
            + b"\r\n ".join(b"<r%d@acme.test>" % i for i in range(20_000))
            + b"\r\n\r\nx\r\n",
        ),
        ("deep-multipart-30", _deep_multipart(30)),
        ("deep-multipart-400", _deep_multipart(400)),
        ("deep-multipart-1500", _deep_multipart(1500)),
        ("deep-rfc822-60", _deep_rfc822(60)),
        ("deep-rfc822-600", _deep_rfc822(600)),
        (
            "bounce-no-id",
            b"From: MAILER-DAEMON@x.test\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="q"\r\n\r\n'
            b"--q\r\nContent-Type: message/delivery-status\r\n\r\n\r\n--q--\r\n",
        ),
        (
            "auto-submitted-junk",
            b"From: a@acme.test\r\nAuto-Submitted: \xff\xfe\r\nPrecedence: \x00\r\n\r\nx\r\n",
        ),
        ("crlf-mess", b"From: a@acme.test\rSubject: cr only\r\rbody\r"),
        ("lf-dot", b"From: a@acme.test\n\n.\n..\n.hidden\nbody\n"),
    ]
    yield from fixed
    charsets = [
        "utf-8",
        "utf-7",
        "idna",
        "unicode_escape",
        "x-unknown",
        "gb2312",
        "iso-2022-jp",
        "utf-16",
        "utf-32",
        "",
        "us-ascii\x00",
        "koi8-r",
        "'\"",
        "zlib_codec",
        "rot13",
        "base64",
    ]
    kinds = ("charset", "junk", "mime", "encoded-words", "attachment", "mutation", "headers")
    corpus = [raw for _name, raw in corpus_messages()]
    for index in range(count - len(fixed)):
        kind = kinds[index % len(kinds)]
        sender = rng.choice(["alice@acme.test", "x@unknown.test", "bad@@addr", "", "<>"])
        head = f"From: {sender}\r\nTo: {SUPPORT}\r\nSubject: gen {index}\r\n".encode()
        if kind == "charset":
            charset = rng.choice(charsets)
            body = _junk(rng, rng.randrange(1, 2000))
            raw = head + f'Content-Type: text/plain; charset="{charset}"\r\n'.encode()
            raw += b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body
        elif kind == "junk":
            raw = _junk(rng, rng.randrange(0, 5000))
        elif kind == "mime":
            boundary = rng.choice(["b", "", "--", "a b", "\x00", "x" * 200])
            raw = head + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
            for _ in range(rng.randrange(0, 6)):
                raw += f"--{boundary}\r\n".encode()
                raw += rng.choice(
                    [
                        b"Content-Type: text/plain\r\n\r\nhello\r\n",
                        b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n",
                        b'Content-Type: application/pdf; name="a.pdf"\r\n\r\n%PDF\r\n',
                        b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n",
                        b"Content-Type: message/rfc822\r\n\r\nFrom: x\r\n",
                        b"Content-Disposition: attachment; filename*=utf-8''%FF%FE\r\n\r\nx\r\n",
                        _junk(rng, 200),
                    ]
                )
            if rng.random() < 0.5:
                raw += f"--{boundary}--\r\n".encode()
        elif kind == "encoded-words":
            words = [
                "=?utf-8?B?!!!?=",
                "=?bogus?Q?zz?=",
                "=?utf-8?Q?=FF=FE?=",
                "=?iso-8859-1?q?caf=E9?=",
                "=?utf-8?b?" + base64.b64encode(_junk(rng, 30)).decode() + "?=",
                "=?=?=?",
            ]
            subject = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 40)))
            from_name = rng.choice(words)
            raw = (
                f"From: {from_name} <alice@acme.test>\r\nSubject: {subject}\r\n\r\nbody\r\n"
            ).encode()
        elif kind == "attachment":
            name = rng.choice(
                ["../../etc/passwd", "a\x00b.txt", "=?utf-8?q?r=C3=A9sum=C3=A9?=.pdf"]
            )
            raw = build_mail(
                sender="alice@acme.test",
                subject=f"attachment {index}",
                attachments=[("file.bin", "application/octet-stream", _junk(rng, 3000))],
            ).replace(b'filename="file.bin"', f'filename="{name}"'.encode("utf-8", "replace"))
        elif kind == "mutation":
            mutated = bytearray(rng.choice(corpus) or b"x")
            for _ in range(rng.randrange(1, 50)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            raw = bytes(mutated[: rng.randrange(1, len(mutated) + 1)])
        else:
            lines = [
                rng.choice(
                    [
                        b"Content-Type: " + _junk(rng, 40),
                        b"In-Reply-To: " + _junk(rng, 80),
                        b"References: <" + b"<" * 100,
                        b"Date: Feb 30 99999 25:61:61 +9999",
                        b"Message-ID: " + _junk(rng, 20),
                        b"Reply-To: ,,,@,,,",
                        b": empty name",
                        b"No colon here",
                        b" continuation first",
                        b"Cc: " + b", ".join(b"u%d@x.test" % i for i in range(500)),
                    ]
                )
                for _ in range(rng.randrange(1, 30))
            ]
            raw = head + b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
        yield f"gen-{index}-{kind}", raw


def _send_all(port: int, messages: list[tuple[str, bytes]]) -> list[str]:
    """Send every message over one SMTP session; returns the names the receiver refused."""
    refused = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for name, raw in messages:
            try:
                smtp.sendmail("sender@corpus.test", [SUPPORT], raw)
            except smtplib.SMTPResponseException as exc:
                refused.append(f"{name}: {exc.smtp_code}")
                smtp.rset()
    return refused


async def _rows(docket: DocketHarness) -> list[EmailMessage]:
    async with docket.services.read() as session:
        stmt = select(EmailMessage).where(EmailMessage.direction == "in")
        return list((await session.exec(stmt.order_by(col(EmailMessage.id)))).all())


async def _settled(docket: DocketHarness, count: int, timeout: float) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await _rows(docket)
        failed = [
            (r.id, r.outcome) for r in rows if r.status == RECEIVED and r.attempts and r.outcome
        ]
        assert not failed, f"processing raised for {failed[:5]}"
        if len(rows) >= count and all(r.status != RECEIVED for r in rows):
            return rows
        if time.monotonic() > deadline:
            waiting = [r.id for r in rows if r.status == RECEIVED]
            raise TimeoutError(f"{len(rows)}/{count} stored, still waiting: {waiting[:20]}")
        await asyncio.sleep(0.1)


def test_the_generator_makes_enough_malformed_mail() -> None:
    generated = list(generated_messages())
    assert len(generated) >= 200
    assert len({raw for _name, raw in generated}) > 190
    assert all(max(map(len, raw.split(b"\n")), default=0) < MAX_LINE for _n, raw in generated)


async def test_corpus_and_malformed_mail_all_end_with_an_outcome(docket: DocketHarness) -> None:
    corpus = corpus_messages()
    assert len(corpus) > 40
    messages = corpus + list(generated_messages())
    port = docket.runtime.smtp_port
    assert port is not None
    refused = await asyncio.to_thread(_send_all, port, messages)
    assert refused == []
    rows = await _settled(docket, len(messages), timeout=120)
    assert len(rows) == len(messages)
    by_status: dict[str, int] = {}
    for row in rows:
        assert row.status in FINAL_STATUSES, (row.id, row.status)
        assert row.outcome, row.id
        by_status[row.status] = by_status.get(row.status, 0) + 1
    # The real mail in the corpus is read, not quarantined wholesale.
    assert by_status.get("processed", 0) > len(corpus) // 2

    # The receiver and the worker are still fine.
    ok = build_mail(sender="alice@acme.test", subject="after the storm", message_id="<ok@x.test>")
    assert await asyncio.to_thread(_send_all, port, [("ok", ok)]) == []
    rows = await _settled(docket, len(messages) + 1, timeout=30)
    assert rows[-1].status == "processed" and rows[-1].ticket_id is not None
