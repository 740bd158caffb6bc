"""Walking a mail's MIME parts: the text body (HTML turned into text), and attachments.

Pure and bounded: nesting depth, part count, HTML size and list nesting are capped so that
crafted structure stays cheap; undecodable bytes are replaced, never raised.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email import policy as email_policy
from email.message import Message
from email.parser import HeaderParser
from typing import Any

import html2text

from models.mail_headers import (
    Headers,
    clean_line,
    decode_bytes,
    decode_words,
    header_text,
    parse_message_id,
)

MAX_MIME_DEPTH = 20
MAX_MIME_PARTS = 500

_MAX_FILENAME_CHARS = 255
# html2text takes up to ~10 us per character of crafted markup, and nested lists blow its output
# up. Comments, <head>, <style> and <script> are dropped first, so 64 KB of markup is pages of text.
_MAX_HTML_CHARS = 65_536
_MAX_HTML_LIST_DEPTH = 20

_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

_HTML_LIST_TAG = re.compile(r"<(/?)(?:ol|ul|dl|blockquote)\b[^<>]{0,1000}>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^<>]{0,2000}>")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+.!-])")


@dataclass(frozen=True)
class Attachment:
    """A file that came with a mail. `content` is None when it went over the keep budget."""

    filename: str | None
    content_type: str
    size: int
    content: bytes | None


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


def html_to_text(markup: str, defects: list[str]) -> str:
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
    name = decode_words(header_text(raw))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = clean_line(name, _MAX_FILENAME_CHARS)
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


class BodyWalker:
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
            text, _ = decode_bytes(data[:65_536], _charset(part))
            try:
                inner = HeaderParser(policy=email_policy.compat32).parsestr(text, headersonly=True)
                embedded = parse_message_id(Headers(inner.raw_items()).first("message-id"))
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
        text, defect = decode_bytes(data, charset)
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
        inner_headers = Headers(inner.raw_items())
        embedded = parse_message_id(inner_headers.first("message-id"))
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
            subject = clean_line(decode_words(inner_headers.first("subject") or ""), 100)
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
