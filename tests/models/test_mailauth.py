"""Authentication-Results (RFC 8601) and the sender verdict: table-driven, pure."""

from __future__ import annotations

import pytest

from models.mailauth import aligned, parse_authentication_results, sender_authenticated

T = "mx.docket.test"


def test_parse_reads_methods_properties_and_drops_comments() -> None:
    parsed = parse_authentication_results(
        'MX.Docket.Test 1; dkim=pass (good (nested) sig) header.d=acme.test header.s="s 1";'
        ' spf=fail reason="not; listed" smtp.mailfrom=x@evil.test;'
        " dmarc/1 = pass header.from=acme.test"
    )
    assert parsed is not None and parsed.authserv_id == "mx.docket.test"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"),
        ("spf", "fail"),
        ("dmarc", "pass"),
    ]
    assert parsed.results[0].props == {"header.d": "acme.test", "header.s": "s 1"}
    assert parse_authentication_results(f"{T}; none") is not None
    assert parse_authentication_results("") is None
    assert parse_authentication_results("(only a comment)") is None


@pytest.mark.parametrize(
    ("headers", "sender", "expected"),
    [
        ([f"{T}; dmarc=pass header.from=acme.test"], "a@acme.test", True),
        ([f"{T}; dmarc=pass"], "a@acme.test", True),
        ([f"{T}; dmarc=pass header.from=evil.test"], "a@acme.test", False),
        ([f"{T}; dmarc=fail header.from=acme.test"], "a@acme.test", False),
        ([f"{T}; dkim=pass header.d=acme.test"], "a@acme.test", True),
        ([f"{T}; dkim=pass header.d=mail.acme.test"], "a@acme.test", True),
        ([f"{T}; dkim=pass header.i=@acme.test"], "a@eu.acme.test", True),
        ([f"{T}; dkim=pass header.d=evil.test"], "a@acme.test", False),
        ([f"{T}; dkim=pass header.d=test"], "a@acme.test", False),  # never a bare TLD
        ([f"{T}; spf=pass smtp.mailfrom=a@acme.test"], "a@acme.test", False),  # SPF alone
        # Another server's verdict is anybody's word.
        (["mx.evil.test; dmarc=pass header.from=acme.test"], "a@acme.test", False),
        # Only the topmost header of the trusted server counts (a forger's copy is below).
        ([f"{T}; dmarc=fail", f"{T}; dmarc=pass"], "a@acme.test", False),
        (["mx.evil.test; dmarc=fail", f"{T}; dmarc=pass"], "a@acme.test", True),
        ([f'"{T}"; dmarc=pass'], "a@acme.test", True),
        ([f"{T}; dmarc=pass"], None, False),
        ([f"{T}; dmarc=pass"], "no-at-sign", False),
        ([], "a@acme.test", False),
    ],
)
def test_sender_authenticated(headers: list[str], sender: str | None, expected: bool) -> None:
    assert sender_authenticated(headers, trusted_authserv_id=T, from_addr=sender) is expected


def test_nothing_is_authenticated_without_a_trusted_server() -> None:
    header = [f"{T}; dmarc=pass header.from=acme.test"]
    assert not sender_authenticated(header, trusted_authserv_id=None, from_addr="a@acme.test")
    assert not sender_authenticated(header, trusted_authserv_id="", from_addr="a@acme.test")


@pytest.mark.parametrize(
    ("d", "f", "ok"),
    [
        ("acme.test", "acme.test", True),
        ("a.acme.test", "acme.test", True),
        ("co.uk", "x.uk", False),
    ],
)
def test_aligned(d: str, f: str, ok: bool) -> None:
    assert aligned(d, f) is ok
