"""Reading a customer's mail: `parse_message` turns raw bytes into a `ParsedMail`.

Nothing here touches the database, the network or the SMTP server, and `parse_message` never
raises anything but `MailRejected` (`models.reply_text` then keeps only what the customer
typed). Its parts: headers and addresses (`models.mail_headers`), bodies and attachments
(`models.mail_body`), auto-reply and bounce classification (`models.mail_auto`); outgoing
replies are built by `models.mail_outgoing`.

Structure is parsed with the `compat32` policy: the `default` policy parses Content-Type while it
splits the message, and its header grammar is quadratic on crafted values (3 s for a 100 KB
Content-Type, 35 s for a 100 KB From). Headers are then decoded one by one, with the `default`
header classes on length-capped values and the `compat32` helpers where those raise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.parser import BytesParser

from models.mail_auto import AutoKind, classify
from models.mail_body import Attachment, BodyWalker, html_to_text
from models.mail_headers import (
    MAX_SUBJECT_CHARS,
    SURROGATES,
    Headers,
    clean_line,
    decode_words,
    header_text,
    msgid_tokens,
    parse_address_list,
    parse_date,
    parse_mailbox,
    parse_message_id,
)
from models.reply_text import mark_html_quotes, strip_marks

__all__ = [
    "AutoKind",
    "MailRejected",
    "ParsedMail",
    "bounced_message_id",
    "parse_message",
]

_MAX_REFERENCES = 100

_MAX_DEFECTS = 50


class MailRejected(Exception):
    """A message Docket cannot read at all; `reason` is short and safe to show to admins."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParsedMail:
    """What Docket reads from one inbound message. Addresses are lower case; ids are `<...>`."""

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_addr: str | None
    from_name: str | None
    reply_to_addr: str | None
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str
    text_from_html: bool
    attachments: tuple[Attachment, ...]
    auto_kind: AutoKind | None
    auto_reason: str | None
    bounce_message_id: str | None
    defects: tuple[str, ...]
    # An HTML body's text with its client's quote container marked (models.reply_text), or
    # None when the body was plain text or had no container.
    marked_text: str | None = None

    @property
    def reply_source(self) -> str:
        """The text to look for the new reply in: structure marks included when there are any."""
        return self.marked_text if self.marked_text is not None else self.text

    # `Authentication-Results` header values, topmost first (read by models.mailauth).
    auth_results: tuple[str, ...] = ()


def bounced_message_id(parsed: ParsedMail) -> str | None:
    """For a bounce, the Message-ID of the mail that could not be delivered (usually ours)."""
    return parsed.bounce_message_id if parsed.auto_kind is AutoKind.BOUNCE else None


_EMBEDDED_MSGID_LINE = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,995}>)", re.I | re.M)


def parse_message(
    raw: bytes,
    *,
    max_body_chars: int = 200_000,
    keep_attachment_bytes: int = 10 * 1024 * 1024,
    envelope_from: str | None = None,
) -> ParsedMail:
    """Read one inbound message; raises only `MailRejected`.

    A bad header becomes None (or is left out) with a note in `defects`; only a message the
    stdlib cannot split at all is rejected. `keep_attachment_bytes` is a budget over all
    attachments of the message. `envelope_from` is the SMTP MAIL FROM, used as Return-Path
    when the message has none ("" is the null sender of bounces).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MailRejected("unparseable: not bytes")
    try:
        return _parse(
            bytes(raw),
            max_body_chars=max_body_chars,
            keep_attachment_bytes=keep_attachment_bytes,
            envelope_from=envelope_from,
        )
    except MailRejected:
        raise
    except Exception as exc:
        raise MailRejected(f"unparseable: {type(exc).__name__}") from exc


_MAX_AUTH_RESULTS = 20


def _parse(
    raw: bytes, *, max_body_chars: int, keep_attachment_bytes: int, envelope_from: str | None
) -> ParsedMail:
    defects: list[str] = []
    walker = BodyWalker(max_body_chars=max_body_chars, keep_attachment_bytes=keep_attachment_bytes)
    try:
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw)
    except RecursionError:
        # Keep the headers (threading still works); the body is beyond reading.
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw, headersonly=True)
        message.set_payload("")
        defects.append("MIME structure too deep; body not read")
    headers = Headers(message.raw_items())

    from_values = headers.all("from")
    from_addr: str | None = None
    from_name: str | None = None
    if len(from_values) > 1:
        defects.append("more than one From header")
    elif from_values:
        from_addr, from_name = parse_mailbox(from_values[0], defects, "From")
    else:
        defects.append("no From header")
    reply_to_addr: str | None = None
    if headers.first("reply-to") is not None:
        reply_to_addr, _ = parse_mailbox(headers.first("reply-to") or "", defects, "Reply-To")

    if len(headers.all("subject")) > 1:
        defects.append("more than one Subject header")
    subject = clean_line(decode_words(headers.first("subject") or ""), MAX_SUBJECT_CHARS)

    message_id = parse_message_id(headers.first("message-id"))
    if headers.first("message-id") is not None and message_id is None:
        defects.append("Message-ID unreadable")
    in_reply_to_tokens = msgid_tokens(headers.first("in-reply-to") or "", 1)
    references = msgid_tokens(" ".join(headers.all("references")))
    if len(references) > _MAX_REFERENCES:
        defects.append("References truncated")
        # The root and the most recent ids are the ones threading looks at.
        references = [references[0], *references[-(_MAX_REFERENCES - 1) :]]

    if envelope_from is not None and headers.first("return-path") is None:
        envelope = header_text(envelope_from).strip()
        headers = Headers([*message.raw_items(), ("Return-Path", f"<{envelope.strip('<>')}>")])
    classified = classify(headers)

    walker.walk(message)
    defects.extend(walker.defects)
    text_from_html = False
    marked_text: str | None = None
    if walker.plain:
        text = "\n".join(walker.plain)
    elif walker.html:
        # One conversion for all pieces, so the size cap bounds the whole message's work.
        markup = "<hr>".join(walker.html)
        marked = mark_html_quotes(markup)
        text = html_to_text(marked, defects)
        text_from_html = True
        if marked is not markup:
            marked_text = text
            text = strip_marks(text)
    else:
        text = ""
    if len(text) > max_body_chars:
        defects.append("body truncated")
        text = text[:max_body_chars]
    text = SURROGATES.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\x00", "")
    if marked_text is not None:
        marked_text = SURROGATES.sub("\ufffd", marked_text.replace("\r\n", "\n"))
        marked_text = marked_text.replace("\r", "\n").replace("\x00", "")[:max_body_chars]

    bounce_id: str | None = None
    if classified and classified[0] is AutoKind.BOUNCE:
        if walker.embedded_ids:
            bounce_id = walker.embedded_ids[0]
        else:
            match = _EMBEDDED_MSGID_LINE.search(text[:200_000])
            bounce_id = match.group(1) if match else None

    to_addrs = parse_address_list(headers.all("to"), defects, "To")
    cc_addrs = parse_address_list(headers.all("cc"), defects, "Cc")
    date = parse_date(headers.first("date"), defects)
    defects = list(dict.fromkeys(defects))
    if len(defects) > _MAX_DEFECTS:
        defects = [*defects[:_MAX_DEFECTS], f"{len(defects) - _MAX_DEFECTS} more defects"]

    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to_tokens[0] if in_reply_to_tokens else None,
        references=tuple(references),
        from_addr=from_addr,
        from_name=from_name,
        reply_to_addr=reply_to_addr,
        to_addrs=to_addrs,
        cc_addrs=cc_addrs,
        subject=subject,
        date=date,
        text=text,
        text_from_html=text_from_html,
        attachments=tuple(walker.attachments),
        auto_kind=classified[0] if classified else None,
        auto_reason=classified[1] if classified else None,
        bounce_message_id=bounce_id,
        defects=tuple(defects),
        marked_text=marked_text,
        auth_results=tuple(headers.all("authentication-results")[:_MAX_AUTH_RESULTS]),
    )
