"""The email an agent's Slack reply goes out as.

Every header value is checked or rebuilt (never copied unchecked from a customer's mail), and
the finished header block is parsed back to prove nothing was injected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

from models.mail_headers import (
    MAX_NAME_CHARS,
    MAX_SUBJECT_CHARS,
    clean_line,
    decode_words,
    valid_address,
)
from models.reply_text import REPLY_MARKER

# The stricter form allowed into headers we send.
_OUTGOING_MSGID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,200}>")


def is_valid_message_id(value: str | None) -> bool:
    """Whether `value` may go into a header we send: `<local@domain>`, printable ASCII only."""
    return (
        value is not None
        and value.isascii()
        and value.isprintable()
        and _OUTGOING_MSGID.fullmatch(value) is not None
    )


def _outgoing_text(text: str, limit: int) -> str:
    """Header text we send: one line, and no RFC 2047 syntax left for the stdlib to decode.

    Python 3.11 before 3.11.10 decodes an encoded word in a value it is given and writes the
    decoded CR/LF back out raw (CVE-2024-6923): decode it ourselves, flatten, then break up any
    "=?" that is left.
    """
    return clean_line(decode_words(clean_line(text, limit * 4)), limit).replace("=?", "= ?")


def _outgoing_address(value: str | None, what: str) -> str:
    addr = valid_address(value or "")
    if addr is None or not addr.isascii() or value is None or value.strip() != value:
        raise ValueError(f"invalid {what} address")
    return addr


def build_reply_email(
    *,
    from_addr: str,
    from_name: str,
    reply_to: str | None,
    to_addr: str,
    subject: str,
    body_text: str,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
    date: datetime,
) -> bytes:
    """An agent's reply as an RFC 5322 message (SMTP line endings), threaded on the customer's.

    The body starts with `REPLY_MARKER` and a blank line. In-Reply-To and References come from
    customer mail, so ids that are not a plain `<local@domain>` are dropped; References is the
    previous references plus `in_reply_to`, de-duplicated and capped at 20 (the root and the
    latest). Raises ValueError for a bad address, Message-ID or naive date: those are ours.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not is_valid_message_id(message_id):
        raise ValueError("invalid Message-ID")
    sender = _outgoing_address(from_addr, "from")
    recipient = _outgoing_address(to_addr, "to")
    parent = in_reply_to if is_valid_message_id(in_reply_to) else None
    chain: list[str] = []
    for ref in [*references, *([parent] if parent else [])]:
        if is_valid_message_id(ref) and ref not in chain and ref != message_id:
            chain.append(ref)
    if len(chain) > 20:
        chain = [chain[0], *chain[-19:]]

    message = EmailMessage(policy=email_policy.SMTP)
    display_name = _outgoing_text(from_name, MAX_NAME_CHARS)
    message["From"] = Address(display_name=display_name, addr_spec=sender)
    message["To"] = Address(addr_spec=recipient)
    if reply_to is not None:
        message["Reply-To"] = Address(addr_spec=_outgoing_address(reply_to, "reply-to"))
    message["Subject"] = _outgoing_text(subject, MAX_SUBJECT_CHARS)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if parent:
        message["In-Reply-To"] = parent
    if chain:
        message["References"] = " ".join(chain)
    body = body_text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    # Quoted-printable keeps the message 7-bit for relays without 8BITMIME.
    message.set_content(
        f"{REPLY_MARKER}\n\n{body}", subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    data = message.as_bytes(policy=email_policy.SMTP)
    _check_header_block(data, [name for name, _ in message.items()])
    return data


def _check_header_block(data: bytes, expected: list[str]) -> None:
    # Belt and braces against header injection through folding: what a receiver parses back
    # must be exactly the headers we set.
    head = data.split(b"\r\n\r\n", 1)[0]
    if (
        not head.isascii()
        or b"\r" in head.replace(b"\r\n", b"")
        or b"\n" in head.replace(b"\r\n", b"")
    ):
        raise ValueError("outgoing headers hold a bare CR or LF")
    parsed = BytesParser(policy=email_policy.compat32).parsebytes(data, headersonly=True)
    if [name.lower() for name in parsed.keys()] != [name.lower() for name in expected]:
        raise ValueError("outgoing headers do not survive a round trip")
