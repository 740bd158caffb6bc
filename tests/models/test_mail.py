"""Parsing, reply extraction, loop detection and outgoing mail (models.mail)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobs.reply_extract import ReplyLibrary
from models import mail as mail_module
from models.mail import MailRejected, bounced_message_id, parse_message
from models.mail_auto import AutoKind, auto_kind, classify_auto
from models.mail_outgoing import build_reply_email, is_valid_message_id
from models.reply_text import REPLY_MARKER, Cut, extract, extract_reply, mark_html_quotes


def msg(headers: str, body: str | bytes = "hello\r\n") -> bytes:
    """A raw message from header lines (LF is fine) and a body."""
    head = "\r\n".join(line for line in headers.strip("\n").split("\n")).encode("utf-8")
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    return head + b"\r\n\r\n" + data


BASIC = """From: "Alice Example" <Alice@Acme.Example>
To: Support <support@help.example.com>, bob@acme.example
Cc: carol@acme.example, "Dan" <DAN@ACME.EXAMPLE>
Subject: Printer broken
Message-ID: <abc123@mail.acme.example>
In-Reply-To: <prev@help.example.com>
References: <root@help.example.com>
 <prev@help.example.com>
Date: Mon, 03 Mar 2025 10:00:00 +0100
Content-Type: text/plain; charset=utf-8"""


# --------------------------------------------------------------------------- headers


def test_basic_headers() -> None:
    parsed = parse_message(msg(BASIC, "The printer is broken.\r\n"))
    assert parsed.from_addr == "alice@acme.example"
    assert parsed.from_name == "Alice Example"
    assert parsed.to_addrs == ("support@help.example.com", "bob@acme.example")
    assert parsed.cc_addrs == ("carol@acme.example", "dan@acme.example")
    assert parsed.subject == "Printer broken"
    assert parsed.message_id == "<abc123@mail.acme.example>"
    assert parsed.in_reply_to == "<prev@help.example.com>"
    assert parsed.references == ("<root@help.example.com>", "<prev@help.example.com>")
    assert parsed.date == datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(hours=1)
    assert parsed.text == "The printer is broken.\n"
    assert not parsed.text_from_html
    assert parsed.attachments == () and parsed.auto_kind is None and parsed.defects == ()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
        ("Subject: =?iso-8859-1?b?R3L832U=?=", "Grüße"),
        ("Subject: =?utf-8?b?8J+Ygw==?= smile", "😃 smile"),
        ("Subject: Re: =?utf-8?q?caf=C3=A9?=\n =?utf-8?q?_cr=C3=A8me?=", "Re: café crème"),
        ("Subject: folded\n  over\n\tlines", "folded over lines"),
        ("Subject: =?x-unknown?q?plain?=", "plain"),
        ("Subject: =?utf-8?q?a=0D=0ABcc:_x@y.z?=", "a Bcc: x@y.z"),
        ("Subject: raw utf-8 Grüße", "raw utf-8 Grüße"),
        ("Subject: ", ""),
    ],
)
def test_subject_decoding(header: str, expected: str) -> None:
    parsed = parse_message(msg(f"From: a@b.example\n{header}"))
    assert parsed.subject == expected
    assert "\r" not in parsed.subject and "\n" not in parsed.subject


def test_subject_is_capped() -> None:
    parsed = parse_message(msg("From: a@b.example\nSubject: " + "x" * 5000))
    assert parsed.subject == "x" * 998


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <abc@def>", "<abc@def>"),
        ("Message-ID: <[abc@def]>", "<[abc@def]>"),  # Exchange style
        (
            "Message-ID: <AM0PR01MB1234.eurprd01.prod.exchangelabs.com>",
            "<AM0PR01MB1234.eurprd01.prod.exchangelabs.com>",
        ),
        ("Message-ID: abc@def", "<abc@def>"),
        ("Message-ID:   <abc@def>  (comment)", "<abc@def>"),
        ("Message-ID: [", "<[>"),
        ("Message-ID: two words", None),
        ("Message-ID: <>", None),
    ],
)
def test_message_ids(header: str, expected: str | None) -> None:
    assert parse_message(msg(f"From: a@b.example\n{header}")).message_id == expected


def test_references_are_deduplicated_and_capped() -> None:
    refs = " ".join(f"<r{i}@x>" for i in range(300))
    parsed = parse_message(msg(f"From: a@b.example\nReferences: {refs} <r5@x>\nIn-Reply-To: junk"))
    assert len(parsed.references) == 100
    assert parsed.references[0] == "<r0@x>" and parsed.references[-1] == "<r299@x>"
    assert parsed.in_reply_to is None
    assert "References truncated" in parsed.defects


@pytest.mark.parametrize(
    ("header", "addr", "name"),
    [
        ("From: alice@acme.example", "alice@acme.example", None),
        ("From: <ALICE@ACME.EXAMPLE>", "alice@acme.example", None),
        ("From: =?utf-8?q?J=C3=B6rg?= <jorg@example.de>", "jorg@example.de", "Jörg"),
        ('From: "bob@evil.example" <alice@acme.example>', "alice@acme.example", "bob@evil.example"),
        # Ambiguous or broken senders are dropped rather than guessed.
        ("From: alice@acme.example)<bob@evil.example>", None, None),
        ("From: bob@evil.example <alice@acme.example>", None, None),
        ("From: alice@acme.example, bob@acme.example", None, None),
        ("From: <", None, None),
        ('From: "', None, None),
        ("From: @", None, None),
        ("From: :", None, None),
        ("From: nobody", None, None),
        ("From: a@b@c.example", None, None),
        ("From: " + "(" * 5000, None, None),
        ("From: " + "\\" * 100_000, None, None),
    ],
)
def test_sender(header: str, addr: str | None, name: str | None) -> None:
    parsed = parse_message(msg(header))
    assert parsed.from_addr == addr
    assert parsed.from_name == name
    if addr is None:
        assert parsed.defects


def test_two_from_headers_and_missing_from() -> None:
    two = parse_message(msg("From: a@b.example\nFrom: c@d.example"))
    assert two.from_addr is None and "more than one From header" in two.defects
    none = parse_message(msg("Subject: x"))
    assert none.from_addr is None and "no From header" in none.defects


@pytest.mark.parametrize(
    "header",
    [
        "To: <",
        "To: undisclosed-recipients:;",
        'To: "',
        "To: " + "a@b.example, " * 15_000,
        "To: " + '"x" ' * 30_000,
        "Cc: " + "<" * 100_000,
    ],
)
def test_broken_recipient_headers_degrade(header: str) -> None:
    started = time.process_time()
    parsed = parse_message(msg(f"From: a@b.example\n{header}"))
    assert time.process_time() - started < 2
    assert len(parsed.to_addrs) <= 100 and len(parsed.cc_addrs) <= 100


def test_undecodable_header_bytes_become_replacement_characters() -> None:
    parsed = parse_message(
        b"From: =?x-unknown?q?J=FFrg?= <a@b.example>\r\n"
        b"Subject: =?x-unknown?q?caf=E9?=\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2D3-"
    )
    assert parsed.from_name == "J\ufffdrg"
    for text in (parsed.subject, parsed.from_name, parsed.text):
        text.encode("utf-8")


def test_dates() -> None:
    assert parse_message(msg("Date: Mon, 32 Foo 99999 99:99:99 +9999")).date is None
    naive = parse_message(msg("Date: Mon, 03 Mar 2025 10:00:00 -0000")).date
    assert naive == datetime(2025, 3, 3, 10, 0, tzinfo=UTC) and naive.tzinfo is not None
    assert parse_message(msg("Subject: no date")).date is None


def test_reply_to() -> None:
    parsed = parse_message(msg("From: a@b.example\nReply-To: Team <Team@B.example>"))
    assert parsed.reply_to_addr == "team@b.example"


# --------------------------------------------------------------------------- bodies


def test_html_only_body() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><p>Hello <b>there</b></p><ul><li>one</li></ul><img src='x.png'></body></html>"
    )
    parsed = parse_message(msg("From: a@b.example\nContent-Type: text/html; charset=utf-8", html))
    assert parsed.text_from_html
    assert "Hello there" in parsed.text and "one" in parsed.text
    assert "color:red" not in parsed.text and "alert" not in parsed.text and "<" not in parsed.text


ALTERNATIVE = """From: a@b.example
Content-Type: multipart/alternative; boundary="alt"
"""


def test_html_style_blocks_do_not_use_up_the_size_cap() -> None:
    outlook = (
        "<html><head><style>" + "p.MsoNormal{margin:0cm}" * 20_000 + "</style></head>"
        "<body><header>Ticket</header><!-- [if mso] --><p>The new text</p></body></html>"
    )
    parsed = parse_message(msg("From: a@b.example\nContent-Type: text/html", outlook))
    assert "The new text" in parsed.text and "Ticket" in parsed.text
    assert "Mso" not in parsed.text and "html body truncated" not in parsed.defects


def test_alternative_prefers_plain() -> None:
    body = (
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html version</p>\r\n"
        "--alt--\r\n"
    )
    parsed = parse_message(msg(ALTERNATIVE, body))
    assert parsed.text.strip() == "plain version" and not parsed.text_from_html


def test_alternative_html_inside_related_with_inline_image() -> None:
    body = (
        "--alt\r\nContent-Type: multipart/related; boundary=rel\r\n\r\n"
        "--rel\r\nContent-Type: text/html\r\n\r\n<p>see <i>image</i></p>\r\n"
        "--rel\r\nContent-Type: image/png\r\nContent-ID: <img1>\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        "--rel--\r\n--alt--\r\n"
    )
    parsed = parse_message(msg(ALTERNATIVE, body))
    assert parsed.text_from_html and "see image" in parsed.text
    assert [(a.content_type, a.size) for a in parsed.attachments] == [("image/png", 8)]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
            b"Gr=C3=BC=C3=9Fe, caf=C3=A9 =\r\nsoft break\r\n",
            "Grüße, café soft break\n",
        ),
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
            base64.encodebytes("Grüße aus Köln\n".encode()),
            "Grüße aus Köln\n",
        ),
        (
            "Content-Type: text/plain; charset=iso-8859-1",
            "Grüße\n".encode("latin-1"),
            "Grüße\n",
        ),
        (
            "Content-Type: text/plain; charset=windows-1252",
            b"\x93quoted\x94 \x80 5\n",
            "\u201cquoted\u201d \u20ac 5\n",
        ),
        (
            # Mislabelled Windows text: the browsers' reading of latin-1.
            "Content-Type: text/plain; charset=iso-8859-1",
            b"\x93smart\x94\n",
            "\u201csmart\u201d\n",
        ),
        (
            "Content-Type: text/plain; charset=us-ascii",
            "naïve\n".encode(),
            "naïve\n",
        ),
        ("Content-Type: text/plain", "ünïcode\n".encode(), "ünïcode\n"),
        (
            "Content-Type: text/plain; charset=koi8-r",
            "привет\n".encode("koi8-r"),
            "привет\n",
        ),
        (
            "Content-Type: text/plain; charset=utf-8",
            b"broken \xff\xfe utf-8\n",
            "broken \ufffd\ufffd utf-8\n",
        ),
    ],
)
def test_transfer_encodings_and_charsets(headers: str, body: bytes, expected: str) -> None:
    parsed = parse_message(msg(f"From: a@b.example\n{headers}", body))
    assert parsed.text == expected


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        ("x-unknown", "Grüße\n".encode(), "Grüße\n"),
        ("x-unknown", "Grüße\n".encode("latin-1"), "Grüße\n"),
        ("punycode", b"abc-\n", "abc-\n"),
        ("base64", b"aGk=\n", "aGk=\n"),
        ("zzz\x00", b"plain\n", "plain\n"),
    ],
)
def test_unknown_or_unsafe_charsets_fall_back(charset: str, body: bytes, expected: str) -> None:
    raw = msg(f'From: a@b.example\nContent-Type: text/plain; charset="{charset}"', body)
    parsed = parse_message(raw)
    assert parsed.text == expected
    assert any("unknown charset" in d for d in parsed.defects)


MIXED = """From: a@b.example
Content-Type: multipart/mixed; boundary="mix"
"""


def _attachment(headers: str, payload: bytes) -> str:
    encoded = base64.encodebytes(payload).decode()
    return f"--mix\r\n{headers}\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"


def test_attachments_recorded_with_size_and_filenames() -> None:
    body = (
        "--mix\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        + _attachment(
            'Content-Type: application/pdf; name="=?utf-8?b?UmVjaG51bmcucGRm?="\r\n'
            "Content-Disposition: attachment",
            b"%PDF-1.4 fake",
        )
        + _attachment(
            "Content-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.txt",
            b"x" * 1000,
        )
        + _attachment(
            'Content-Type: image/png\r\nContent-Disposition: inline; filename="../../etc/passwd"',
            b"\x89PNG",
        )
        + _attachment(
            "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt",
            b"log line\n",
        )
        + "--mix--\r\n"
    )
    parsed = parse_message(msg(MIXED, body))
    assert parsed.text.strip() == "See attached."
    summary = [(a.filename, a.content_type, a.size) for a in parsed.attachments]
    assert summary == [
        ("Rechnung.pdf", "application/pdf", 13),
        ("Résumé.txt", "application/octet-stream", 1000),
        ("passwd", "image/png", 4),
        ("log.txt", "text/plain", 9),
    ]
    assert parsed.attachments[0].content == b"%PDF-1.4 fake"


def test_attachment_content_budget_is_shared() -> None:
    body = (
        _attachment('Content-Type: application/zip; name="a.zip"', b"a" * 600)
        + _attachment('Content-Type: application/zip; name="b.zip"', b"b" * 600)
        + _attachment('Content-Type: application/zip; name="c.zip"', b"c" * 300)
        + "--mix--\r\n"
    )
    parsed = parse_message(msg(MIXED, body), keep_attachment_bytes=1000)
    assert [a.size for a in parsed.attachments] == [600, 600, 300]
    assert [a.content is not None for a in parsed.attachments] == [True, False, True]


def test_nested_multipart_and_split_apple_bodies() -> None:
    body = (
        "--mix\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
        "--alt\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
        "--alt\r\nContent-Type: text/html\r\n\r\n<p>first part</p>\r\n--alt--\r\n"
        + _attachment("Content-Type: image/jpeg", b"\xff\xd8\xff")
        + "--mix\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n"
        "--mix--\r\n"
    )
    parsed = parse_message(msg(MIXED, body))
    assert "first part" in parsed.text and "second part" in parsed.text
    assert "<p>" not in parsed.text
    assert [a.content_type for a in parsed.attachments] == ["image/jpeg"]
    assert parsed.attachments[0].filename is None


def test_forwarded_message_is_an_attachment() -> None:
    inner = "From: x@y.example\r\nSubject: Original\r\nMessage-ID: <orig@y>\r\n\r\nold text\r\n"
    body = (
        "--mix\r\nContent-Type: text/plain\r\n\r\nFYI\r\n"
        f"--mix\r\nContent-Type: message/rfc822\r\n\r\n{inner}--mix--\r\n"
    )
    parsed = parse_message(msg(MIXED, body))
    assert parsed.text.strip() == "FYI"
    (attached,) = parsed.attachments
    assert attached.filename == "Original.eml" and attached.content_type == "message/rfc822"
    assert attached.content is not None and b"old text" in attached.content
    assert parsed.bounce_message_id is None  # not a bounce


def test_body_is_capped() -> None:
    parsed = parse_message(msg("From: a@b.example", "x" * 5000), max_body_chars=1000)
    assert parsed.text == "x" * 1000


def test_html_nesting_bomb_is_defused() -> None:
    bomb = "<ol>" * 5000 + "<li>x" * 5000
    started = time.process_time()
    parsed = parse_message(msg("From: a@b.example\nContent-Type: text/html", bomb))
    assert time.process_time() - started < 5
    assert len(parsed.text) <= 200_000


def test_mime_depth_and_part_caps() -> None:
    depth = 40
    raw = b"From: a@b.example\r\n"
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    for i in reversed(range(depth)):
        raw += b"--b%d--\r\n" % i
    deep = parse_message(raw)
    assert any("nesting deeper than 20" in d for d in deep.defects)
    assert deep.from_addr == "a@b.example"

    many = "".join(_attachment("Content-Type: image/gif", b"GIF") for _ in range(600))
    wide = parse_message(msg(MIXED, many + "--mix--\r\n"))
    assert len(wide.attachments) < 500
    assert any("more than 500 MIME parts" in d for d in wide.defects)


def test_pitfall_headers_degrade() -> None:
    raw = msg(
        "From: a@b.example\nTo: <\nContent-Type: text/plain; name*\nMessage-ID: <[abc@def]>",
        "still readable\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.text == "still readable\n"
    assert parsed.from_addr == "a@b.example" and parsed.to_addrs == ()
    assert parsed.message_id == "<[abc@def]>"


def test_only_mail_rejected_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MailRejected) as not_bytes:
        parse_message("text")  # type: ignore[arg-type]
    assert not_bytes.value.reason == "unparseable: not bytes"

    def explode(*args: object, **kwargs: object) -> None:
        raise IndexError("string index out of range")

    monkeypatch.setattr(mail_module, "_parse", explode)
    with pytest.raises(MailRejected) as rejected:
        parse_message(b"From: a@b.example\r\n\r\nx")
    assert rejected.value.reason == "unparseable: IndexError"
    assert isinstance(rejected.value.__cause__, IndexError)


def test_empty_and_headerless_input() -> None:
    empty = parse_message(b"")
    assert empty.text == "" and empty.from_addr is None
    assert parse_message(b"just a body line").from_addr is None


# --------------------------------------------------------------------------- loops and noise

AUTO_CASES = [
    ({"Auto-Submitted": "auto-replied"}, AutoKind.AUTO_REPLY),
    ({"Auto-Submitted": "auto-generated"}, AutoKind.AUTO_REPLY),
    ({"Auto-Submitted": "auto-notified"}, AutoKind.AUTO_REPLY),
    ({"Auto-Submitted": 'auto-replied; owner-email="x@y.example"'}, AutoKind.AUTO_REPLY),
    ({"AUTO-SUBMITTED": "Auto-Replied"}, AutoKind.AUTO_REPLY),
    ({"Auto-Submitted": "no"}, None),
    ({"X-Autoreply": "yes"}, AutoKind.AUTO_REPLY),
    ({"X-Autoreply": "no"}, None),
    ({"X-Autorespond": "Vacation"}, AutoKind.AUTO_REPLY),
    ({"X-Auto-Response-Suppress": "All"}, AutoKind.AUTO_REPLY),
    ({"X-Auto-Response-Suppress": "OOF"}, AutoKind.AUTO_REPLY),
    ({"Precedence": "bulk"}, AutoKind.BULK),
    ({"Precedence": "junk"}, AutoKind.BULK),
    ({"Precedence": "list"}, AutoKind.BULK),
    ({"Precedence": "auto_reply"}, AutoKind.AUTO_REPLY),
    ({"List-Id": "<news.acme.example>", "Precedence": "first-class"}, AutoKind.BULK),
    ({"List-Unsubscribe": "<mailto:u@x.example>", "Precedence": "normal"}, AutoKind.BULK),
    ({"List-Id": "<support-team.acme.example>"}, None),  # a person writing through a group
    ({"From": "MAILER-DAEMON@mx.acme.example"}, AutoKind.BOUNCE),
    ({"From": "Mail Delivery System <postmaster@acme.example>"}, AutoKind.BOUNCE),
    ({"From": '"Mail Delivery Subsystem" <MAILER-DAEMON>'}, AutoKind.BOUNCE),
    ({"From": "postmaster-fan@acme.example"}, None),
    (
        {"Content-Type": "multipart/report; report-type=delivery-status; boundary=x"},
        AutoKind.BOUNCE,
    ),
    ({"Content-Type": 'multipart/report; report-type="delivery-status"'}, AutoKind.BOUNCE),
    (
        {
            "Content-Type": "multipart/report; report-type=delivery-status",
            "Auto-Submitted": "auto-replied",
        },
        AutoKind.BOUNCE,
    ),
    (
        {"Content-Type": "multipart/report; report-type=disposition-notification"},
        AutoKind.AUTO_REPLY,
    ),
    ({"Return-Path": "<>"}, AutoKind.BOUNCE),
    ({"Return-Path": "<alice@acme.example>"}, None),
    (
        {
            "Subject": "Automatic reply: Printer broken",
            "X-Auto-Response-Suppress": "All",
            "X-MS-Exchange-Inbox-Rules-Loop": "alice@acme.example",
        },
        AutoKind.AUTO_REPLY,
    ),
    ({"Subject": "Out of Office: until Monday"}, AutoKind.AUTO_REPLY),
    ({"Subject": "Abwesenheitsnotiz: Urlaub"}, AutoKind.AUTO_REPLY),
    ({"Subject": "Question about my out of office settings"}, None),
    ({"Subject": "Printer broken", "From": "alice@acme.example"}, None),
]


@pytest.mark.parametrize(("headers", "expected"), AUTO_CASES)
def test_auto_kind(headers: dict[str, str], expected: AutoKind | None) -> None:
    assert auto_kind(headers) == expected
    assert auto_kind(list(headers.items())) == expected
    classified = classify_auto(headers)
    assert (classified is None) is (expected is None)
    if classified is not None:
        assert classified[1]
    # The same verdict comes out of a parsed message.
    lines = "\n".join(f"{name}: {value}" for name, value in headers.items())
    if "From" not in headers:
        lines = "From: alice@acme.example\n" + lines
    parsed = parse_message(msg(lines))
    assert parsed.auto_kind == expected
    assert (parsed.auto_reason is None) is (expected is None)


def test_envelope_null_sender_counts_as_bounce() -> None:
    assert parse_message(msg("From: a@b.example"), envelope_from="").auto_kind == AutoKind.BOUNCE
    assert parse_message(msg("From: a@b.example"), envelope_from="a@b.example").auto_kind is None


OUR_ID = "<docket.w1.t123.n1.0123456789abcdef@help.example.com>"
DSN_HEAD = """From: Mail Delivery System <MAILER-DAEMON@mx.acme.example>
To: support@help.example.com
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"
"""
DSN_STATUS = (
    "--dsn\r\nContent-Type: text/plain\r\n\r\nThis is the mail system. "
    "Your message could not be delivered.\r\n"
    "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
    "Final-Recipient: rfc822; gone@acme.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
)


def test_bounce_with_returned_message() -> None:
    body = (
        DSN_STATUS
        + "--dsn\r\nContent-Type: message/rfc822\r\n\r\n"
        + f"From: support@help.example.com\r\nMessage-ID: {OUR_ID}\r\nSubject: x\r\n\r\nhi\r\n"
        + "--dsn--\r\n"
    )
    parsed = parse_message(msg(DSN_HEAD, body))
    assert parsed.auto_kind == AutoKind.BOUNCE
    assert bounced_message_id(parsed) == OUR_ID
    assert "could not be delivered" in parsed.text


def test_bounce_with_headers_only() -> None:
    body = (
        DSN_STATUS
        + "--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + f"From: support@help.example.com\r\nMessage-Id: {OUR_ID}\r\n\r\n"
        + "--dsn--\r\n"
    )
    assert bounced_message_id(parse_message(msg(DSN_HEAD, body))) == OUR_ID


def test_plain_text_bounce_quotes_the_headers() -> None:
    body = (
        "Hi. This is the qmail-send program.\r\nI'm afraid I wasn't able to deliver.\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <support@help.example.com>\r\nMessage-ID: {OUR_ID}\r\n"
    )
    parsed = parse_message(msg("From: MAILER-DAEMON@mx.acme.example\nSubject: failure", body))
    assert bounced_message_id(parsed) == OUR_ID


def test_no_bounce_id_for_other_mail() -> None:
    body = f"Message-ID: {OUR_ID}\r\n"
    assert bounced_message_id(parse_message(msg("From: a@b.example", body))) is None


# --------------------------------------------------------------------------- reply extraction


@pytest.fixture(scope="module")
def library() -> Iterator[ReplyLibrary]:
    with ReplyLibrary() as runner:
        assert runner.start(wait=20), "the reply-parser process did not start"
        yield runner


QUOTED_TAIL = "\n\n> ##- Please type your reply above this line -##\n>\n> Hi Alice,\n> try this\n"

REPLY_CASES = [
    ("marker", "Thanks, that worked." + QUOTED_TAIL, "Thanks, that worked.", Cut.QUOTE),
    (
        "marker under a bare attribution",
        "Done.\n\nOn Mon, Agnes wrote:" + QUOTED_TAIL,
        "Done.",
        Cut.QUOTE,
    ),
    (
        "marker unquoted",
        f"New info here.\n\n{REPLY_MARKER}\n\nagent text\n",
        "New info here.",
        Cut.QUOTE,
    ),
    (
        "gmail attribution",
        "It works now.\n\nOn Mon, 3 Mar 2025 at 10:00, Docket <support@help.example.com> wrote:\n"
        "> earlier\n> text\n",
        "It works now.",
        Cut.QUOTE,
    ),
    (
        "wrapped attribution",
        "It works now.\n\nOn Mon, 3 Mar 2025 at 10:00, Docket Support <\n"
        "support@help.example.com> wrote:\n> earlier\n",
        "It works now.",
        Cut.QUOTE,
    ),
    (
        "outlook original message",
        "Please call me.\n\n-----Original Message-----\nFrom: Docket\nSent: Monday\n\nold\n",
        "Please call me.",
        Cut.HEADER,
    ),
    (
        "outlook header block",
        "Please call me.\n\n________________________________\nFrom: Docket Support\n"
        "Sent: Monday, March 3, 2025 10:00\nTo: Alice\nSubject: [#123] Printer\n\nold text\n",
        "Please call me.",
        Cut.HEADER,
    ),
    (
        "german attribution",
        "Danke, geht wieder.\n\nAm 03.03.2025 um 10:00 schrieb Docket <s@h.example>:\n> alt\n",
        "Danke, geht wieder.",
        Cut.QUOTE,
    ),
    (
        "sig dash dash",
        "Here are the logs.\n\n-- \nAlice Example\nACME Corp\n",
        "Here are the logs.",
        Cut.SIGNATURE,
    ),
    ("iphone", "Yes please.\n\nSent from my iPhone\n", "Yes please.", Cut.SIGNATURE),
    (
        "closing kept",
        "Thanks, fixed!\n\n    indented log line\n\nBest regards,\nBob\n" + QUOTED_TAIL,
        "Thanks, fixed!\n\n    indented log line\n\nBest regards,\nBob",
        Cut.QUOTE,
    ),
    (
        "bullets kept",
        "Steps:\n- one\n- two\n\nthen it fails\n",
        "Steps:\n- one\n- two\n\nthen it fails",
        Cut.NONE,
    ),
    (
        "sent-from sentence kept",
        "Sent from my laptop, the error shows again.\nAny idea?\n",
        "Sent from my laptop, the error shows again.\nAny idea?",
        Cut.NONE,
    ),
    (
        "bottom-posted",
        "On Mon, 3 Mar 2025, Agnes <a@help.example> wrote:\n> one\n> two\n> three\n\nMy answer.\n",
        "> two\n> three\nMy answer.",
        Cut.QUOTE,
    ),
    (
        "a bare attribution above answers stays",
        "Hi,\n\nMy colleague wrote:\n> The tray is broken.\n\nCan you check that?\n",
        "Hi,\n\nMy colleague wrote:\n> The tray is broken.\nCan you check that?",
        Cut.QUOTE,
    ),
    (
        "same line",
        "Great! On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:\n> old\n",
        "Great!",
        Cut.QUOTE,
    ),
    (
        "polish thunderbird",
        "Działa.\n\nW dniu 3.03.2025 o 10:15, użytkownik Agnes napisał:\n> stare\n",
        "Działa.",
        Cut.QUOTE,
    ),
    (
        "forward kept",
        "FYI\n\n---------- Forwarded message ---------\nFrom: A <a@x.example>\n\nthe body\n",
        "FYI\n\n---------- Forwarded message ---------\nFrom: A <a@x.example>\n\nthe body",
        Cut.NONE,
    ),
]


@pytest.mark.parametrize(
    ("text", "expected", "cut"), [pytest.param(*c[1:], id=str(c[0])) for c in REPLY_CASES]
)
def test_extract(text: str, expected: str, cut: Cut) -> None:
    found = extract(text)
    assert found.reply == expected
    assert found.cut is cut
    assert extract_reply(text) == expected


def test_languages_are_reported() -> None:
    assert extract("Ok\n\nAm 3.3.2025 schrieb A <a@b.example>:\n> x").language == "de"
    assert extract("Ok\n\nLe 3 mars 2025, A <a@b.example> a écrit :\n> x").language == "fr"
    assert extract("Ok\n").language is None
    spanish = "Hola\n\nDe: A <a@b.example>\nEnviado: lunes\nPara: x\nAsunto: y\n\nold"
    assert extract(spanish).language == "es"
    assert extract(spanish.replace("Asunto", "Assunto")).language == "pt"


def test_marker_cut_comes_first() -> None:
    # The marker line in an html2text-converted body is escaped; it still cuts.
    assert extract_reply("Fine now.\n\n\\##- Please type your reply above this line -##\nold") == (
        "Fine now."
    )
    assert extract_reply("  \n" + QUOTED_TAIL) == ""
    assert extract_reply("custom\n== cut here ==\nrest", marker="== cut here ==") == "custom"


def test_inline_answers_keep_their_quotes() -> None:
    text = "> Which model?\nHP 4000\n> Since when?\nMonday\n\n> old tail\n> more\n"
    assert extract_reply(text) == "> Which model?\nHP 4000\n> Since when?\nMonday"


def test_nothing_new_keeps_the_whole_text() -> None:
    text = "On Mon, 3 Mar 2025, Alice <a@b.example> wrote:\n> only quoted\n"
    assert extract_reply(text) == text.strip()


def test_forward_subject_keeps_an_outlook_header_block() -> None:
    text = (
        "FYI\n\nFrom: Supplier <s@x.example>\nSent: Monday\nTo: me\nSubject: Toner\n\nShips Friday."
    )
    assert extract_reply(text, subject="FW: Toner") == text
    assert extract_reply(text, subject="RE: Toner") == "FYI"


def test_html_quote_containers_are_marked() -> None:
    markup = '<div>new</div><div class="gmail_quote">On x wrote:<blockquote>old</blockquote></div>'
    marked = mark_html_quotes(markup)
    assert marked.index("docket-quote-start") < marked.index("gmail_quote")
    assert marked.index("docket-quote-end") > marked.index("</blockquote>")
    assert mark_html_quotes("<div>no quote here</div>") == "<div>no quote here</div>"
    raw = msg("From: a@b.example\nContent-Type: text/html; charset=utf-8", markup)
    parsed = parse_message(raw)
    assert "docket" not in parsed.text and "old" in parsed.text
    assert extract_reply(parsed.reply_source) == "new"


def test_library_blow_up_is_cut_off_and_runner_recovers(library: ReplyLibrary) -> None:
    crafted = "On " * 6000  # 18 KB: under max_chars, seconds of backtracking in the library
    started = time.monotonic()
    assert library.reply(crafted, time_limit=0.5) == crafted.strip()
    assert time.monotonic() - started < 2
    assert library.start(wait=20)
    text = "Thanks, fixed!\n\nBest regards,\nBob\n"
    assert library.reply(text, time_limit=10) == "Thanks, fixed!"


def test_library_skips_long_input(library: ReplyLibrary) -> None:
    text = "Fixed.\n\nBest regards,\nBob\n" + "x" * 30_000
    assert library.reply(text, max_chars=20_000).startswith("Fixed.\n\nBest regards,\nBob")


@pytest.mark.parametrize(
    "markup",
    [
        "gmail_quote " * 150_000,
        "<hr>" * 400_000,
        "<hr>From: a<br>Sent: b<br>To: c<br>" * 40_000,
        "<div class=gmail_quote>" + "<div>" * 200_000,
        '<div class="gmail_quote">' * 60_000,
        "<" * 1_000_000,
    ],
    ids=["needle-in-text", "hr", "hr-headers", "unclosed", "nested", "brackets"],
)
def test_marking_crafted_html_is_fast(markup: str) -> None:
    started = time.process_time()
    mark_html_quotes(markup)
    parse_message(msg("From: a@b.example\nContent-Type: text/html", markup))
    assert time.process_time() - started < 3


@pytest.mark.parametrize(
    "pattern",
    ["From: x{}\n", "On a{}\n", "a{}: b\n", "> a{}\n", "---- On {} wrote ----\n", "{0} wrote: "],
)
def test_extraction_of_a_whole_crafted_body_is_fast(pattern: str) -> None:
    parts, size, index = [], 0, 0
    while size < 200_000:  # the largest body parse_message keeps
        part = pattern.format(index)
        parts.append(part)
        size, index = size + len(part), index + 1
    started = time.process_time()
    extract("".join(parts)[:200_000])
    assert time.process_time() - started < 1.0


def test_extraction_of_crafted_text_is_fast() -> None:
    crafted = "On " * 6000
    started = time.process_time()
    assert extract_reply(crafted) == crafted.strip()
    assert time.process_time() - started < 2


# --------------------------------------------------------------------------- outgoing mail

SENT_AT = datetime(2025, 3, 10, 12, 30, tzinfo=timezone(timedelta(hours=1)))


def reply(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "from_addr": "support@help.example.com",
        "from_name": "Dana (Docket Support)",
        "reply_to": "support+t123.w1.abcdef0123@help.example.com",
        "to_addr": "alice@acme.example",
        "subject": "Re: [#123] Printer broken",
        "body_text": "Please restart the printer.\nBest, Dana",
        "message_id": "<docket.w1.t123.n2.0123456789abcdef@help.example.com>",
        "in_reply_to": "<abc123@mail.acme.example>",
        "references": ["<docket.w1.t123.n1.aaaaaaaaaaaaaaaa@help.example.com>"],
        "date": SENT_AT,
    }
    args.update(overrides)
    return build_reply_email(**args)  # type: ignore[arg-type]


def _headers(raw: bytes) -> dict[str, list[str]]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", "\t")
    result: dict[str, list[str]] = {}
    for line in unfolded.split("\r\n"):
        name, _, value = line.partition(":")
        result.setdefault(name.lower(), []).append(value.strip())
    return result


def test_build_reply_email_headers_and_body() -> None:
    raw = reply()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    headers = _headers(raw)
    assert headers["from"] == ['"Dana (Docket Support)" <support@help.example.com>']
    assert headers["to"] == ["alice@acme.example"]
    assert headers["reply-to"] == ["support+t123.w1.abcdef0123@help.example.com"]
    assert headers["subject"] == ["Re: [#123] Printer broken"]
    assert headers["message-id"] == ["<docket.w1.t123.n2.0123456789abcdef@help.example.com>"]
    assert headers["in-reply-to"] == ["<abc123@mail.acme.example>"]
    assert headers["references"] == [
        "<docket.w1.t123.n1.aaaaaaaaaaaaaaaa@help.example.com> <abc123@mail.acme.example>"
    ]
    assert headers["date"] == ["Mon, 10 Mar 2025 12:30:00 +0100"]
    assert "auto-submitted" not in headers and "precedence" not in headers

    parsed = parse_message(raw)
    assert parsed.text.startswith(f"{REPLY_MARKER}\n\nPlease restart the printer.\n")
    assert parsed.from_addr == "support@help.example.com"
    assert parsed.in_reply_to == "<abc123@mail.acme.example>"
    # The customer's answer to it is cut at the marker.
    answer = f"Done, thanks.\n\n> {parsed.text.replace(chr(10), chr(10) + '> ')}"
    assert extract_reply(answer) == "Done, thanks."


def test_non_ascii_subject_and_body_round_trip() -> None:
    raw = reply(subject="Re: [#5] Grüße — café", body_text="Schöne Grüße 😃", from_name="Jörg")
    assert raw.isascii()
    parsed = parse_message(raw)
    assert parsed.subject == "Re: [#5] Grüße — café"
    assert parsed.from_name == "Jörg"
    assert parsed.text.endswith("Schöne Grüße 😃\n")


def test_references_deduplicated_and_capped() -> None:
    refs = [f"<r{i}@x.example>" for i in range(30)] + ["<r3@x.example>"]
    headers = _headers(reply(references=refs, in_reply_to="<r29@x.example>"))
    chain = headers["references"][0].split()
    assert len(chain) == 20 and len(set(chain)) == 20
    assert chain[0] == "<r0@x.example>" and chain[-1] == "<r29@x.example>"
    assert headers["in-reply-to"] == ["<r29@x.example>"]


def test_no_parent_means_no_threading_headers() -> None:
    headers = _headers(reply(in_reply_to=None, references=[]))
    assert "in-reply-to" not in headers and "references" not in headers


@pytest.mark.parametrize(
    "bad_id",
    [
        "<a@b>\r\nBcc: evil@x.example",
        "<a@b>\nX-Evil: 1",
        "<[abc@def]> extra",
        "no-brackets@x",
        "<two@at@signs>",
        "<nodomain>",
        "<sp ace@x>",
        "<ctrl\x00@x>",
        "<ünï@x>",
        "",
    ],
)
def test_customer_ids_that_could_inject_are_dropped(bad_id: str) -> None:
    assert not is_valid_message_id(bad_id)
    raw = reply(in_reply_to=bad_id, references=[bad_id, "<ok@x.example>"])
    headers = _headers(raw)
    assert "bcc" not in headers and "x-evil" not in headers
    assert "in-reply-to" not in headers
    assert headers["references"] == ["<ok@x.example>"]


def test_subject_and_name_injection_is_flattened() -> None:
    raw = reply(
        subject="Hello\r\nBcc: evil@x.example\r\n\r\nbody",
        from_name="Dana\r\nBcc: evil@x.example",
    )
    headers = _headers(raw)
    assert "bcc" not in headers
    assert headers["subject"] == ["Hello Bcc: evil@x.example body"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"to_addr": "alice@acme.example\r\nBcc: evil@x.example"},
        {"to_addr": "alice@acme.example, evil@x.example"},
        {"to_addr": "Alice <alice@acme.example>"},
        {"to_addr": "not-an-address"},
        {"from_addr": "support@help.example.com\nBcc: x@y.example"},
        {"reply_to": "a@b.example\r\nX: y"},
        {"message_id": "<ours@x>\r\nBcc: evil@x.example"},
        {"message_id": "ours-without-brackets@x"},
        {"date": datetime(2025, 3, 10, 12, 30)},
    ],
)
def test_our_own_fields_must_be_valid(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        reply(**overrides)


def test_html_text_has_no_markdown_escapes() -> None:
    markup = "<div>1. Toner</div><div>- dash</div><div>C:\\temp\\- x</div><div>-- </div>"
    raw = msg("From: a@b.example\nContent-Type: text/html; charset=utf-8", markup)
    lines = [line for line in parse_message(raw).text.split("\n") if line.strip()]
    assert lines == ["1. Toner", "- dash", "C:\\temp\\- x", "-- "]
