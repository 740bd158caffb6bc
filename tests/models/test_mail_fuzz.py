"""Hostile input for models.mail: nothing but MailRejected escapes, and everything is bounded.

The default hypothesis profile here runs about 500 examples; set MAIL_FUZZ_PROFILE=mail-fuzz-heavy
for a long run (not a DOCKET_ variable: tests/conftest.py clears those).
"""

from __future__ import annotations

import os
import random
import sysconfig
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.reply_extract import ReplyLibrary
from models.mail import MailRejected, ParsedMail, parse_message
from models.mail_body import MAX_MIME_PARTS
from models.mail_outgoing import build_reply_email, is_valid_message_id
from models.reply_text import REPLY_MARKER, extract_reply

settings.register_profile(
    "mail-fuzz",
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "mail-fuzz-heavy",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile(os.environ.get("MAIL_FUZZ_PROFILE", "mail-fuzz"))

CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def parse_or_reject(raw: bytes) -> ParsedMail | None:
    """Parse, accepting MailRejected; check what every ParsedMail promises."""
    try:
        parsed = parse_message(raw, max_body_chars=50_000)
    except MailRejected as exc:
        assert exc.reason.startswith("unparseable")
        return None
    assert parsed.from_addr is None or (
        parsed.from_addr == parsed.from_addr.lower() and "@" in parsed.from_addr
    )
    for addr in (*parsed.to_addrs, *parsed.cc_addrs):
        assert addr == addr.lower() and "@" in addr and not any(c.isspace() for c in addr)
    for msgid in (parsed.message_id, parsed.in_reply_to, *parsed.references):
        assert msgid is None or (msgid.startswith("<") and msgid.endswith(">"))
    assert "\r" not in parsed.subject and "\n" not in parsed.subject
    assert len(parsed.subject) <= 998
    assert len(parsed.text) <= 50_000
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert len(parsed.attachments) <= MAX_MIME_PARTS
    for attachment in parsed.attachments:
        assert attachment.size >= 0
        assert attachment.content is None or len(attachment.content) == attachment.size
        assert attachment.filename is None or "/" not in attachment.filename
    assert all(isinstance(defect, str) for defect in parsed.defects)
    # Everything must be storable as UTF-8 text.
    names = [a.filename or "" for a in parsed.attachments]
    for text in (parsed.subject, parsed.text, parsed.from_name or "", *names, *parsed.defects):
        text.encode("utf-8")
    return parsed


@pytest.fixture(scope="module")
def library() -> Iterator[ReplyLibrary]:
    with ReplyLibrary() as runner:
        assert runner.start(wait=20), "the reply-parser process did not start"
        yield runner


# --------------------------------------------------------------------------- (1) stdlib corpus


def test_cpython_email_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"CPython's email test corpus is not installed here ({CORPUS})")
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert len(files) > 40
    parsed = [parse_or_reject(p.read_bytes()) for p in files]
    # The corpus is mostly well-formed mail: nearly all of it must be read, not rejected.
    assert sum(p is not None for p in parsed) == len(files)
    for result in parsed:
        assert result is not None
        extract_reply(result.reply_source, subject=result.subject)


# --------------------------------------------------------------------------- (2) generated junk


def _header_block(rng: random.Random) -> bytes:
    names = [b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"In-Reply-To", b"References"]
    names += [b"Date", b"Content-Type", b"Content-Transfer-Encoding", b"Auto-Submitted"]
    lines = []
    for name in rng.sample(names, rng.randint(0, len(names))):
        value = bytes(rng.randrange(256) for _ in range(rng.randint(0, 60)))
        lines.append(name + b": " + value.replace(b"\r", b"").replace(b"\n", b""))
    return b"\r\n".join(lines)


def _malformed_messages() -> Iterator[tuple[str, bytes]]:
    rng = random.Random(20250310)
    charsets = ["x-unknown", "utf-8", "utf-16", "utf-7", "punycode", "idna", "base64", "zlib"]
    charsets += ["", '"', "iso-2022-jp", "gb2312", "unicode-escape", "rot13", "\x00", "a" * 300]
    ctes = ["base64", "quoted-printable", "x-uuencode", "8bit", "binary", "7bit", "bogus", ""]
    for i in range(40):
        boundary = rng.choice(["b", "", '"', "a" * 200, "--", "b b", "\x00"])
        body = f"--{boundary}\r\nContent-Type: text/plain\r\n\r\npart\r\n"
        if i % 2:
            body += f"--{boundary}--\r\n"
        if i % 3 == 0:
            body = body.replace("--", "-", 1)
        header = f"Content-Type: multipart/mixed; boundary={boundary}"
        yield f"boundary-{i}", f"From: a@b.example\r\n{header}\r\n\r\n{body}".encode()
    for i, charset in enumerate(charsets * 2):
        cte = ctes[i % len(ctes)]
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        yield (
            f"charset-{i}",
            (
                f"From: a@b.example\r\nSubject: =?{charset}?q?=FF=FE?=\r\n"
                f'Content-Type: text/plain; charset="{charset}"\r\n'
                f"Content-Transfer-Encoding: {cte}\r\n\r\n"
            ).encode("utf-8", "replace")
            + payload,
        )
    for i, name in enumerate([b"From", b"To", b"Subject", b"References", b"Content-Type"] * 2):
        filler = [b"a@b.example, ", b'"x" ', b"(", b"\\", b"=?utf-8?q?a?= ", b"<a@b> ", b"a=b; "]
        value = filler[i % len(filler)] * (100_000 // len(filler[i % len(filler)]))
        yield f"huge-header-{i}", name + b": " + value + b"\r\n\r\nbody"
    for depth in (25, 100, 300, 1000):
        raw = b"From: a@b.example\r\n"
        for level in range(depth):
            raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
        raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
        yield f"nested-multipart-{depth}", raw
        yield f"nested-rfc822-{depth}", b"Content-Type: message/rfc822\r\n\r\n" * depth + b"x"
    for i in range(40):
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
        yield f"8bit-junk-{i}", junk
        yield f"junk-after-headers-{i}", _header_block(rng) + b"\r\n\r\n" + junk
    for i in range(20):
        raw = (
            b"From: a\x00@b.example\r\nSub\x00ject: x\x00y\r\nTo: \x00<c@d.example>\r\n"
            b"Content-Type: text/plain; charset=utf-8\x00\r\n\r\n" + b"\x00body\x00" * i
        )
        yield f"nul-{i}", raw
    yield "no-headers", b"\r\n\r\njust a body"
    yield "only-headers", b"From: a@b.example"
    yield "blank", b""
    yield "lf-only", b"From: a@b.example\nSubject: x\n\nbody\n"
    yield "cr-only", b"From: a@b.example\rSubject: x\r\rbody\r"
    yield "continuation-first", b" folded first line\r\nFrom: a@b.example\r\n\r\nx"
    yield "colon-less", b"no colon here\r\nFrom a@b.example\r\n\r\nx"
    yield "long-line", b"From: a@b.example\r\n\r\n" + b"x" * 300_000
    yield (
        "many-parts",
        (
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
            + b"--m\r\nContent-Type: image/gif\r\n\r\nGIF\r\n" * 2000
            + b"--m--\r\n"
        ),
    )
    yield (
        "base64-garbage",
        (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!@@@===\r\n"),
    )
    yield "html-bomb", b"Content-Type: text/html\r\n\r\n" + b"<ol>" * 20_000 + b"<li>x" * 20_000
    yield "html-lt", b"Content-Type: text/html\r\n\r\n" + b"<" * 300_000
    yield "html-comments", b"Content-Type: text/html\r\n\r\n" + b"<!--a-->" * 100_000
    yield "html-open-tags", b"Content-Type: text/html\r\n\r\n" + b"<headx<style" * 50_000
    yield (
        "many-html-parts",
        (
            b"Content-Type: multipart/mixed; boundary=h\r\n\r\n"
            + (b"--h\r\nContent-Type: text/html\r\n\r\n" + b"<" * 20_000 + b"\r\n") * 100
            + b"--h--\r\n"
        ),
    )
    yield "rfc2231-broken", b"Content-Type: text/plain; name*0*=''; name*1*=%zz; name*\r\n\r\nx"
    yield "tiny-to", b"To: <\r\n\r\nx"
    yield "tiny-ct", b"Content-Type: text/plain; name*\r\n\r\nx"
    yield "exchange-id", b"Message-ID: <[abc@def]>\r\nIn-Reply-To: <[x@y]>\r\n\r\nx"


MALFORMED = list(_malformed_messages())


def test_at_least_200_generated_messages() -> None:
    assert len(MALFORMED) >= 200
    assert len({name for name, _ in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(("name", "raw"), MALFORMED, ids=[name for name, _ in MALFORMED])
def test_malformed_message(name: str, raw: bytes) -> None:
    started = time.process_time()
    parse_or_reject(raw)
    # CPU time, so other work on the machine does not count; a quadratic path takes minutes.
    assert time.process_time() - started < 10, f"{name} took too long"


# --------------------------------------------------------------------------- (3) hypothesis

HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "Precedence",
    "Return-Path",
    "Content-Disposition",
    "X-Autoreply",
]
header_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "<",
            '"',
            "=?utf-8?q?",
            "=?x-unknown?b?!!?=",
            "a@b.example",
            "<[a@b]>",
            "name*",
            "(((",
            "a@b.example)<c@d.example>",
            "Mon, 99 Foo 2025",
            "auto-replied",
            "<>",
        ]
    ),
)
content_types = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "image/png",
        "application/octet-stream",
        "message/rfc822",
        "text/rfc822-headers",
        "multipart/report; report-type=delivery-status",
        "text/plain; name*",
        "text/plain; charset=x-unknown",
        "text/plain; charset=utf-16",
        "text/html; charset=punycode",
        "bogus",
        "",
    ]
)


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=6))
    lines = [f"{name}: {value}" for name, value in headers]
    cte = draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "x-uuencode"]))
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    if depth < 4 and draw(st.booleans()):
        kind = draw(st.sampled_from(["mixed", "alternative", "related", "report"]))
        boundary = draw(st.sampled_from(["b", "x", "", "bb", '"q"']))
        lines.append(f"Content-Type: multipart/{kind}; boundary={boundary}")
        children = draw(st.lists(mime_trees(depth + 1), max_size=3))
        bare = boundary.strip('"').encode()
        body = b"".join(b"--" + bare + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + bare + b"--\r\n"
    else:
        lines.append(f"Content-Type: {draw(content_types)}")
        body = draw(st.binary(max_size=300))
    head = "\r\n".join(line.replace("\r", " ").replace("\n", " ") for line in lines)
    return head.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + body


@FUZZ
@given(raw=mime_trees())
def test_random_structures_never_crash(raw: bytes) -> None:
    parse_or_reject(raw)


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_random_bytes_never_crash(raw: bytes) -> None:
    parse_or_reject(raw)


# --------------------------------------------------------------------------- (4) reply bodies

SIZE = 64 * 1024


def _fill(unit: str) -> str:
    return (unit * (SIZE // len(unit) + 1))[:SIZE]


CRAFTED_BODIES = {
    "on": _fill("On "),
    "gt": ">" * SIZE,
    "spaces": " " * SIZE,
    "spaces-lines": _fill(" " * 500 + "\n"),
    "tabs-nbsp": _fill("\t\u00a0\u200b "),
    "nested-quotes": _fill("> " * 40 + "On x wrote:\n"),
    "quote-markers": _fill("> > > > >\n"),
    "from-headers": _fill("From: x\n"),
    "from-inline": _fill("From: "),
    "dashes": "-" * SIZE,
    "underscores": "_" * SIZE,
    "underscore-lines": _fill("\n\n" + "_" * 40),
    "original": _fill("-----Original Message-----"),
    "sent-from": _fill("Sent from my "),
    "newlines": "\n" * SIZE,
    "on-lines": _fill("On a\n"),
    "disclaimer": _fill("Disclaimer: mail "),
    "regards": _fill("Best regards,\n"),
    "am-schrieb": _fill("Am "),
    "marker-like": _fill("##- Please type your reply "),
    "unicode": _fill("Grüße 😃 "),
}


@pytest.mark.parametrize("name", list(CRAFTED_BODIES))
def test_crafted_bodies_are_bounded(name: str) -> None:
    body = CRAFTED_BODIES[name]
    started = time.process_time()
    result = extract_reply(body)
    elapsed = time.process_time() - started
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    assert len(result) <= len(body)


@pytest.mark.parametrize("name", list(CRAFTED_BODIES))
@pytest.mark.parametrize("max_chars", [20_000, 70_000], ids=["capped", "library-sees-all"])
def test_library_on_crafted_bodies_is_bounded(
    library: ReplyLibrary, name: str, max_chars: int
) -> None:
    body = CRAFTED_BODIES[name]
    started = time.monotonic()
    result = library.reply(body, time_limit=1.0, max_chars=max_chars)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    assert len(result) <= len(body)


@pytest.mark.parametrize("name", ["on", "nested-quotes", "spaces", "from-inline"])
def test_crafted_bodies_inside_mail_are_bounded(name: str) -> None:
    raw = b"From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    started = time.process_time()
    parsed = parse_message(raw + CRAFTED_BODIES[name].encode())
    extract_reply(parsed.reply_source)
    assert time.process_time() - started < 2.0


@FUZZ
@given(
    text=st.lists(
        st.one_of(st.text(max_size=20), st.sampled_from(["\n", "> ", "On x", " wrote:", "-- "])),
        max_size=40,
    ).map("".join)
)
def test_extract_reply_on_random_text(text: str) -> None:
    result = extract_reply(text)
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    assert len(result) <= len(normalised)
    assert result == "" or result.strip()


def test_blow_up_under_the_cap_is_killed_in_time(library: ReplyLibrary) -> None:
    for _ in range(3):
        started = time.monotonic()
        library.reply(_fill("On ")[:18_000], time_limit=1.0)
        assert time.monotonic() - started < 2.0


# --------------------------------------------------------------------------- (5) injection

INJECTIONS = [
    "\r\nBcc: evil@x.example",
    "\nBcc: evil@x.example",
    "\rBcc: evil@x.example",
    "\r\n\r\nbody takeover",
    "\x00\r\nX-Evil: 1",
    "\u2028Bcc: evil@x.example",
    "\x85Bcc: evil@x.example",
    "=?utf-8?q?a=0D=0ABcc:_evil@x.example?=",
    # Encoded twice: one round of decoding leaves another encoded word behind.
    "=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3D0D=3D0ABcc:=3D20evil@x.example=3F=3D?=",
]
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}


def _sent(
    subject: str, in_reply_to: str | None, references: list[str], from_name: str = "Docket"
) -> bytes:
    return build_reply_email(
        from_addr="support@help.example.com",
        from_name=from_name,
        reply_to=None,
        to_addr="alice@acme.example",
        subject=subject,
        body_text="text",
        message_id="<docket.w1.t1.n.0123456789abcdef@help.example.com>",
        in_reply_to=in_reply_to,
        references=references,
        date=datetime(2025, 3, 10, tzinfo=UTC),
    )


def _header_names(raw: bytes) -> set[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = set()
    for line in head.split("\r\n"):
        if not line[:1].isspace():
            names.add(line.partition(":")[0].lower())
    return names


def _check_sent(raw: bytes, in_reply_to: str | None) -> None:
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    names = _header_names(raw)
    assert names <= EXPECTED_HEADERS
    parsed = parse_message(raw)
    assert parsed.text.startswith(REPLY_MARKER + "\n\n")
    assert parsed.in_reply_to == (in_reply_to if is_valid_message_id(in_reply_to) else None)
    assert all(is_valid_message_id(ref) for ref in parsed.references)


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_through_subject_and_ids(payload: str) -> None:
    evil_id = f"<a@b.example>{payload}"
    refs = [evil_id, f"<c@d>{payload}", "<ok@x.example>"]
    raw = _sent(f"Re: [#1] x{payload}", evil_id, refs, from_name=f"Agent{payload}")
    _check_sent(raw, None)
    assert _header_names(raw) == EXPECTED_HEADERS - {"in-reply-to"}
    assert b"\r\nBcc:" not in raw and b"\r\nX-Evil:" not in raw


@FUZZ
@given(
    subject=st.one_of(st.text(max_size=200), st.sampled_from(INJECTIONS)),
    from_name=st.one_of(st.text(max_size=40), st.sampled_from(INJECTIONS)),
    in_reply_to=st.one_of(st.none(), st.text(max_size=60), st.just("<ok@x.example>")),
    references=st.lists(st.text(max_size=60), max_size=5),
)
def test_outgoing_headers_never_carry_injection(
    subject: str, from_name: str, in_reply_to: str | None, references: list[str]
) -> None:
    _check_sent(_sent(subject, in_reply_to, references, from_name), in_reply_to)
