"""Reading a mail's headers: encoded words and charsets, addresses, Message-IDs and dates.

Pure and bounded. The stdlib's structured header parsing is quadratic in a value's length, so
values are length-capped for the `default` header classes and fall back to the linear
`compat32` helpers where those raise; anything longer is refused or cut.
"""

from __future__ import annotations

import codecs
import inspect
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email import policy as email_policy
from email.header import decode_header
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any, cast

# Structured parsing in the stdlib is quadratic in the value's length (0.9 s for 8 KB From,
# Reply-To, To and Cc together): longer values go to the linear compat32 helpers or are refused.
_MAX_STRUCTURED_CHARS = 4_096
_MAX_ADDRESS_LIST_CHARS = 65_536
_MAX_ADDRESSES = 100

MAX_SUBJECT_CHARS = 998
MAX_NAME_CHARS = 200

_DEFAULT_POLICY = email_policy.default
_PARSEADDR_HAS_STRICT = "strict" in inspect.signature(parseaddr).parameters

# Message-ids we accept from customers: printable ASCII without angle brackets or spaces.
_MSGID_TOKEN = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,995})>")
_BARE_MSGID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,995}")

# Addresses: no spaces, specials or controls; non-ASCII is allowed (SMTPUTF8 senders exist).
_LOCAL_CHAR = r"[^\s<>()\[\]\\,;:@\"\x00-\x1f\x7f]"
_LABEL_CHAR = r"[^\s<>()\[\]\\,;:@\"\x00-\x1f\x7f.]"
_ADDR_SPEC = re.compile(rf"{_LOCAL_CHAR}{{1,64}}@{_LABEL_CHAR}{{1,63}}(?:\.{_LABEL_CHAR}{{1,63}})+")

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
# Lone surrogates (undecodable bytes kept by the stdlib) cannot be stored as UTF-8.
SURROGATES = re.compile(r"[\ud800-\udfff]")
_WHITESPACE_RUN = re.compile(r"\s+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")

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


def header_text(value: object) -> str:
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


def clean_line(text: str, limit: int) -> str:
    """One line of display text: no control characters, single spaces, at most `limit` chars."""
    text = SURROGATES.sub("\ufffd", _CONTROL_CHARS.sub(" ", text))
    return _WHITESPACE_RUN.sub(" ", text).strip()[:limit]


class Headers:
    """Case-insensitive view of one header block, values already decoded to text."""

    def __init__(self, items: Iterable[tuple[str, object]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            key = header_text(name).strip().lower()
            self._values.setdefault(key, []).append(header_text(value))

    def all(self, name: str) -> list[str]:
        return self._values.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def as_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | Headers) -> Headers:
    if isinstance(headers, Headers):
        return headers
    if isinstance(headers, Mapping):
        return Headers(headers.items())
    return Headers(headers)


def valid_address(addr: str) -> str | None:
    addr = addr.strip()
    if len(addr) > 320 or not _ADDR_SPEC.fullmatch(addr):
        return None
    return addr.lower()


def parse_mailbox(value: str, defects: list[str], label: str) -> tuple[str | None, str | None]:
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
    addr = valid_address(compat[1])
    if addr is None:
        defects.append(f"{label} address is invalid")
        return None, None
    name = default_pair[0] if default_pair is not None else decode_words(compat[0])
    return addr, (clean_line(name, MAX_NAME_CHARS) or None)


def parse_address_list(values: list[str], defects: list[str], label: str) -> tuple[str, ...]:
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
        addr = valid_address(spec)
        if addr is None:
            if spec.strip() and spec.strip() != "<>":
                defects.append(f"{label} holds an invalid address")
            continue
        if len(result) == _MAX_ADDRESSES and addr not in result:
            defects.append(f"{label} holds more than {_MAX_ADDRESSES} addresses")
            break
        result.setdefault(addr)
    return tuple(result)


def decode_words(value: str) -> str:
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
                pieces.append(decode_bytes(chunk, charset)[0])
            else:
                pieces.append(chunk)
        return "".join(pieces)
    except Exception:
        return capped


def msgid_tokens(value: str, limit: int | None = None) -> list[str]:
    found: dict[str, None] = {}
    for match in _MSGID_TOKEN.finditer(value[:65_536]):
        found.setdefault(f"<{match.group(1)}>")
        if limit is not None and len(found) >= limit:
            break
    return list(found)


def parse_message_id(value: str | None) -> str | None:
    """A customer's Message-ID normalised to `<...>`; Exchange-style ids are kept as they are."""
    if value is None:
        return None
    tokens = msgid_tokens(value, 1)
    if tokens:
        return tokens[0]
    bare = value.strip()
    if _BARE_MSGID.fullmatch(bare):
        return f"<{bare}>"
    return None


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
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


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
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
