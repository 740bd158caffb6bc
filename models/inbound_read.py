"""Reading a stored mail: parse it and cut out the customer's new text. Pure and blocking.

The mail worker runs `read_mail` off the event loop (a large mail in a child process, which
imports this module and what it needs only); models.inbound_apply applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.mail import MailRejected, ParsedMail, parse_message
from models.reply_text import Cut, extract


@dataclass(frozen=True)
class ReadMail:
    """A stored mail as read off the event loop: parsed, with only the new text cut out."""

    parsed: ParsedMail | None
    reply_text: str
    rejected: str | None = None
    cut: Cut = Cut.NONE
    language: str | None = None


def envelope_sender(mail_from: str | None) -> str | None:
    """The SMTP MAIL FROM as models.mail wants it ("" for the null sender of bounces)."""
    if mail_from is None:
        return None
    return mail_from.strip().strip("<>")


def read_mail(raw: bytes, *, envelope_from: str | None) -> ReadMail:
    """Parse a stored mail and cut out the new text. Pure and blocking: run it in a thread."""
    try:
        parsed = parse_message(raw, envelope_from=envelope_sender(envelope_from))
    except MailRejected as exc:
        return ReadMail(None, "", exc.reason)
    if parsed.auto_kind is not None:
        return ReadMail(parsed, parsed.text[:2000].strip())
    found = extract(parsed.reply_source, subject=parsed.subject)
    return ReadMail(parsed, found.reply, cut=found.cut, language=found.language)
