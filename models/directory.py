"""Customers, contacts, contracts, charge rates, cost rates and members: the directory that
imports and the `/docket` forms edit.

Every save is an upsert on the row's natural key (customer name; contact email; contract name
within its customer; rate subject and effective date; member email), so importing a file twice
changes nothing the second time. Saves that move profitability (contracts, rates, a member's
group) mark the affected customer-periods stale (models.timelog) in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import cost_changes
from models.customer_channel import Notice
from models.people import ensure_group
from models.periods import local_date
from models.profitability import CONTRACT_AMOUNTS, CostRates
from models.tables import (
    ChargeRate,
    Contact,
    Contract,
    ContractKind,
    CostRate,
    Customer,
    Member,
    MemberGroup,
    Role,
    Workspace,
)
from models.timelog import (
    ContractSpan,
    mark_contract_change,
    mark_contract_time_from,
    mark_members_from,
)

_DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
)
_EMAIL_RE = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_CHANNEL_RE = re.compile(r"[CGD][A-Z0-9]{2,31}")
_USER_RE = re.compile(r"[UW][A-Z0-9]{2,31}")
NAME_MAX = 200
_ME: Any = Member.__table__  # type: ignore[attr-defined]


class DirectoryError(ValueError):
    """Input the directory refuses; the message names the field and what to enter."""


# ---------------------------------------------------------------------------------------
# Pure parsing of typed values
# ---------------------------------------------------------------------------------------


def clean_name(text: str | None, what: str = "name") -> str:
    """A trimmed, single-spaced name of at most 200 characters."""
    name = " ".join((text or "").split())
    if not name:
        raise DirectoryError(f"The {what} is empty.")
    if len(name) > NAME_MAX:
        raise DirectoryError(f"The {what} is longer than {NAME_MAX} characters.")
    return name


def parse_domains(text: str | None) -> tuple[str, ...]:
    """Email domains separated by commas, semicolons or spaces, lower-cased and de-duplicated."""
    found: list[str] = []
    for part in re.split(r"[,;\s]+", (text or "").strip().lower()):
        domain = part.strip().lstrip("@")
        if not domain:
            continue
        if not _DOMAIN_RE.fullmatch(domain):
            raise DirectoryError(f"{part!r} is not an email domain (e.g. example.com).")
        if domain not in found:
            found.append(domain)
    return tuple(found)


def parse_email(text: str | None) -> str:
    """A lower-cased email address."""
    email = (text or "").strip().lower()
    if not _EMAIL_RE.fullmatch(email):
        raise DirectoryError(f"{text!r} is not an email address.")
    return email


def parse_channel(text: str | None) -> str | None:
    """A Slack channel id (`C0123ABCD`, or `<#C0123ABCD|name>`), or None when empty."""
    raw = (text or "").strip()
    if not raw:
        return None
    if match := re.fullmatch(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>", raw):
        raw = match.group(1)
    if not _CHANNEL_RE.fullmatch(raw):
        raise DirectoryError(f"{text!r} is not a Slack channel id (e.g. C0123ABCD).")
    return raw


def parse_user_id(text: str | None) -> str | None:
    """A Slack user id (`U0123ABCD`), or None when empty."""
    raw = (text or "").strip()
    if not raw:
        return None
    if not _USER_RE.fullmatch(raw):
        raise DirectoryError(f"{text!r} is not a Slack user id (e.g. U0123ABCD).")
    return raw


def parse_role(text: str | None) -> Role:
    """agent, manager or admin (empty: agent)."""
    raw = (text or "").strip().lower() or Role.AGENT.value
    try:
        return Role(raw)
    except ValueError:
        raise DirectoryError(f"{text!r} is not a role: use agent, manager or admin.") from None


def parse_date(text: str | None, what: str = "date") -> date:
    """An ISO date (2025-06-01)."""
    raw = (text or "").strip()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise DirectoryError(f"The {what} {raw!r} is not a date: use YYYY-MM-DD.") from None


def parse_hours(text: str | None, what: str = "hours") -> int:
    """Hours as a decimal (`10`, `7.5`) in whole minutes (half up); must not be negative."""
    raw = (text or "").strip().replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DirectoryError(f"The {what} {text!r} is not a number of hours.") from None
    if not value.is_finite() or value < 0 or value > 1_000_000:
        raise DirectoryError(f"The {what} {text!r} is not a number of hours.")
    return int((value * 60).to_integral_value(rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class ContractTerms:
    """What a contract says; amounts in minor units, the block in minutes.

    `hourly_rate_minor` (hourly contracts) is stored as a charge rate from the start date.
    """

    name: str
    kind: ContractKind
    start_date: date
    end_date: date | None = None
    hourly_rate_minor: int | None = None
    monthly_fee_minor: int = 0
    block_minutes: int = 0
    block_price_minor: int = 0
    overage_minor_per_hour: int = 0
    monthly_direct_cost_minor: int = 0


def check_terms(terms: ContractTerms) -> dict[str, str]:
    """Problems with `terms`, by field name (empty when the contract can be saved)."""
    errors: dict[str, str] = {}
    if not terms.name.strip():
        errors["name"] = "Give the contract a name."
    if terms.end_date is not None and terms.end_date < terms.start_date:
        errors["end_date"] = "The end date is before the start date."
    for name in CONTRACT_AMOUNTS:
        if getattr(terms, name) < 0:
            errors[name] = "Amounts cannot be negative."
    if terms.hourly_rate_minor is not None and terms.hourly_rate_minor < 0:
        errors["hourly_rate_minor"] = "Amounts cannot be negative."
    if terms.kind is ContractKind.FIXED and terms.monthly_fee_minor <= 0:
        errors["monthly_fee_minor"] = "A fixed-fee contract needs its monthly fee."
    if terms.kind is ContractKind.BLOCK:
        if terms.block_minutes <= 0:
            errors["block_minutes"] = "A prepaid block needs its number of hours."
        if terms.block_price_minor <= 0:
            errors["block_price_minor"] = "A prepaid block needs its price."
    return errors


# ---------------------------------------------------------------------------------------
# Customers and contacts
# ---------------------------------------------------------------------------------------


async def workspace_today(*, session: AsyncSession, workspace_id: int, at: datetime) -> date:
    """Today's date in the workspace's time zone."""
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    return local_date(at, ZoneInfo(ws.timezone))


_Named = TypeVar("_Named", Customer, Contract, MemberGroup)


def _name_key(name: str) -> str:
    """A name as names are matched: extra spaces dropped, case folded."""
    return " ".join(name.split()).casefold()


def _first_named(rows: Iterable[_Named], wanted: str) -> _Named | None:
    """The first row whose name, ignoring case, is `wanted` (a `_name_key`)."""
    return next((row for row in rows if row.name.casefold() == wanted), None)


async def customer_by_name(
    *, session: AsyncSession, workspace_id: int, name: str
) -> Customer | None:
    """The customer with this name, ignoring case and extra spaces."""
    wanted = _name_key(name)
    stmt = select(Customer).where(
        Customer.workspace_id == workspace_id, sa.func.lower(Customer.name) == wanted
    )
    found = (await session.exec(stmt)).first()
    if found is None:  # lower() in SQL is ASCII-only on SQLite
        customers = await list_customers(
            session=session, workspace_id=workspace_id, active_only=False
        )
        return _first_named(customers, wanted)
    return found


async def match_customers(
    *, session: AsyncSession, workspace_id: int, text: str, limit: int = 20
) -> list[Customer]:
    """Customers named `text` (exactly, ignoring case) or else whose name contains it."""
    exact = await customer_by_name(session=session, workspace_id=workspace_id, name=text)
    if exact is not None:
        return [exact]
    wanted = _name_key(text)
    found = [
        c
        for c in await list_customers(session=session, workspace_id=workspace_id, active_only=False)
        if wanted in c.name.casefold()
    ]
    return found[:limit]


async def list_customers(
    *, session: AsyncSession, workspace_id: int, active_only: bool = True
) -> list[Customer]:
    """Customers by name."""
    stmt = select(Customer).where(Customer.workspace_id == workspace_id)
    if active_only:
        stmt = stmt.where(col(Customer.active).is_(True))
    return sorted((await session.exec(stmt)).all(), key=lambda c: c.name.casefold())


# The customer-facing messages in a customer's channel that can be switched off, in order.
CUSTOMER_NOTICES = tuple(notice.value for notice in Notice)


async def save_customer(
    *,
    session: AsyncSession,
    workspace_id: int,
    name: str,
    email_domains: Sequence[str] = (),
    slack_channel: str | None = None,
    active: bool = True,
    customer_id: int | None = None,
    at: datetime,
    internal_channel: str | None = None,
    notices: Mapping[str, bool] | None = None,
) -> Customer:
    """Create or update a customer (by id, else by name ignoring case).

    `internal_channel` is the team's channel for this customer's ticket cards (None: the
    triage channel); it can never be the customer's own channel. `notices` switches the
    customer-facing messages in their channel (ack, taken, waiting, resolved); None keeps them.
    """
    name = clean_name(name, "customer name")
    if internal_channel and internal_channel == slack_channel:
        raise DirectoryError(
            "The internal channel must be the team's own, not the customer's linked channel."
        )
    unknown = set(notices or {}) - set(CUSTOMER_NOTICES)
    if unknown:
        raise DirectoryError(f"Unknown customer notices: {', '.join(sorted(unknown))}.")
    customer: Customer | None
    if customer_id is not None:
        customer = await session.get(Customer, customer_id)
        if customer is None or customer.workspace_id != workspace_id:
            raise DirectoryError("That customer does not exist.")
        other = await customer_by_name(session=session, workspace_id=workspace_id, name=name)
        if other is not None and other.id != customer.id:
            raise DirectoryError(f"Another customer is already called {other.name!r}.")
    else:
        customer = await customer_by_name(session=session, workspace_id=workspace_id, name=name)
    if customer is None:
        customer = Customer(workspace_id=workspace_id, name=name, created_at=at)
    customer.name = name
    customer.email_domains = ",".join(email_domains)
    if len(customer.email_domains) > 1000:
        raise DirectoryError("Too many email domains (1,000 characters at most).")
    customer.slack_channel = slack_channel
    customer.internal_channel = internal_channel
    for notice, enabled in (notices or {}).items():
        setattr(customer, f"notify_{notice}", bool(enabled))
    customer.active = active
    session.add(customer)
    await session.flush()
    return customer


async def save_contact(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int,
    email: str,
    name: str = "",
) -> Contact:
    """Create or update a customer's contact (by email)."""
    email = parse_email(email)
    stmt = select(Contact).where(Contact.workspace_id == workspace_id, Contact.email == email)
    contact = (await session.exec(stmt)).first()
    if contact is None:
        contact = Contact(workspace_id=workspace_id, customer_id=customer_id, email=email)
    contact.customer_id = customer_id
    contact.name = " ".join(name.split())[:NAME_MAX]
    session.add(contact)
    await session.flush()
    return contact


# ---------------------------------------------------------------------------------------
# Contracts and charge rates
# ---------------------------------------------------------------------------------------


async def contract_by_name(
    *, session: AsyncSession, workspace_id: int, customer_id: int, name: str
) -> Contract | None:
    """The customer's contract with this name, ignoring case and extra spaces."""
    contracts = await list_contracts(
        session=session, workspace_id=workspace_id, customer_id=customer_id
    )
    return _first_named(contracts, _name_key(name))


async def list_contracts(
    *, session: AsyncSession, workspace_id: int, customer_id: int | None = None
) -> list[Contract]:
    """Contracts (of one customer, or all) by customer and name."""
    stmt = select(Contract).where(Contract.workspace_id == workspace_id)
    if customer_id is not None:
        stmt = stmt.where(Contract.customer_id == customer_id)
    return sorted(
        (await session.exec(stmt)).all(), key=lambda c: (c.customer_id, c.name.casefold())
    )


async def save_contract(
    *,
    session: AsyncSession,
    workspace_id: int,
    customer_id: int,
    terms: ContractTerms,
    at: datetime,
    contract_id: int | None = None,
) -> Contract:
    """Create or update a contract (by id, else by name within the customer).

    Raises DirectoryError naming the first problem (see `check_terms`).
    """
    errors = check_terms(terms)
    if errors:
        raise DirectoryError(next(iter(errors.values())))
    name = clean_name(terms.name, "contract name")
    customer = await session.get(Customer, customer_id)
    if customer is None or customer.workspace_id != workspace_id:
        raise DirectoryError("That customer does not exist.")
    contract: Contract | None
    if contract_id is not None:
        contract = await session.get(Contract, contract_id)
        if contract is None or contract.workspace_id != workspace_id:
            raise DirectoryError("That contract does not exist.")
    else:
        contract = await contract_by_name(
            session=session, workspace_id=workspace_id, customer_id=customer_id, name=name
        )
    spans = []
    if contract is None:
        contract = Contract(
            workspace_id=workspace_id,
            customer_id=customer_id,
            name=name,
            kind=terms.kind,
            start_date=terms.start_date,
            created_at=at,
        )
    else:
        spans.append(ContractSpan(contract.customer_id, contract.start_date, contract.end_date))
    kind = ContractKind(terms.kind)
    contract.customer_id = customer_id
    contract.name = name
    contract.kind = kind
    contract.start_date = terms.start_date
    contract.end_date = terms.end_date
    # Only the fields of the contract's kind are kept, so a changed kind leaves no stale terms.
    contract.monthly_fee_minor = terms.monthly_fee_minor if kind is ContractKind.FIXED else 0
    is_block = kind is ContractKind.BLOCK
    contract.block_minutes = terms.block_minutes if is_block else 0
    contract.block_price_minor = terms.block_price_minor if is_block else 0
    contract.overage_minor_per_hour = terms.overage_minor_per_hour if is_block else 0
    contract.monthly_direct_cost_minor = terms.monthly_direct_cost_minor
    session.add(contract)
    await session.flush()
    assert contract.id is not None
    spans.append(ContractSpan(customer_id, contract.start_date, contract.end_date))
    if kind is ContractKind.HOURLY and terms.hourly_rate_minor is not None:
        await _upsert_charge_rate(
            session, workspace_id, contract.id, terms.start_date, terms.hourly_rate_minor, at
        )
    today = await workspace_today(session=session, workspace_id=workspace_id, at=at)
    await mark_contract_change(
        session=session,
        workspace_id=workspace_id,
        contract_id=contract.id,
        spans=spans,
        today=today,
        at=at,
    )
    return contract


async def _upsert_charge_rate(
    session: AsyncSession,
    workspace_id: int,
    contract_id: int,
    effective_from: date,
    minor_per_hour: int,
    at: datetime,
) -> ChargeRate:
    stmt = select(ChargeRate).where(
        ChargeRate.contract_id == contract_id, ChargeRate.effective_from == effective_from
    )
    rate = (await session.exec(stmt)).first()
    if rate is None:
        rate = ChargeRate(
            workspace_id=workspace_id,
            contract_id=contract_id,
            effective_from=effective_from,
            minor_per_hour=minor_per_hour,
            created_at=at,
        )
    rate.minor_per_hour = minor_per_hour
    session.add(rate)
    await session.flush()
    return rate


async def save_charge_rate(
    *,
    session: AsyncSession,
    workspace_id: int,
    contract_id: int,
    effective_from: date,
    minor_per_hour: int,
    at: datetime,
) -> ChargeRate:
    """Set an hourly contract's price per hour from `effective_from` on (upsert by date)."""
    if minor_per_hour < 0:
        raise DirectoryError("A charge rate cannot be negative.")
    contract = await session.get(Contract, contract_id)
    if contract is None or contract.workspace_id != workspace_id:
        raise DirectoryError("That contract does not exist.")
    if contract.kind != ContractKind.HOURLY:
        raise DirectoryError(
            f"{contract.name!r} is a {contract.kind} contract; charge rates are for hourly ones."
        )
    rate = await _upsert_charge_rate(
        session, workspace_id, contract_id, effective_from, minor_per_hour, at
    )
    await mark_contract_time_from(
        session=session,
        workspace_id=workspace_id,
        contract_id=contract_id,
        since=effective_from,
        at=at,
    )
    return rate


# ---------------------------------------------------------------------------------------
# Cost rates, groups and members
# ---------------------------------------------------------------------------------------


def cost_subject(*, member_id: int | None = None, group_id: int | None = None) -> str:
    """The subject key of a cost rate: "member:<id>", "group:<id>" or "default"."""
    if member_id is not None and group_id is not None:
        raise DirectoryError("A cost rate is for a member, a group or the default, not both.")
    if member_id is not None:
        return f"member:{member_id}"
    if group_id is not None:
        return f"group:{group_id}"
    return "default"


async def save_cost_rate(
    *,
    session: AsyncSession,
    workspace_id: int,
    effective_from: date,
    minor_per_hour: int,
    at: datetime,
    member_id: int | None = None,
    group_id: int | None = None,
    inputs: dict[str, Any] | None = None,
) -> CostRate:
    """Set a loaded hourly cost from `effective_from` for a member, a group or (neither) the
    workspace default; `inputs` keeps the calculator's breakdown for audit."""
    if minor_per_hour < 0:
        raise DirectoryError("A cost rate cannot be negative.")
    subject = cost_subject(member_id=member_id, group_id=group_id)
    if member_id is not None:
        member = await session.get(Member, member_id)
        if member is None or member.workspace_id != workspace_id:
            raise DirectoryError("That member does not exist.")
    if group_id is not None:
        group = await session.get(MemberGroup, group_id)
        if group is None or group.workspace_id != workspace_id:
            raise DirectoryError("That group does not exist.")
    # Rate changes take turns, and wait for recomputes that read the rates (PostgreSQL).
    await cost_changes.hold(session, workspace_id, exclusive=True)
    before = await cost_changes.load_cost_rates(session=session, workspace_id=workspace_id)
    stmt = select(CostRate).where(
        CostRate.workspace_id == workspace_id,
        CostRate.subject == subject,
        CostRate.effective_from == effective_from,
    )
    rate = (await session.exec(stmt)).first()
    if rate is None:
        rate = CostRate(
            workspace_id=workspace_id,
            subject=subject,
            member_id=member_id,
            group_id=group_id,
            effective_from=effective_from,
            minor_per_hour=minor_per_hour,
            created_at=at,
        )
    rate.minor_per_hour = minor_per_hour
    rate.inputs = inputs
    session.add(rate)
    await session.flush()
    if member_id is not None:
        affected: list[int] | None = [member_id]
    elif group_id is not None:
        affected = [m for m, g in before.group_of.items() if g == group_id]
    else:
        affected = None
    await _rates_changed(session, workspace_id, before, affected, at)
    return rate


async def _rates_changed(
    session: AsyncSession,
    workspace_id: int,
    before: CostRates,
    members: list[int] | None,
    at: datetime,
) -> None:
    """Cost rates or groups changed for `members` (None: everyone) since `before` was read:
    keep the difference for the refresh when only labour cost moves, else mark the time of
    the members whose costed days change stale."""
    after = await cost_changes.load_cost_rates(session=session, workspace_id=workspace_id)
    deltas = cost_changes.rate_deltas(before, after, after.group_of if members is None else members)
    if deltas and cost_changes.costs_everywhere(deltas):
        await cost_changes.record(session=session, workspace_id=workspace_id, deltas=deltas, at=at)
    elif deltas:
        await mark_members_from(
            session=session,
            workspace_id=workspace_id,
            member_ids=sorted({d[0] for d in deltas}),
            since=min(d[1] for d in deltas),
            at=at,
        )


async def list_cost_rates(*, session: AsyncSession, workspace_id: int) -> list[CostRate]:
    """Every cost rate, by subject and date."""
    stmt = (
        select(CostRate)
        .where(CostRate.workspace_id == workspace_id)
        .order_by(col(CostRate.subject), col(CostRate.effective_from))
    )
    return list((await session.exec(stmt)).all())


async def list_groups(*, session: AsyncSession, workspace_id: int) -> list[MemberGroup]:
    """Member groups by name."""
    stmt = select(MemberGroup).where(MemberGroup.workspace_id == workspace_id)
    return sorted((await session.exec(stmt)).all(), key=lambda g: g.name.casefold())


async def group_by_name(
    *, session: AsyncSession, workspace_id: int, name: str
) -> MemberGroup | None:
    """The group with this name, ignoring case."""
    groups = await list_groups(session=session, workspace_id=workspace_id)
    return _first_named(groups, _name_key(name))


async def member_by_email(*, session: AsyncSession, workspace_id: int, email: str) -> Member | None:
    """The member with this email (lower-cased)."""
    stmt = select(Member).where(
        Member.workspace_id == workspace_id, Member.email == email.strip().lower()
    )
    return (await session.exec(stmt)).first()


async def save_member(
    *,
    session: AsyncSession,
    workspace_id: int,
    email: str,
    at: datetime,
    name: str = "",
    slack_user_id: str | None = None,
    group_name: str | None = None,
    role: Role | None = None,
) -> Member:
    """Create or update a member by email (or Slack id); a new group is created by name.

    Moving a member to another group marks all their time stale (their group rate changes).
    """
    email = parse_email(email)
    member = await member_by_email(session=session, workspace_id=workspace_id, email=email)
    if member is None and slack_user_id:
        member = (
            await session.exec(
                select(Member).where(
                    Member.workspace_id == workspace_id, Member.slack_user_id == slack_user_id
                )
            )
        ).first()
    if member is None:
        member = Member(workspace_id=workspace_id, email=email, created_at=at)
    if slack_user_id:
        holder = (
            await session.exec(
                select(Member).where(
                    Member.workspace_id == workspace_id, Member.slack_user_id == slack_user_id
                )
            )
        ).first()
        if holder is not None and holder is not member:
            raise DirectoryError(
                f"Slack user {slack_user_id} is already {holder.email or holder.name}."
            )
        member.slack_user_id = slack_user_id
    member.email = email
    if name.strip():
        member.name = " ".join(name.split())[:NAME_MAX]
    if role is not None:
        await _check_an_admin_stays(
            session=session, workspace_id=workspace_id, member=member, role=role, active=True
        )
        member.role = role
    await _place_in_group(
        session=session, workspace_id=workspace_id, member=member, group_name=group_name, at=at
    )
    return member


LAST_ADMIN = "Docket needs at least one admin: make someone else an admin first."


class LastAdminError(DirectoryError):
    """The change would leave the workspace without an active admin."""


async def _check_an_admin_stays(
    *, session: AsyncSession, workspace_id: int, member: Member, role: Role, active: bool
) -> None:
    """Refuse to demote or deactivate the workspace's last active admin."""
    if member.id is None or not (member.role == Role.ADMIN and member.active):
        return
    if role == Role.ADMIN and active:
        return
    others = await session.exec(
        select(Member.id).where(
            Member.workspace_id == workspace_id,
            Member.role == Role.ADMIN,
            col(Member.active).is_(True),
            Member.id != member.id,
        )
    )
    if others.first() is None:
        raise LastAdminError(LAST_ADMIN)


async def _place_in_group(
    *,
    session: AsyncSession,
    workspace_id: int,
    member: Member,
    group_name: str | None,
    at: datetime,
) -> None:
    """Set the member's group by name (None: unchanged, empty: no group), creating it if new;
    a move to another group changes their cost rate where the group's rate applied."""
    new_group = member.group_id
    if group_name is not None:
        new_group = (
            (
                await ensure_group(
                    session=session,
                    workspace_id=workspace_id,
                    name=clean_name(group_name, "group name"),
                )
            ).id
            if group_name.strip()
            else None
        )
    before = None
    if member.id is not None and new_group != member.group_id:
        # Read before the move is flushed; rate changes take turns (see save_cost_rate).
        await cost_changes.hold(session, workspace_id, exclusive=True)
        before = await cost_changes.load_cost_rates(session=session, workspace_id=workspace_id)
    member.group_id = new_group
    session.add(member)
    await session.flush()
    if before is not None and member.id is not None:
        await _rates_changed(session, workspace_id, before, [member.id], at)


async def change_member_access(
    *,
    session: AsyncSession,
    workspace_id: int,
    member_id: int,
    role: Role | None,
    active: bool,
    group_name: str | None,
    at: datetime,
) -> Member:
    """Set a member's role (None: unchanged), whether they are active, and their group (None:
    unchanged, empty: no group), for every path that changes them.

    Raises LastAdminError when this would leave no active admin (nothing is changed), and
    marks all the member's time stale when their group changes.
    """
    member = await session.get(Member, member_id)
    if member is None or member.workspace_id != workspace_id:
        raise DirectoryError("That member does not exist.")
    new_role = role if role is not None else Role(member.role)
    await _check_an_admin_stays(
        session=session, workspace_id=workspace_id, member=member, role=new_role, active=active
    )
    member.role = new_role
    member.active = active
    await _place_in_group(
        session=session, workspace_id=workspace_id, member=member, group_name=group_name, at=at
    )
    return member
