"""Whether an inbound mail's From is authenticated: `Authentication-Results` (RFC 8601).

Docket does not check SPF, DKIM or DMARC itself; the receiving mail server in front of it
does, and records its verdict in an `Authentication-Results` header naming itself (its
authserv-id). Only headers from the server named in DOCKET_MAIL_TRUSTED_AUTHSERV_ID count:
anybody can write such a header into a mail, so headers of other ids are ignored, and of the
trusted server's headers only the topmost (the one it added last, nearest to us) is read.

A sender is authenticated when that header says `dmarc=pass` (for the From domain, when it
names one), or `dkim=pass` with a signing domain aligned with the From domain. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` of a header, with its properties (`header.d`, `header.from`, ...)."""

    method: str
    result: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResults:
    """One parsed `Authentication-Results` header."""

    authserv_id: str
    results: tuple[MethodResult, ...]


def _strip_comments(text: str) -> str:
    """Drop RFC 5322 comments `( ... )` (nested, with escapes) outside quoted strings."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == "(":
            depth += 1
            continue
        if ch == ")" and depth:
            depth -= 1
            out.append(" ")
            continue
        if depth:
            continue
        if ch == '"':
            quoted = True
        out.append(ch)
    return "".join(out)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|=|[^\s="]+')


def _pairs(text: str) -> list[tuple[str, str]]:
    """`a=b c.d = "e f"` -> [("a", "b"), ("c.d", "e f")]; words without `=` are skipped."""
    tokens = _TOKEN.findall(text)
    found = []
    i = 0
    while i < len(tokens):
        if i + 2 < len(tokens) and tokens[i + 1] == "=" and tokens[i] != "=":
            found.append((tokens[i].lower(), _unquote(tokens[i + 2])))
            i += 3
        else:
            i += 1
    return found


def parse_authentication_results(value: str) -> AuthResults | None:
    """Parse one header value; None when it has no authserv-id."""
    text = _strip_comments(value[:MAX_HEADER_CHARS]).replace("\t", " ")
    text = " ".join(text.split())
    head, *resinfos = _split_outside_quotes(text, ";")
    words = head.split()
    if not words:
        return None
    authserv_id = _unquote(words[0]).lower()
    results = []
    for resinfo in resinfos:
        pairs = _pairs(resinfo.strip())
        if not pairs:
            continue  # "none", or nothing readable
        method, result = pairs[0]
        props = {k: v for k, v in pairs[1:] if k != "reason"}
        results.append(MethodResult(method.split("/")[0], result.lower(), props))
    return AuthResults(authserv_id, tuple(results))


def _domain(value: str) -> str:
    return value.rpartition("@")[2].strip().strip(".").lower()


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other (never a bare TLD)."""
    d, f = _domain(signing_domain), _domain(from_domain)
    if not d or not f or "." not in d or "." not in f:
        return False
    return d == f or f.endswith("." + d) or d.endswith("." + f)


def sender_authenticated(
    headers: Iterable[str], *, trusted_authserv_id: str | None, from_addr: str | None
) -> bool:
    """True when the trusted server's (topmost) header says the From domain passed DMARC, or
    passed DKIM with an aligned signing domain."""
    if not trusted_authserv_id or not from_addr or "@" not in from_addr:
        return False
    from_domain = _domain(from_addr)
    trusted = trusted_authserv_id.strip().lower()
    for header in headers:
        parsed = parse_authentication_results(header)
        if parsed is None or parsed.authserv_id != trusted:
            continue
        for r in parsed.results:
            if r.result != "pass":
                continue
            if r.method == "dmarc":
                named = r.props.get("header.from")
                if named is None or aligned(named, from_domain):
                    return True
            if r.method == "dkim":
                signer = r.props.get("header.d") or _domain(r.props.get("header.i", ""))
                if signer and aligned(signer, from_domain):
                    return True
        return False  # only the topmost header of the trusted server is read
    return False
