"""Threading rules: forged ids and tokens, subject tags, reopen windows, loops and floods."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.mail import parse_message
from models.mail_auto import AutoKind
from models.threading import (
    ContactFacts,
    Decision,
    DecisionKind,
    MailFacts,
    StaticLookup,
    TicketFacts,
    TicketRef,
    decide_ticket,
    is_flood,
    is_support_recipient,
    make_message_id,
    make_reply_address,
    parse_message_id,
    parse_reply_address,
    subject_tag,
    tag_subject,
)

SECRET = b"docket-test-secret"
OTHER_SECRET = b"another-secret"
SUPPORT = "support@help.example.com"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
WS = 1
ACME, GLOBEX = 10, 20


def our_id(ticket: int, *, workspace: int = WS, secret: bytes = SECRET) -> str:
    return make_message_id(
        secret=secret, workspace_id=workspace, ticket_number=ticket, nonce="n1", domain="d.example"
    )


def reply_addr(ticket: int, *, workspace: int = WS, secret: bytes = SECRET) -> str:
    return make_reply_address(
        secret=secret, support_address=SUPPORT, workspace_id=workspace, ticket_number=ticket
    )


# --------------------------------------------------------------------------- message ids


def test_message_id_round_trip_and_shape() -> None:
    value = our_id(123)
    assert value.startswith("<docket.w1.t123.n1.") and value.endswith("@d.example>")
    assert parse_message_id(value, secret=SECRET) == TicketRef(1, 123)
    assert parse_message_id(value.strip("<>"), secret=SECRET) == TicketRef(1, 123)
    local, _, domain = value.strip("<>").rpartition("@")
    head, _, mac = local.rpartition(".")
    assert parse_message_id(f"<{head}.{mac.upper()}@{domain}>", secret=SECRET) == TicketRef(1, 123)


def _flip_last_hex(value: str) -> str:
    local, _, domain = value.rpartition("@")
    last = local[-1]
    return f"{local[:-1]}{'0' if last != '0' else '1'}@{domain}"


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(_flip_last_hex(our_id(123)), id="tampered-hmac"),
        pytest.param(our_id(123).replace(".t123.", ".t124."), id="other-ticket-same-hmac"),
        pytest.param(our_id(123).replace(".w1.", ".w2."), id="other-workspace-same-hmac"),
        pytest.param(our_id(123).replace(".n1.", ".n2."), id="other-nonce"),
        pytest.param(our_id(123, secret=OTHER_SECRET), id="other-secret"),
        pytest.param(our_id(123).replace(".w1.", ".w01."), id="leading-zero"),
        pytest.param("<docket.w1.t123.n1.zzzzzzzzzzzzzzzz@d.example>", id="not-hex"),
        pytest.param("<docket.w1.t123.n1@d.example>", id="no-hmac"),
        pytest.param("<CAFx123@mail.gmail.com>", id="foreign"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param("<" + "docket.w1.t1." * 100 + ">", id="long-junk"),
        pytest.param(our_id(123) + "\r\nBcc: x@y.z", id="crlf-appended"),
    ],
)
def test_forged_message_ids_are_rejected(forged: str | None) -> None:
    assert parse_message_id(forged, secret=SECRET) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nonce": "has.dot"},
        {"nonce": ""},
        {"nonce": "x" * 65},
        {"domain": "bad domain"},
        {"domain": "nodot"},
        {"workspace_id": -1},
    ],
)
def test_make_message_id_refuses_bad_parts(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "secret": SECRET,
        "workspace_id": 1,
        "ticket_number": 1,
        "nonce": "abc",
        "domain": "d.example",
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_message_id(**args)  # type: ignore[arg-type]


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        make_message_id(secret=b"", workspace_id=1, ticket_number=1, nonce="a", domain="d.example")


# --------------------------------------------------------------------------- reply addresses


def test_reply_address_round_trip() -> None:
    addr = reply_addr(123)
    local, _, domain = addr.partition("@")
    assert local.startswith("support+t123.w1.") and len(local.rpartition(".")[2]) == 10
    assert domain == "help.example.com"
    assert parse_reply_address(addr, secret=SECRET, support_address=SUPPORT) == TicketRef(1, 123)
    # Some systems upper-case or lower-case addresses on the way: local parts are case-blind.
    assert parse_reply_address(addr.upper(), secret=SECRET, support_address=SUPPORT) == TicketRef(
        1, 123
    )
    assert parse_reply_address(
        addr, secret=SECRET, support_address="Support@Help.Example.com"
    ) == TicketRef(1, 123)


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(reply_addr(123).replace("t123", "t124"), id="other-ticket"),
        pytest.param(reply_addr(123).replace(".w1.", ".w2."), id="other-workspace"),
        pytest.param(reply_addr(123, secret=OTHER_SECRET), id="other-secret"),
        pytest.param(reply_addr(123).replace("help.example.com", "evil.example"), id="domain"),
        pytest.param(reply_addr(123).replace("support+", "sales+"), id="other-base"),
        pytest.param("support+t123.w1@help.example.com", id="no-hmac"),
        pytest.param("support+t123.w1.0000000000@help.example.com", id="zero-hmac"),
        pytest.param("support@help.example.com", id="plain"),
        pytest.param("not an address", id="junk"),
    ],
)
def test_forged_reply_addresses_are_rejected(forged: str) -> None:
    assert parse_reply_address(forged, secret=SECRET, support_address=SUPPORT) is None


def test_make_reply_address_needs_a_plain_support_address() -> None:
    with pytest.raises(ValueError):
        make_reply_address(
            secret=SECRET, support_address="support+x@a.example", workspace_id=1, ticket_number=1
        )
    with pytest.raises(ValueError):
        make_reply_address(secret=SECRET, support_address="nope", workspace_id=1, ticket_number=1)


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("support@help.example.com", True),
        ("SUPPORT@HELP.EXAMPLE.COM", True),
        ("support+anything@help.example.com", True),
        ("support+t1.w1.abc@Help.Example.com", True),
        ("supporter@help.example.com", False),
        ("support@example.com", False),
        ("support@help.example.com.evil.example", False),
        ("help.example.com", False),
        ("", False),
    ],
)
def test_is_support_recipient(addr: str, expected: bool) -> None:
    assert is_support_recipient(addr, SUPPORT) is expected


# --------------------------------------------------------------------------- subject tags


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[#123] Printer broken", 123),
        ("Re: [#123] Printer broken", 123),
        ("RE: AW: Fwd: [#7] x", 7),
        ("Printer [#42]", 42),
        ("[#1] and [#2]", 1),
        ("[# 12] spaced", None),
        ("[#0] zero", None),
        ("[#12a]", None),
        ("#123 no brackets", None),
        ("[#1234567890] too long", None),
        ("", None),
        (None, None),
    ],
)
def test_subject_tag(subject: str | None, expected: int | None) -> None:
    assert subject_tag(subject) == expected


def test_tag_subject() -> None:
    assert tag_subject(123, "Printer broken") == "[#123] Printer broken"
    assert tag_subject(123, "[#123] Printer broken") == "[#123] Printer broken"
    assert tag_subject(5, "line\r\nBcc: x@y.z") == "[#5] line Bcc: x@y.z"
    assert subject_tag(tag_subject(99, "anything")) == 99


@pytest.mark.parametrize(("count", "flood"), [(0, False), (5, False), (6, True), (50, True)])
def test_is_flood(count: int, flood: bool) -> None:
    assert is_flood(count) is flood
    assert is_flood(count, limit=0) is (count > 0)


# --------------------------------------------------------------------------- decide_ticket

OPEN_ACME = TicketFacts(
    number=123,
    customer_id=ACME,
    status="open",
    closed_at=None,
    participant_addrs=frozenset({"alice@acme.example", "consultant@freelance.example"}),
)
LOOKUP = StaticLookup(
    tickets={123: OPEN_ACME, 200: replace(OPEN_ACME, number=200, customer_id=None)},
    contacts={
        "alice@acme.example": ContactFacts(ACME),
        "bob@acme.example": ContactFacts(ACME),
        "eve@globex.example": ContactFacts(GLOBEX),
    },
    domains={"acme.example": ACME, "globex.example": GLOBEX},
    message_ids={"<customer-original@acme.example>": 123},
)


def facts(**overrides: object) -> MailFacts:
    base = MailFacts(
        from_addr="alice@acme.example",
        to_addrs=(SUPPORT,),
        in_reply_to=None,
        references=(),
        subject="Printer broken",
        auto_kind=None,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def decide(mail: MailFacts, lookup: StaticLookup = LOOKUP, **kwargs: object) -> Decision:
    args: dict[str, object] = {
        "mail": mail,
        "lookup": lookup,
        "secret": SECRET,
        "support_address": SUPPORT,
        "workspace_id": WS,
        "now": NOW,
        "reopen_days": 14,
        "hold_unknown": False,
        # The rules below are for mail the trusted server authenticated; see
        # test_unauthenticated_mail_reaches_its_ticket_unverified for the rest.
        "sender_authenticated": True,
    }
    args.update(kwargs)
    return decide_ticket(**args)  # type: ignore[arg-type]


CASES = [
    # (id, mail, expected kind, ticket_number, customer_id, verified, matched_by)
    ("in-reply-to ours", facts(in_reply_to=our_id(123)), "attach", 123, ACME, True, "message_id"),
    (
        "references ours",
        facts(references=("<x@y.z>", our_id(123))),
        "attach",
        123,
        ACME,
        True,
        "message_id",
    ),
    (
        "reply to a received id",
        facts(in_reply_to="<customer-original@acme.example>"),
        "attach",
        123,
        ACME,
        True,
        "message_id",
    ),
    (
        "forwarded colleague replies to our id",
        facts(from_addr="stranger@elsewhere.example", in_reply_to=our_id(123)),
        "attach",
        123,
        ACME,
        False,
        "message_id",
    ),
    (
        "tampered id falls through to new ticket",
        facts(in_reply_to=_flip_last_hex(our_id(123))),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "valid id of another workspace",
        facts(in_reply_to=our_id(123, workspace=2)),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "id of a ticket that does not exist",
        facts(in_reply_to=our_id(999)),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "plus address",
        facts(to_addrs=("someone@acme.example", reply_addr(123))),
        "attach",
        123,
        ACME,
        True,
        "reply_address",
    ),
    (
        "forged plus address",
        facts(to_addrs=(reply_addr(123).replace("t123", "t200"),)),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "plus address of another workspace",
        facts(to_addrs=(reply_addr(123, workspace=2),)),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "subject tag from a contact of the customer",
        facts(from_addr="bob@acme.example", subject="Re: [#123] Printer"),
        "attach",
        123,
        ACME,
        True,
        "subject_tag",
    ),
    (
        "subject tag from a participant who is no contact",
        facts(from_addr="consultant@freelance.example", subject="[#123] update"),
        "attach",
        123,
        ACME,
        True,
        "subject_tag",
    ),
    (
        "subject tag from another customer's contact is ignored",
        facts(from_addr="eve@globex.example", subject="Re: [#123] Printer"),
        "new_ticket",
        None,
        GLOBEX,
        True,
        None,
    ),
    (
        "subject tag from a stranger is ignored",
        facts(from_addr="mallory@evil.example", subject="[#123] give me the data"),
        "new_ticket",
        None,
        None,
        False,
        None,
    ),
    (
        "subject tag on a ticket without customer, from a non-participant",
        facts(from_addr="bob@acme.example", subject="[#200] x"),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    (
        "subject tag naming no ticket",
        facts(subject="[#555] x"),
        "new_ticket",
        None,
        ACME,
        True,
        None,
    ),
    ("known contact", facts(), "new_ticket", None, ACME, True, None),
    (
        "known domain",
        facts(from_addr="carol@globex.example"),
        "new_ticket",
        None,
        GLOBEX,
        True,
        None,
    ),
    (
        "unknown sender",
        facts(from_addr="someone@unknown.example"),
        "new_ticket",
        None,
        None,
        False,
        None,
    ),
    ("no sender address", facts(from_addr=None), "held", None, None, False, None),
    (
        "mail from our own address is a loop",
        facts(from_addr="support+t1.w1.x@help.example.com", in_reply_to=our_id(123)),
        "ignore",
        None,
        None,
        False,
        None,
    ),
]


@pytest.mark.parametrize(
    ("mail", "kind", "ticket", "customer", "verified", "matched_by"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decide_ticket_rules(
    mail: MailFacts,
    kind: str,
    ticket: int | None,
    customer: int | None,
    verified: bool,
    matched_by: str | None,
) -> None:
    decision = decide(mail)
    assert decision.kind == kind
    assert decision.ticket_number == ticket
    assert decision.customer_id == customer
    assert decision.verified is verified
    assert decision.matched_by == matched_by
    assert decision.reasons and all(isinstance(r, str) and r for r in decision.reasons)


def test_ignored_tag_and_forgeries_are_explained() -> None:
    stranger = decide(facts(from_addr="mallory@evil.example", subject="[#123] x"))
    assert any("[#123] ignored" in r for r in stranger.reasons)
    tampered = decide(facts(in_reply_to=our_id(123, workspace=2)))
    assert any("another workspace" in r for r in tampered.reasons)
    forged = decide(facts(to_addrs=(reply_addr(123).replace("t123", "t200"),)))
    assert any("does not verify" in r for r in forged.reasons)


def test_message_id_wins_over_plus_address_and_tag() -> None:
    lookup = replace(LOOKUP, tickets={**LOOKUP.tickets, 124: replace(OPEN_ACME, number=124)})
    mail = facts(in_reply_to=our_id(123), to_addrs=(reply_addr(124),), subject="[#124] x")
    assert decide(mail, lookup).ticket_number == 123
    assert decide(replace(mail, in_reply_to=None), lookup).ticket_number == 124


def test_hold_unknown_holds_strangers_only() -> None:
    assert decide(facts(from_addr="x@unknown.example"), hold_unknown=True).kind == "held"
    assert decide(facts(), hold_unknown=True).kind == "new_ticket"
    assert (
        decide(
            facts(in_reply_to=our_id(123), from_addr="x@unknown.example"), hold_unknown=True
        ).kind
        == "attach"
    )


def _closed(days_ago: timedelta | None, status: str = "closed") -> StaticLookup:
    closed_at = NOW - days_ago if days_ago is not None else None
    ticket = replace(OPEN_ACME, status=status, closed_at=closed_at)
    return replace(LOOKUP, tickets={123: ticket})


@pytest.mark.parametrize(
    ("closed_ago", "kind"),
    [
        (timedelta(0), DecisionKind.REOPEN),
        (timedelta(days=13, hours=23), DecisionKind.REOPEN),
        (timedelta(days=14), DecisionKind.REOPEN),
        (timedelta(days=14, seconds=1), DecisionKind.FOLLOW_UP),
        (timedelta(days=400), DecisionKind.FOLLOW_UP),
        (timedelta(days=-1), DecisionKind.REOPEN),  # clock skew: closed "in the future"
        (None, DecisionKind.FOLLOW_UP),  # closed, time unknown
    ],
)
def test_closed_ticket_reopen_or_follow_up(closed_ago: timedelta | None, kind: str) -> None:
    decision = decide(facts(in_reply_to=our_id(123)), _closed(closed_ago))
    assert decision.kind == kind
    if kind == DecisionKind.REOPEN:
        assert decision.ticket_number == 123 and decision.follow_up_of is None
    else:
        assert decision.ticket_number is None and decision.follow_up_of == 123
        assert decision.customer_id == ACME


def test_closed_ticket_by_subject_tag_and_plus_address() -> None:
    old = _closed(timedelta(days=30))
    assert decide(facts(subject="[#123] again"), old).kind == "follow_up"
    assert decide(facts(to_addrs=(reply_addr(123),)), old).kind == "follow_up"
    assert decide(facts(to_addrs=(reply_addr(123),)), _closed(timedelta(days=1))).kind == "reopen"


@pytest.mark.parametrize(
    ("status", "kind"), [("resolved", "reopen"), ("waiting", "attach"), ("new", "attach")]
)
def test_open_statuses(status: str, kind: str) -> None:
    decision = decide(facts(in_reply_to=our_id(123)), _closed(None, status=status))
    assert decision.kind == kind and decision.ticket_number == 123


@pytest.mark.parametrize("auto", list(AutoKind))
def test_auto_mail_only_attaches_quietly(auto: AutoKind) -> None:
    by_id = decide(facts(in_reply_to=our_id(123), auto_kind=auto))
    assert by_id.kind == "attach_quietly" and by_id.ticket_number == 123
    by_plus = decide(facts(to_addrs=(reply_addr(123),), auto_kind=auto))
    assert by_plus.kind == "attach_quietly" and by_plus.ticket_number == 123
    # Never reopens a closed ticket, never creates one.
    closed = decide(facts(in_reply_to=our_id(123), auto_kind=auto), _closed(timedelta(days=99)))
    assert closed.kind == "attach_quietly" and closed.ticket_number == 123
    assert decide(facts(auto_kind=auto)).kind == "ignore"
    assert decide(facts(subject="[#123] x", auto_kind=auto)).kind == "ignore"
    assert decide(facts(from_addr="x@unknown.example", auto_kind=auto), hold_unknown=True).kind == (
        "ignore"
    )


@pytest.mark.parametrize(
    ("mail", "lookup", "kind"),
    [
        (facts(), LOOKUP, "ignore"),
        (facts(from_addr="x@unknown.example"), LOOKUP, "ignore"),
        (facts(in_reply_to=our_id(123)), LOOKUP, "attach_quietly"),
        (facts(in_reply_to=our_id(123)), _closed(timedelta(days=1)), "attach_quietly"),
        (facts(in_reply_to=our_id(123)), _closed(timedelta(days=99)), "ignore"),
    ],
)
def test_flooding_stops_tickets_and_notifications(
    mail: MailFacts, lookup: StaticLookup, kind: str
) -> None:
    decision = decide(mail, lookup, flooding=True)
    assert decision.kind == kind
    assert any("flooding" in r for r in decision.reasons)


def test_mail_facts_from_parsed_mail() -> None:
    raw = (
        f"From: Alice <Alice@Acme.example>\r\nTo: {SUPPORT}\r\nCc: Bob <bob@acme.example>\r\n"
        f"In-Reply-To: {our_id(123)}\r\nSubject: Re: [#123] x\r\n\r\nhi\r\n"
    ).encode()
    mail = MailFacts.from_parsed(parse_message(raw), envelope_recipients=[reply_addr(123).upper()])
    assert mail.from_addr == "alice@acme.example"
    assert mail.to_addrs == (SUPPORT, "bob@acme.example", reply_addr(123))
    assert mail.in_reply_to == our_id(123) and mail.auto_kind is None
    assert decide(mail).ticket_number == 123


@pytest.mark.parametrize(
    ("mail", "kind", "ticket", "verified"),
    [
        # Our signed ids and reply addresses prove the sender saw our mail.
        pytest.param(facts(in_reply_to=our_id(123)), "attach", 123, True, id="signed id"),
        pytest.param(facts(to_addrs=(reply_addr(123),)), "attach", 123, True, id="reply address"),
        # Anyone can write a contact's From, guess a tag or quote a customer's own id.
        pytest.param(
            facts(in_reply_to="<customer-original@acme.example>"),
            "attach",
            123,
            False,
            id="a customer's own id",
        ),
        pytest.param(facts(subject="[#123] pay here"), "attach", 123, False, id="guessed tag"),
        pytest.param(facts(subject="hello"), "new_ticket", None, False, id="known contact"),
        pytest.param(
            facts(from_addr="dave@globex.example"), "new_ticket", None, False, id="known domain"
        ),
    ],
)
def test_unauthenticated_mail_reaches_its_ticket_unverified(
    mail: MailFacts, kind: str, ticket: int | None, verified: bool
) -> None:
    decision = decide(mail, sender_authenticated=False)
    assert (decision.kind, decision.ticket_number, decision.verified) == (kind, ticket, verified)
