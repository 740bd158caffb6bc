"""Docket's pure email rules: parse a customer's mail, find the new text, spot loops, build replies.

Nothing here touches the database, the network or the SMTP server. `parse_message` turns raw
bytes into a `ParsedMail` and never raises anything but `MailRejected` (`models.reply_text`
then keeps only what the customer typed); `auto_kind` says whether a mail is an auto-reply,
bulk or a bounce; `build_reply_email` builds the message an agent's Slack reply goes out as.

Structure is parsed with the `compat32` policy: the `default` policy parses Content-Type while it
splits the message, and its header grammar is quadratic on crafted values (3 s for a 100 KB
Content-Type, 35 s for a 100 KB From). Headers are then decoded one by one, with the `default`
header classes on length-capped values and the `compat32` helpers where those raise.
"""

from __future__ import annotations

import codecs
import html
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum
from typing import Any, cast

import html2text

from models.reply_text import REPLY_MARKER, mark_html_quotes, strip_marks

__all__ = [
    "MAX_MIME_DEPTH",
    "MAX_MIME_PARTS",
    "REPLY_MARKER",
    "Attachment",
    "AutoKind",
    "MailRejected",
    "ParsedMail",
    "auto_kind",
    "bounced_message_id",
    "build_reply_email",
    "classify_auto",
    "is_valid_message_id",
    "parse_message",
]

MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 500

# Structured parsing in the stdlib is quadratic in the value's length (0.9 s for 8 KB From,
# Reply-To, To and Cc together): longer values go to the linear compat32 helpers or are refused.
_MAX_STRUCTURED_CHARS = 4_096
_MAX_ADDRESS_LIST_CHARS = 65_536
_MAX_ADDRESSES = 100
_MAX_REFERENCES = 100
_MAX_SUBJECT_CHARS = 998
_MAX_NAME_CHARS = 200
_MAX_FILENAME_CHARS = 255
# html2text takes up to ~10 us per character of crafted markup, and nested lists blow its output
# up. Comments, <head>, <style> and <script> are dropped first, so 64 KB of markup is pages of text.
_MAX_HTML_CHARS = 65_536
_MAX_HTML_LIST_DEPTH = 20
_MAX_DEFECTS = 50

_DEFAULT_POLICY = email_policy.default
_PARSEADDR_HAS_STRICT = "strict" in inspect.signature(parseaddr).parameters

# Message-ids we accept from customers: printable ASCII without angle brackets or spaces.
_MSGID_TOKEN = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,995})>")
_BARE_MSGID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,995}")
# The stricter form allowed into headers we send.
_OUTGOING_MSGID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,200}>")
# Addresses: no spaces, specials or controls; non-ASCII is allowed (SMTPUTF8 senders exist).
_LOCAL_CHAR = r"[^\s<>()\[\]\\,;:@\"\x00-\x1f\x7f]"
_LABEL_CHAR = r"[^\s<>()\[\]\\,;:@\"\x00-\x1f\x7f.]"
_ADDR_SPEC = re.compile(rf"{_LOCAL_CHAR}{{1,64}}@{_LABEL_CHAR}{{1,63}}(?:\.{_LABEL_CHAR}{{1,63}})+")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
# Lone surrogates (undecodable bytes kept by the stdlib) cannot be stored as UTF-8.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_WHITESPACE_RUN = re.compile(r"\s+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_HTML_LIST_TAG = re.compile(r"<(/?)(?:ol|ul|dl|blockquote)\b[^<>]{0,1000}>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^<>]{0,2000}>")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+.!-])")

# Codecs that are not plain charsets or whose decoders are slow on crafted input.
_DENIED_CODECS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"}
)
# Labels as mail clients use them (WHATWG encoding labels): supersets decode more real mail.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
# Labels that really mean windows-1252 when 8-bit bytes appear (what browsers do as well).
_LATIN1_LABELS = frozenset(
    {"us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819"}
)


class MailRejected(Exception):
    """A message Docket cannot read at all; `reason` is short and safe to show to admins."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AutoKind(StrEnum):
    """Mail no person wrote: it never creates a ticket."""

    AUTO_REPLY = "auto_reply"  # out-of-office, vacation, read receipts, ticket-system answers
    BULK = "bulk"  # newsletters and mailing lists
    BOUNCE = "bounce"  # delivery status notifications


@dataclass(frozen=True)
class Attachment:
    """A file that came with a mail. `content` is None when it went over the keep budget."""

    filename: str | None
    content_type: str
    size: int
    content: bytes | None


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


# --------------------------------------------------------------------------- header helpers


def _header_text(value: object) -> str:
    """A stored header value as readable text: raw 8-bit is UTF-8 when it decodes, else Latin-1."""
    text = value if isinstance(value, str) else str(value)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raw = text.encode("utf-8", "replace")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return _FOLD.sub("", text).replace("\r", " ").replace("\n", " ").replace("\x00", "")


def _clean_line(text: str, limit: int) -> str:
    """One line of display text: no control characters, single spaces, at most `limit` chars."""
    text = _SURROGATES.sub("\ufffd", _CONTROL_CHARS.sub(" ", text))
    return _WHITESPACE_RUN.sub(" ", text).strip()[:limit]


class _Headers:
    """Case-insensitive view of one header block, values already decoded to text."""

    def __init__(self, items: Iterable[tuple[str, object]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            key = _header_text(name).strip().lower()
            self._values.setdefault(key, []).append(_header_text(value))

    def all(self, name: str) -> list[str]:
        return self._values.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def _as_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | _Headers) -> _Headers:
    if isinstance(headers, _Headers):
        return headers
    if isinstance(headers, Mapping):
        return _Headers(headers.items())
    return _Headers(headers)


def _valid_address(addr: str) -> str | None:
    addr = addr.strip()
    if len(addr) > 320 or not _ADDR_SPEC.fullmatch(addr):
        return None
    return addr.lower()


def _parse_mailbox(value: str, defects: list[str], label: str) -> tuple[str | None, str | None]:
    """The single sender in a From-like header, or None when it is missing or ambiguous."""
    if len(value) > _MAX_STRUCTURED_CHARS:
        defects.append(f"{label} header too long")
        return None, None
    default_pair: tuple[str, str] | None = None
    try:
        mailboxes = _DEFAULT_POLICY.header_factory(label.lower(), value).addresses
        if len(mailboxes) == 1:
            default_pair = (mailboxes[0].display_name, mailboxes[0].addr_spec)
        else:
            defects.append(f"{label} header does not hold exactly one address")
            return None, None
    except Exception as exc:
        defects.append(f"{label} header: {type(exc).__name__}")
    try:
        pairs = getaddresses([value])
        if _PARSEADDR_HAS_STRICT:
            compat = cast(Any, parseaddr)(value, strict=True)
        else:
            compat = parseaddr(value)
    except Exception as exc:
        defects.append(f"{label} header (compat32): {type(exc).__name__}")
        return None, None
    # Two parsers that disagree (or a list where one address belongs) is the classic spoofing
    # shape, e.g. `alice@example.org)<bob@example.org>`: refuse to pick one.
    if len(pairs) != 1 or not compat[1] or pairs[0][1] != compat[1]:
        defects.append(f"{label} header is ambiguous")
        return None, None
    if default_pair is not None and default_pair[1].lower() != compat[1].lower():
        defects.append(f"{label} header is ambiguous")
        return None, None
    addr = _valid_address(compat[1])
    if addr is None:
        defects.append(f"{label} address is invalid")
        return None, None
    name = default_pair[0] if default_pair is not None else _decode_words(compat[0])
    return addr, (_clean_line(name, _MAX_NAME_CHARS) or None)


def _parse_address_list(values: list[str], defects: list[str], label: str) -> tuple[str, ...]:
    """Every valid address of To/Cc-like headers, lower case, de-duplicated, capped."""
    joined = ", ".join(values)
    if len(joined) > _MAX_ADDRESS_LIST_CHARS:
        defects.append(f"{label} header too long; truncated")
        joined = joined[:_MAX_ADDRESS_LIST_CHARS]
    specs: list[str] = []
    parsed = False
    if len(joined) <= _MAX_STRUCTURED_CHARS:
        try:
            specs = [a.addr_spec for a in _DEFAULT_POLICY.header_factory("to", joined).addresses]
            parsed = True
        except Exception as exc:
            defects.append(f"{label} header: {type(exc).__name__}")
    if not parsed:
        try:
            specs = [addr for _name, addr in getaddresses([joined])]
        except Exception as exc:
            defects.append(f"{label} header (compat32): {type(exc).__name__}")
            return ()
    result: dict[str, None] = {}
    for spec in specs:
        addr = _valid_address(spec)
        if addr is None:
            if spec.strip() and spec.strip() != "<>":
                defects.append(f"{label} holds an invalid address")
            continue
        if len(result) == _MAX_ADDRESSES and addr not in result:
            defects.append(f"{label} holds more than {_MAX_ADDRESSES} addresses")
            break
        result.setdefault(addr)
    return tuple(result)


def _decode_words(value: str) -> str:
    """RFC 2047 decoding: the `default` header class, falling back to compat32's decoder."""
    if "=?" not in value:
        return value
    capped = value[: _MAX_STRUCTURED_CHARS * 2]
    try:
        return str(_DEFAULT_POLICY.header_factory("subject", capped))
    except Exception:
        pass
    try:
        pieces = []
        for chunk, charset in decode_header(capped):
            if isinstance(chunk, bytes):
                pieces.append(_decode_bytes(chunk, charset)[0])
            else:
                pieces.append(chunk)
        return "".join(pieces)
    except Exception:
        return capped


def _msgid_tokens(value: str, limit: int | None = None) -> list[str]:
    found: dict[str, None] = {}
    for match in _MSGID_TOKEN.finditer(value[:65_536]):
        found.setdefault(f"<{match.group(1)}>")
        if limit is not None and len(found) >= limit:
            break
    return list(found)


def _parse_message_id(value: str | None) -> str | None:
    """A customer's Message-ID normalised to `<...>`; Exchange-style ids are kept as they are."""
    if value is None:
        return None
    tokens = _msgid_tokens(value, 1)
    if tokens:
        return tokens[0]
    bare = value.strip()
    if _BARE_MSGID.fullmatch(bare):
        return f"<{bare}>"
    return None


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value[:256])
    except Exception:
        defects.append("Date header unparseable")
        return None
    if parsed is None:
        return None
    # "-0000" means UTC with the sender's zone unknown (RFC 5322 3.3).
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- loops and noise

_AUTO_SUBJECT_PREFIXES = (
    "automatic reply:",
    "auto reply:",
    "autoreply:",
    "auto-reply:",
    "out of office:",
    "out of office autoreply:",
    "abwesenheitsnotiz:",
    "automatische antwort:",
    "réponse automatique :",
    "réponse automatique:",
    "respuesta automática:",
    "risposta automatica:",
    "automatisch antwoord:",
)
_BOUNCE_SENDER = re.compile(r"(?:^|[<\s\"'(:,])(?:mailer-daemon|postmaster)(?:@|>|\s*$)")
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([a-z-]+)")
_NEGATIVE = frozenset({"", "no", "false", "0", "off"})


def classify_auto(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[AutoKind, str] | None:
    """Like `auto_kind`, with the reason (which header said so) for the audit log."""
    return _classify(_as_headers(headers))


def _classify(h: _Headers) -> tuple[AutoKind, str] | None:

    def low(name: str) -> str:
        return (h.first(name) or "")[:1000].strip().lower()

    content_type = low("content-type")
    report_type = _REPORT_TYPE.search(content_type)
    is_report = content_type.startswith("multipart/report")
    if is_report and report_type and report_type.group(1) == "delivery-status":
        return AutoKind.BOUNCE, "delivery status report (multipart/report)"
    if _BOUNCE_SENDER.search(low("from")):
        return AutoKind.BOUNCE, "sent by a mailer daemon or postmaster"
    if is_report and report_type and report_type.group(1) == "disposition-notification":
        return AutoKind.AUTO_REPLY, "read receipt (disposition notification)"
    auto_submitted = low("auto-submitted").split(";")[0].strip()
    if h.first("auto-submitted") is not None and auto_submitted != "no":
        return AutoKind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted or '(empty)'}"
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated", "x-auto-response-suppress"):
        if h.first(name) is not None and low(name) not in _NEGATIVE:
            return AutoKind.AUTO_REPLY, f"{name} header present"
    precedence = low("precedence")
    if precedence == "auto_reply":
        return AutoKind.AUTO_REPLY, "Precedence: auto_reply"
    if precedence in ("bulk", "junk", "list"):
        return AutoKind.BULK, f"Precedence: {precedence}"
    # A person may write through a list (a shared Google Group, say): List-* alone is not enough.
    if precedence and (h.first("list-id") is not None or h.first("list-unsubscribe") is not None):
        return AutoKind.BULK, "mailing-list headers with a Precedence header"
    subject = low("subject")
    if subject.startswith(_AUTO_SUBJECT_PREFIXES):
        return AutoKind.AUTO_REPLY, "auto-reply subject"
    if low("return-path") == "<>":
        return AutoKind.BOUNCE, "null Return-Path"
    return None


def auto_kind(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> AutoKind | None:
    """Whether a mail is an auto-reply, bulk mail or a bounce, from its top-level headers.

    `headers` is a mapping or (name, value) pairs with decoded values. Bounce signals win
    (delivery reports carry Auto-Submitted too), then auto-reply, then bulk; a null
    Return-Path alone counts as a bounce.
    """
    result = classify_auto(headers)
    return result[0] if result else None


def bounced_message_id(parsed: ParsedMail) -> str | None:
    """For a bounce, the Message-ID of the mail that could not be delivered (usually ours)."""
    return parsed.bounce_message_id if parsed.auto_kind is AutoKind.BOUNCE else None


# --------------------------------------------------------------------------- bodies


def _decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text from bytes in a declared charset; returns (text, defect or None). Never raises."""
    name = (charset or "").strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name or name in _LATIN1_LABELS:
        if data.isascii():
            return data.decode("ascii"), None
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace"), None
    try:
        info = codecs.lookup(name)
        if info.name in _DENIED_CODECS or not getattr(info, "_is_text_encoding", True):
            raise LookupError(name)
        return data.decode(info.name, "replace"), None
    except Exception:
        defect = f"unknown charset {name[:40]!r}"
    try:
        return data.decode("utf-8"), defect
    except UnicodeDecodeError:
        return data.decode("latin-1"), defect


def _limit_list_nesting(markup: str) -> str:
    depth = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal depth
        if match.group(1):
            depth = max(0, depth - 1)
            return match.group(0) if depth < _MAX_HTML_LIST_DEPTH else ""
        depth += 1
        return match.group(0) if depth <= _MAX_HTML_LIST_DEPTH else ""

    return _HTML_LIST_TAG.sub(replace, markup)


_INVISIBLE_BLOCKS = (
    ("<!--", "-->"),
    ("<head", "</head"),
    ("<style", "</style"),
    ("<script", "</script"),
)
_TAG_NAME_ENDS = frozenset({"", " ", "\t", "\r", "\n", ">", "/"})


def _drop_invisible(markup: str) -> str:
    """Remove comments, <head>, <style> and <script> blocks, in linear time.

    Outlook puts tens of kilobytes of style before the text; it must not use up the size cap.
    Every search only moves forward, so crafted input cannot make this quadratic.
    """
    lower = markup.lower()

    def next_open(opener: str, start: int) -> int:
        while True:
            found = lower.find(opener, start)
            after = lower[found + len(opener) : found + len(opener) + 1]
            if found < 0 or opener == "<!--" or after in _TAG_NAME_ENDS:
                return found
            start = found + 1  # <header>, <styles>...: not ours

    upcoming = {opener: next_open(opener, 0) for opener, _ in _INVISIBLE_BLOCKS}
    kept: list[str] = []
    position = 0
    while True:
        for opener, _ in _INVISIBLE_BLOCKS:
            if 0 <= upcoming[opener] < position:
                upcoming[opener] = next_open(opener, position)
        live = [(upcoming[o], o, c) for o, c in _INVISIBLE_BLOCKS if upcoming[o] >= 0]
        if not live:
            kept.append(markup[position:])
            return "".join(kept)
        start, opener, closer = min(live)
        kept.append(markup[position:start])
        end = lower.find(closer, start + len(opener))
        if end < 0:
            return "".join(kept)
        end += len(closer)
        if closer != "-->":
            bracket = lower.find(">", end)
            end = len(lower) if bracket < 0 else bracket + 1
        position = end


def _html_to_text(markup: str, defects: list[str]) -> str:
    markup = _drop_invisible(markup)
    if len(markup) > _MAX_HTML_CHARS:
        defects.append("html body truncated")
        markup = markup[:_MAX_HTML_CHARS]
    markup = _limit_list_nesting(markup)
    try:
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_images = True
        converter.ignore_emphasis = True
        converter.unicode_snob = True
        # html2text escapes Markdown characters with a backslash; this text is shown as text.
        return _MD_ESCAPE.sub(r"\1", str(converter.handle(markup)))
    except Exception as exc:
        defects.append(f"html conversion failed: {type(exc).__name__}")
        return html.unescape(_HTML_TAG.sub(" ", markup))


def _safe_filename(raw: str | None) -> str | None:
    if not raw:
        return None
    name = _decode_words(_header_text(raw))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _clean_line(name, _MAX_FILENAME_CHARS)
    return name or None


def _content_type(part: Message) -> str:
    try:
        value = part.get_content_type().lower()
    except Exception:
        return "text/plain"
    return value if _CONTENT_TYPE.fullmatch(value) else "application/octet-stream"


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"undecodable part: {type(exc).__name__}")
        payload = None
    return payload if isinstance(payload, bytes) else b""


class _BodyWalker:
    """Walks the MIME tree once: body text pieces, attachments, ids of embedded messages."""

    def __init__(self, *, max_body_chars: int, keep_attachment_bytes: int) -> None:
        self.max_body_chars = max_body_chars
        self.keep_left = keep_attachment_bytes
        self.parts = 0
        self.plain: list[str] = []
        self.html: list[str] = []
        self.chars = 0
        self.attachments: list[Attachment] = []
        self.embedded_ids: list[str] = []
        self.defects: list[str] = []
        self.stopped = False

    def walk(self, part: Message, depth: int = 0, want_text: bool = True) -> None:
        if self.stopped:
            return
        if depth > MAX_MIME_DEPTH:
            self.defects.append(f"MIME nesting deeper than {MAX_MIME_DEPTH}; rest skipped")
            self.stopped = True
            return
        self.parts += 1
        for defect in part.defects:
            self.defects.append(type(defect).__name__)
        if self.parts > MAX_MIME_PARTS:
            self.defects.append(f"more than {MAX_MIME_PARTS} MIME parts; rest skipped")
            self.stopped = True
            return
        ctype = _content_type(part)
        # Only ask for the payload of containers: for a leaf, get_payload() without decode
        # runs the declared charset's decoder itself (punycode is quadratic, some codecs raise).
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            if ctype in ("message/rfc822", "message/global"):
                self._embedded_message(part, payload)
                return
            children = [child for child in payload if isinstance(child, Message)]
            if ctype == "multipart/alternative" and children:
                chosen = self._best_alternative(children)
                for child in children:
                    self.walk(child, depth + 1, want_text and child is chosen)
            else:
                for child in children:
                    self.walk(child, depth + 1, want_text)
            return
        if ctype.startswith("multipart/"):
            self.defects.append(f"{ctype} without readable parts")
            ctype = "text/plain"
        self._leaf(part, ctype, want_text)

    def _best_alternative(self, children: list[Message]) -> Message:
        ranked = {"text/plain": 0, "text/html": 1}
        best, best_rank = children[0], 99
        for child in children:
            ctype = _content_type(child)
            rank = 2 if ctype.startswith("multipart/") else ranked.get(ctype, 99)
            if _is_attachment(child):
                rank = 99
            if rank < best_rank:
                best, best_rank = child, rank
        return best

    def _leaf(self, part: Message, ctype: str, want_text: bool) -> None:
        data = _payload_bytes(part, self.defects)
        if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            text, _ = _decode_bytes(data[:65_536], _charset(part))
            try:
                inner = HeaderParser(policy=email_policy.compat32).parsestr(text, headersonly=True)
                embedded = _parse_message_id(_Headers(inner.raw_items()).first("message-id"))
            except Exception:
                embedded = None
            if embedded:
                self.embedded_ids.append(embedded)
        if ctype in ("text/plain", "text/html") and not _is_attachment(part):
            if want_text:
                self._text_piece(data, ctype, _charset(part))
            return
        self._attachment(part, ctype, data)

    def _text_piece(self, data: bytes, ctype: str, charset: str | None) -> None:
        text, defect = _decode_bytes(data, charset)
        if defect:
            self.defects.append(defect)
        if ctype == "text/html":
            self.html.append(text)
            return
        # Line ends first, so a text cut at the cap is exactly the cap long.
        text = text.replace("\r\n", "\n")
        room = self.max_body_chars - self.chars
        if room <= 0:
            self.defects.append("body truncated")
            return
        if len(text) > room:
            self.defects.append("body truncated")
        self.plain.append(text[:room])
        self.chars += min(len(text), room)

    def _attachment(self, part: Message, ctype: str, data: bytes) -> None:
        try:
            filename = _safe_filename(part.get_filename())
        except Exception:
            self.defects.append("attachment filename unreadable")
            filename = None
        keep = len(data) <= self.keep_left
        if keep:
            self.keep_left -= len(data)
        self.attachments.append(Attachment(filename, ctype, len(data), data if keep else None))

    def _embedded_message(self, part: Message, payload: list[Any]) -> None:
        inner = payload[0] if payload and isinstance(payload[0], Message) else None
        if inner is None:
            return
        inner_headers = _Headers(inner.raw_items())
        embedded = _parse_message_id(inner_headers.first("message-id"))
        if embedded:
            self.embedded_ids.append(embedded)
        try:
            data = inner.as_bytes(policy=email_policy.compat32)
        except Exception as exc:
            self.defects.append(f"embedded message unreadable: {type(exc).__name__}")
            data = b""
        try:
            filename = _safe_filename(part.get_filename())
        except Exception:
            filename = None
        if filename is None:
            subject = _clean_line(_decode_words(inner_headers.first("subject") or ""), 100)
            filename = f"{subject or 'message'}.eml"
        keep = len(data) <= self.keep_left
        if keep:
            self.keep_left -= len(data)
        ctype = _content_type(part)
        self.attachments.append(Attachment(filename, ctype, len(data), data if keep else None))


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset(None)
    except Exception:
        return None


def _is_attachment(part: Message) -> bool:
    try:
        disposition = (part.get_content_disposition() or "").lower()
        return disposition == "attachment" or bool(part.get_filename())
    except Exception:
        return True


_EMBEDDED_MSGID_LINE = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,995}>)", re.I | re.M)


# --------------------------------------------------------------------------- parse_message


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
    walker = _BodyWalker(max_body_chars=max_body_chars, keep_attachment_bytes=keep_attachment_bytes)
    try:
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw)
    except RecursionError:
        # Keep the headers (threading still works); the body is beyond reading.
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw, headersonly=True)
        message.set_payload("")
        defects.append("MIME structure too deep; body not read")
    headers = _Headers(message.raw_items())

    from_values = headers.all("from")
    from_addr: str | None = None
    from_name: str | None = None
    if len(from_values) > 1:
        defects.append("more than one From header")
    elif from_values:
        from_addr, from_name = _parse_mailbox(from_values[0], defects, "From")
    else:
        defects.append("no From header")
    reply_to_addr: str | None = None
    if headers.first("reply-to") is not None:
        reply_to_addr, _ = _parse_mailbox(headers.first("reply-to") or "", defects, "Reply-To")

    if len(headers.all("subject")) > 1:
        defects.append("more than one Subject header")
    subject = _clean_line(_decode_words(headers.first("subject") or ""), _MAX_SUBJECT_CHARS)

    message_id = _parse_message_id(headers.first("message-id"))
    if headers.first("message-id") is not None and message_id is None:
        defects.append("Message-ID unreadable")
    in_reply_to_tokens = _msgid_tokens(headers.first("in-reply-to") or "", 1)
    references = _msgid_tokens(" ".join(headers.all("references")))
    if len(references) > _MAX_REFERENCES:
        defects.append("References truncated")
        # The root and the most recent ids are the ones threading looks at.
        references = [references[0], *references[-(_MAX_REFERENCES - 1) :]]

    if envelope_from is not None and headers.first("return-path") is None:
        envelope = _header_text(envelope_from).strip()
        headers = _Headers([*message.raw_items(), ("Return-Path", f"<{envelope.strip('<>')}>")])
    classified = _classify(headers)

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
        text = _html_to_text(marked, defects)
        text_from_html = True
        if marked is not markup:
            marked_text = text
            text = strip_marks(text)
    else:
        text = ""
    if len(text) > max_body_chars:
        defects.append("body truncated")
        text = text[:max_body_chars]
    text = _SURROGATES.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\x00", "")
    if marked_text is not None:
        marked_text = _SURROGATES.sub("\ufffd", marked_text.replace("\r\n", "\n"))
        marked_text = marked_text.replace("\r", "\n").replace("\x00", "")[:max_body_chars]

    bounce_id: str | None = None
    if classified and classified[0] is AutoKind.BOUNCE:
        if walker.embedded_ids:
            bounce_id = walker.embedded_ids[0]
        else:
            match = _EMBEDDED_MSGID_LINE.search(text[:200_000])
            bounce_id = match.group(1) if match else None

    to_addrs = _parse_address_list(headers.all("to"), defects, "To")
    cc_addrs = _parse_address_list(headers.all("cc"), defects, "Cc")
    date = _parse_date(headers.first("date"), defects)
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


# --------------------------------------------------------------------------- outgoing mail


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
    return _clean_line(_decode_words(_clean_line(text, limit * 4)), limit).replace("=?", "= ?")


def _outgoing_address(value: str | None, what: str) -> str:
    addr = _valid_address(value or "")
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
    display_name = _outgoing_text(from_name, _MAX_NAME_CHARS)
    message["From"] = Address(display_name=display_name, addr_spec=sender)
    message["To"] = Address(addr_spec=recipient)
    if reply_to is not None:
        message["Reply-To"] = Address(addr_spec=_outgoing_address(reply_to, "reply-to"))
    message["Subject"] = _outgoing_text(subject, _MAX_SUBJECT_CHARS)
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
