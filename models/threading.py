"""Which ticket an inbound mail belongs to: Docket's threading rules, pure and deterministic.

Outgoing mail carries the ticket in two places a customer's client sends back: our Message-ID
(through In-Reply-To and References) and a plus-address Reply-To. Both carry a keyed hash so a
stranger cannot forge them to write into someone else's ticket. The `[#123]` subject tag is
only a hint: it is trusted for people who already belong to that ticket.

`decide_ticket` takes plain facts (the mail, and what the caller pre-fetched from the
database through `ThreadLookup`) and returns a `Decision` with the reasons behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from models.mail import ParsedMail
from models.mail_auto import AutoKind

__all__ = [
    "ContactFacts",
    "Decision",
    "DecisionKind",
    "MailFacts",
    "StaticLookup",
    "ThreadLookup",
    "TicketFacts",
    "TicketRef",
    "decide_ticket",
    "is_flood",
    "is_support_recipient",
    "make_message_id",
    "make_reply_address",
    "parse_message_id",
    "parse_reply_address",
    "subject_tag",
    "tag_subject",
]

CLOSED_STATUS = "closed"
RESOLVED_STATUS = "resolved"

_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+")
_NUMBER = r"(0|[1-9][0-9]{0,17})"
_OUR_MESSAGE_ID = re.compile(
    rf"<?docket\.w{_NUMBER}\.t{_NUMBER}\.([A-Za-z0-9_-]{{1,64}})"
    r"\.([0-9a-fA-F]{16})@[^<>\s@]{1,253}>?"
)
_REPLY_TOKEN = re.compile(rf"t{_NUMBER}\.w{_NUMBER}\.([0-9a-f]{{10}})")
_SUBJECT_TAG = re.compile(r"\[#([1-9][0-9]{0,8})\]")


@dataclass(frozen=True)
class TicketRef:
    """A ticket named by a verified Message-ID or reply address."""

    workspace_id: int
    ticket_number: int


def _mac(secret: bytes, purpose: str, text: str, length: int) -> str:
    if not secret:
        raise ValueError("threading secret must not be empty")
    # The purpose keeps a Message-ID hash from being reused as a reply-address hash.
    digest = hmac.new(secret, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()
    return digest[:length]


def make_message_id(
    *, secret: bytes, workspace_id: int, ticket_number: int, nonce: str, domain: str
) -> str:
    """Our Message-ID for a mail about a ticket: `<docket.w1.t123.<nonce>.<hmac16>@domain>`.

    `nonce` makes each id unique (letters, digits, '_' and '-'); `domain` is ours and is not
    covered by the hash, so ids keep working when the support domain changes.
    """
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 1-64 letters, digits, '_' or '-'")
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError("invalid domain")
    if workspace_id < 0 or ticket_number < 0:
        raise ValueError("ids must not be negative")
    local = f"docket.w{workspace_id}.t{ticket_number}.{nonce}"
    # 64 bits of MAC: a forger gets no feedback per guess beyond where a mail lands.
    return f"<{local}.{_mac(secret, 'msgid', local, 16)}@{domain}>"


def parse_message_id(value: str | None, *, secret: bytes) -> TicketRef | None:
    """The ticket in one of our Message-IDs, or None when it is not ours or was tampered with."""
    if not value or len(value) > 400:
        return None
    match = _OUR_MESSAGE_ID.fullmatch(value.strip())
    if match is None:
        return None
    workspace, ticket, nonce, mac = match.groups()
    local = f"docket.w{workspace}.t{ticket}.{nonce}"
    if not hmac.compare_digest(mac.lower(), _mac(secret, "msgid", local, 16)):
        return None
    return TicketRef(int(workspace), int(ticket))


def _split_address(addr: str) -> tuple[str, str] | None:
    local, at, domain = addr.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    # Local parts are compared case-insensitively: RFC 5321 allows case-sensitive mailboxes,
    # but mail systems (and people typing addresses) do not rely on it.
    return local.lower(), domain.lower()


def make_reply_address(
    *, secret: bytes, support_address: str, workspace_id: int, ticket_number: int
) -> str:
    """A per-ticket Reply-To: `support+t123.w1.<hmac10>@example.com` for `support@example.com`."""
    parts = _split_address(support_address)
    if parts is None or "+" in parts[0]:
        raise ValueError("support address must be a plain local@domain")
    if workspace_id < 0 or ticket_number < 0:
        raise ValueError("ids must not be negative")
    local, domain = parts
    token = f"t{ticket_number}.w{workspace_id}"
    # 40 bits keeps the address short enough for clients that show it; guessing still
    # needs about 10^12 mails.
    return f"{local}+{token}.{_mac(secret, 'reply', token, 10)}@{domain}"


def parse_reply_address(addr: str, *, secret: bytes, support_address: str) -> TicketRef | None:
    """The ticket in a plus-address of our support address, or None when absent or forged."""
    mine, theirs = _split_address(support_address), _split_address(addr)
    if mine is None or theirs is None or len(addr) > 320 or theirs[1] != mine[1]:
        return None
    base, plus, token = theirs[0].partition("+")
    if not plus or base != mine[0]:
        return None
    match = _REPLY_TOKEN.fullmatch(token)
    if match is None:
        return None
    ticket, workspace, mac = match.groups()
    expected = _mac(secret, "reply", f"t{ticket}.w{workspace}", 10)
    if not hmac.compare_digest(mac, expected):
        return None
    return TicketRef(int(workspace), int(ticket))


def is_support_recipient(addr: str, support_address: str) -> bool:
    """Whether `addr` is our support address or any plus-address of it (case-insensitive)."""
    mine, theirs = _split_address(support_address), _split_address(addr)
    if mine is None or theirs is None or theirs[1] != mine[1]:
        return False
    return theirs[0] == mine[0] or theirs[0].startswith(f"{mine[0]}+")


def subject_tag(subject: str | None) -> int | None:
    """The ticket number of the first `[#123]` tag in a subject ("Re: AW: [#123] ..." too)."""
    if not subject:
        return None
    match = _SUBJECT_TAG.search(subject[:998])
    return int(match.group(1)) if match else None


def tag_subject(number: int, title: str) -> str:
    """`[#123] title`, single-line, without doubling a tag the title already has."""
    clean = " ".join(title.split())
    tag = f"[#{number}]"
    if clean.startswith(tag):
        clean = clean[len(tag) :].strip()
    return f"{tag} {clean}".strip()


def is_flood(recent_count: int, limit: int = 5) -> bool:
    """True when one sender sent more than `limit` mails with one subject in the window.

    The caller counts (five minutes is the intended window); a flood stops creating tickets.
    """
    return recent_count > limit


# --------------------------------------------------------------------------- facts in


@dataclass(frozen=True)
class MailFacts:
    """What the threading rules need from a mail. `to_addrs` is every recipient known:
    To, Cc and the SMTP envelope recipients."""

    from_addr: str | None
    to_addrs: tuple[str, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    auto_kind: AutoKind | None

    @classmethod
    def from_parsed(cls, mail: ParsedMail, *, envelope_recipients: Sequence[str] = ()) -> MailFacts:
        """Facts from a parsed mail plus the envelope recipients the SMTP server saw."""
        recipients = [*mail.to_addrs, *mail.cc_addrs, *(a.lower() for a in envelope_recipients)]
        return cls(
            from_addr=mail.from_addr,
            to_addrs=tuple(dict.fromkeys(recipients)),
            in_reply_to=mail.in_reply_to,
            references=mail.references,
            subject=mail.subject,
            auto_kind=mail.auto_kind,
        )


@dataclass(frozen=True)
class TicketFacts:
    """A ticket as threading sees it. `participant_addrs` are lower-case addresses."""

    number: int
    customer_id: int | None
    status: str
    closed_at: datetime | None
    participant_addrs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContactFacts:
    """A known contact: which customer the address belongs to."""

    customer_id: int


class ThreadLookup(Protocol):
    """Data the caller fetched for one mail, scoped to one workspace. Lookups are synchronous.

    Addresses and domains passed in are lower case.
    """

    def ticket(self, number: int) -> TicketFacts | None: ...

    def contact(self, addr: str) -> ContactFacts | None: ...

    def customer_for_domain(self, domain: str) -> int | None: ...

    @property
    def known_message_ids(self) -> Mapping[str, int]:
        """Message-IDs of mail we sent or received, to the ticket number."""
        ...


@dataclass(frozen=True)
class StaticLookup:
    """A `ThreadLookup` over plain dictionaries (what a caller pre-fetches, and tests)."""

    tickets: Mapping[int, TicketFacts] = field(default_factory=dict)
    contacts: Mapping[str, ContactFacts] = field(default_factory=dict)
    domains: Mapping[str, int] = field(default_factory=dict)
    message_ids: Mapping[str, int] = field(default_factory=dict)

    def ticket(self, number: int) -> TicketFacts | None:
        return self.tickets.get(number)

    def contact(self, addr: str) -> ContactFacts | None:
        return self.contacts.get(addr)

    def customer_for_domain(self, domain: str) -> int | None:
        return self.domains.get(domain)

    @property
    def known_message_ids(self) -> Mapping[str, int]:
        return self.message_ids


# --------------------------------------------------------------------------- decision out


class DecisionKind(StrEnum):
    """What to do with an inbound mail."""

    ATTACH = "attach"  # a customer reply on the ticket; notify the assignee
    ATTACH_QUIETLY = "attach_quietly"  # recorded on the ticket only: no DM, no reopen
    REOPEN = "reopen"  # attach and reopen a closed or resolved ticket
    NEW_TICKET = "new_ticket"
    FOLLOW_UP = "follow_up"  # a new ticket linked to a ticket closed too long ago
    HELD = "held"  # kept for an admin to release; no ticket yet
    IGNORE = "ignore"  # kept as raw mail only


@dataclass(frozen=True)
class Decision:
    """The outcome for one mail.

    `ticket_number` is the ticket to attach to or reopen; `follow_up_of` the old ticket a
    follow-up links to; `customer_id` the customer of a new ticket (None when unknown);
    `verified` whether the sender is known (a contact, a known domain or a participant);
    `matched_by` which rule found an existing ticket ("message_id", "reply_address",
    "subject_tag"); `reasons` explain the decision for the audit log and admins.
    """

    kind: DecisionKind
    reasons: tuple[str, ...]
    ticket_number: int | None = None
    follow_up_of: int | None = None
    customer_id: int | None = None
    verified: bool = False
    matched_by: str | None = None


def _domain_of(addr: str) -> str:
    return addr.rpartition("@")[2]


def _sender_known(ticket: TicketFacts, sender: str | None, lookup: ThreadLookup) -> bool:
    if sender is None:
        return False
    if sender in ticket.participant_addrs:
        return True
    contact = lookup.contact(sender)
    return (
        contact is not None
        and ticket.customer_id is not None
        and (contact.customer_id == ticket.customer_id)
    )


def _find_by_headers(
    mail: MailFacts, lookup: ThreadLookup, *, secret: bytes, workspace_id: int, reasons: list[str]
) -> tuple[TicketFacts, str] | None:
    # In-Reply-To names the direct parent; References are tried newest first.
    candidates = [*([mail.in_reply_to] if mail.in_reply_to else []), *reversed(mail.references)]
    known = lookup.known_message_ids
    for msgid in dict.fromkeys(candidates):
        ref = parse_message_id(msgid, secret=secret)
        number: int | None = None
        if ref is not None:
            if ref.workspace_id != workspace_id:
                reasons.append(f"{msgid} is from another workspace; ignored")
                continue
            number = ref.ticket_number
        elif msgid in known:
            number = known[msgid]
        if number is None:
            continue
        ticket = lookup.ticket(number)
        if ticket is None:
            reasons.append(f"{msgid} names ticket #{number}, which does not exist")
            continue
        # Only our own signed ids prove anything about the sender; a customer's own
        # Message-IDs are not secret.
        signed = "signed " if ref is not None else ""
        return ticket, f"reply to {signed}{msgid} on ticket #{number}"
    return None


def _find_by_reply_address(
    mail: MailFacts,
    lookup: ThreadLookup,
    *,
    secret: bytes,
    support_address: str,
    workspace_id: int,
    reasons: list[str],
) -> tuple[TicketFacts, str] | None:
    for addr in mail.to_addrs:
        if not is_support_recipient(addr, support_address) or "+" not in addr:
            continue
        ref = parse_reply_address(addr, secret=secret, support_address=support_address)
        if ref is None:
            reasons.append(f"reply address {addr} does not verify; ignored")
            continue
        if ref.workspace_id != workspace_id:
            reasons.append(f"reply address {addr} is for another workspace; ignored")
            continue
        ticket = lookup.ticket(ref.ticket_number)
        if ticket is None:
            reasons.append(f"reply address {addr} names a ticket that does not exist")
            continue
        return ticket, f"sent to reply address of ticket #{ticket.number}"
    return None


def _existing_ticket(
    ticket: TicketFacts,
    *,
    matched_by: str,
    verified: bool,
    now: datetime,
    reopen_days: int,
    reasons: list[str],
) -> Decision:
    if ticket.status == CLOSED_STATUS:
        if ticket.closed_at is not None and now - ticket.closed_at <= timedelta(days=reopen_days):
            reasons.append(f"ticket #{ticket.number} closed within {reopen_days} days: reopen")
            return Decision(
                DecisionKind.REOPEN,
                tuple(reasons),
                ticket_number=ticket.number,
                customer_id=ticket.customer_id,
                verified=verified,
                matched_by=matched_by,
            )
        reasons.append(
            f"ticket #{ticket.number} closed more than {reopen_days} days ago: follow-up ticket"
        )
        return Decision(
            DecisionKind.FOLLOW_UP,
            tuple(reasons),
            follow_up_of=ticket.number,
            customer_id=ticket.customer_id,
            verified=verified,
            matched_by=matched_by,
        )
    if ticket.status == RESOLVED_STATUS:
        reasons.append(f"ticket #{ticket.number} is resolved: the customer answered, reopen")
        kind = DecisionKind.REOPEN
    else:
        kind = DecisionKind.ATTACH
    return Decision(
        kind,
        tuple(reasons),
        ticket_number=ticket.number,
        customer_id=ticket.customer_id,
        verified=verified,
        matched_by=matched_by,
    )


def decide_ticket(
    *,
    mail: MailFacts,
    lookup: ThreadLookup,
    secret: bytes,
    support_address: str,
    workspace_id: int,
    now: datetime,
    reopen_days: int,
    hold_unknown: bool,
    flooding: bool = False,
    sender_authenticated: bool = False,
) -> Decision:
    """Which ticket a mail belongs to, by these rules in order:

    0. mail from our own support address is a loop: ignore;
    a. In-Reply-To / References naming one of our verified Message-IDs (this workspace), or
       a Message-ID we sent or received (`known_message_ids`): that ticket;
    b. a verified plus-address of the support address among the recipients: that ticket;
    c. a `[#123]` subject tag, only when the sender is a participant of that ticket or a
       contact of its customer (otherwise the tag is ignored, and the reasons say so);
    d. otherwise a new ticket for a known contact, or for a customer owning the sender's domain;
    e. an unknown sender: a new unverified ticket, or `held` when `hold_unknown` (always held
       when the sender address is missing or invalid).

    A match on a closed ticket reopens it when it was closed at most `reopen_days` ago, else
    becomes a follow-up ticket linked to it (a closed ticket without `closed_at` counts as
    long closed); a match on a resolved ticket reopens it. Auto-replies, bulk mail and bounces
    only ever attach quietly to a ticket found by (a) or (b), and are otherwise ignored.
    With `flooding` (see `is_flood`) nothing creates a ticket and nothing notifies anyone.

    `verified` (the sender is who the From says) needs proof: the mail answers our signed
    Message-ID or reply address, or the trusted mail server authenticated the From domain
    (`sender_authenticated`, see models.mailauth); and a known sender. Anyone can write a
    contact's address in From and guess a subject tag: such mail still reaches its ticket,
    unverified.
    """
    reasons: list[str] = []
    sender = mail.from_addr.lower() if mail.from_addr else None
    # Checked before anything else: our own mail coming back would otherwise attach to its
    # ticket and notify, and the notification could send mail again.
    if sender is not None and is_support_recipient(sender, support_address):
        return Decision(DecisionKind.IGNORE, ("sent from our own support address: mail loop",))

    found = _find_by_headers(
        mail, lookup, secret=secret, workspace_id=workspace_id, reasons=reasons
    )
    matched_by = "message_id"
    proven = sender_authenticated or (found is not None and found[1].startswith("reply to signed"))
    if found is None:
        found = _find_by_reply_address(
            mail,
            lookup,
            secret=secret,
            support_address=support_address,
            workspace_id=workspace_id,
            reasons=reasons,
        )
        matched_by = "reply_address"
        proven = sender_authenticated or found is not None

    # Machines get no subject-tag match: an auto-reply quoting "[#123]" must not reach a
    # ticket its sender was never part of.
    if mail.auto_kind is not None:
        if found is None:
            reasons.append(f"{mail.auto_kind} mail that matches no ticket: ignored")
            return Decision(DecisionKind.IGNORE, tuple(reasons))
        ticket, why = found
        reasons.append(why)
        reasons.append(f"{mail.auto_kind} mail: recorded on the ticket only")
        return Decision(
            DecisionKind.ATTACH_QUIETLY,
            tuple(reasons),
            ticket_number=ticket.number,
            customer_id=ticket.customer_id,
            verified=proven and _sender_known(ticket, sender, lookup),
            matched_by=matched_by,
        )

    if found is None:
        number = subject_tag(mail.subject)
        if number is not None:
            tagged = lookup.ticket(number)
            if tagged is None:
                reasons.append(f"subject tag [#{number}] names no ticket; ignored")
            elif _sender_known(tagged, sender, lookup):
                found = (tagged, f"subject tag [#{number}] from a person on that ticket")
                matched_by = "subject_tag"
                proven = sender_authenticated
            else:
                reasons.append(
                    f"subject tag [#{number}] ignored: the sender is neither a participant "
                    "nor a contact of that ticket's customer"
                )

    if found is not None:
        ticket, why = found
        reasons.append(why)
        decision = _existing_ticket(
            ticket,
            matched_by=matched_by,
            verified=proven and _sender_known(ticket, sender, lookup),
            now=now,
            reopen_days=reopen_days,
            reasons=reasons,
        )
        return _damp_flood(decision) if flooding else decision

    decision = _new_ticket(mail, sender, lookup, hold_unknown=hold_unknown, reasons=reasons)
    if decision.verified and not sender_authenticated:
        why = "the trusted mail server did not authenticate the sender: unverified"
        decision = replace(decision, verified=False, reasons=(*decision.reasons, why))
    return _damp_flood(decision) if flooding else decision


def _new_ticket(
    mail: MailFacts,
    sender: str | None,
    lookup: ThreadLookup,
    *,
    hold_unknown: bool,
    reasons: list[str],
) -> Decision:
    if sender is None:
        reasons.append("no valid sender address: held for an admin")
        return Decision(DecisionKind.HELD, tuple(reasons))
    contact = lookup.contact(sender)
    if contact is not None:
        reasons.append(f"new ticket for known contact {sender}")
        return Decision(
            DecisionKind.NEW_TICKET, tuple(reasons), customer_id=contact.customer_id, verified=True
        )
    customer = lookup.customer_for_domain(_domain_of(sender))
    if customer is not None:
        reasons.append(f"new ticket for the customer owning {_domain_of(sender)}")
        return Decision(
            DecisionKind.NEW_TICKET, tuple(reasons), customer_id=customer, verified=True
        )
    if hold_unknown:
        reasons.append(f"unknown sender {sender}: held for an admin")
        return Decision(DecisionKind.HELD, tuple(reasons))
    reasons.append(f"unknown sender {sender}: new unverified ticket")
    return Decision(DecisionKind.NEW_TICKET, tuple(reasons), verified=False)


def _damp_flood(decision: Decision) -> Decision:
    reasons = (*decision.reasons, "sender is flooding: no new ticket, no notification")
    if decision.kind in (DecisionKind.ATTACH, DecisionKind.REOPEN):
        return Decision(
            DecisionKind.ATTACH_QUIETLY,
            reasons,
            ticket_number=decision.ticket_number,
            customer_id=decision.customer_id,
            verified=decision.verified,
            matched_by=decision.matched_by,
        )
    return Decision(DecisionKind.IGNORE, reasons, customer_id=decision.customer_id)
