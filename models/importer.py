"""CSV import of members, customers, contacts, contracts, rates and time.

Rules:

- All or nothing: every row is checked (values, then references to what already exists) and
  every problem is reported with its line number; if there is any, nothing is written.
- Idempotent: rows are upserted on their natural keys (member email, customer name, contact
  email, contract name within its customer, rate subject and date). Time rows are keyed by
  their `id` column when the file has one, else by a hash of the row plus its occurrence
  number (two identical rows in one file stay two entries), stored in `TimeEntry.source_key`;
  importing the same file again changes nothing.
- Amounts are decimal strings in the workspace currency (`1200`, `1,200.50`), hours decimals
  (`1.5`), dates ISO (`2025-06-03`), booleans `true/false`, `yes/no`, `1/0` (empty: true).
- Time is streamed once, checked and written in batches with executemany (COPY into a staging
  table on PostgreSQL), so a file of a million rows never becomes a million ORM objects; a
  bad line stops the writing, the rest is still checked, and the caller's rollback leaves
  nothing of the file. Imported time is not held to the 24-hour
  rule (it may be a summary of a day), but it must be positive and not in the future.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import directory
from models.money import parse_amount
from models.people import ensure_group
from models.sla_import import (
    SLA_COLUMNS,
    SLA_KINDS,
    apply_sla_row,
    policy_exists,
    start_sla_import,
)
from models.sla_store import refresh_open_tickets
from models.sql import dialect
from models.tables import (
    ChargeRate,
    Contact,
    Contract,
    ContractKind,
    Customer,
    Member,
    Ticket,
    TimeEntry,
)
from models.timelog import EntryKey, mark_entry_changes

KINDS = (
    "members",
    "customers",
    "contacts",
    "contracts",
    "cost-rates",
    "charge-rates",
    "time",
    *SLA_KINDS,
)
FULL_KINDS = ("members", "customers", "contacts", "contracts")
"""Kinds a file can list completely (`full`): records missing from it are retired."""

COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required columns, optional columns)
    "members": (("email",), ("name", "slack_user_id", "group", "role", "external_id")),
    "customers": (
        ("name",),
        ("email_domains", "slack_channel", "internal_channel", "external_id"),
    ),
    "contacts": (("customer", "email"), ("name", "external_id")),
    "contracts": (
        ("customer", "name", "kind", "start_date"),
        (
            "end_date",
            "hourly_rate",
            "monthly_fee",
            "block_hours",
            "block_price",
            "overage_rate",
            "monthly_direct_cost",
            "external_id",
            "product_code",
            "sla_policy",
        ),
    ),
    "cost-rates": (("subject", "effective_from", "hourly_cost"), ()),
    "charge-rates": (("contract", "effective_from", "hourly_rate"), ("customer",)),
    "time": (
        ("member", "work_date", "hours"),
        ("customer", "contract", "ticket", "billable", "note", "id"),
    ),
    **SLA_COLUMNS,
}

MAX_REPORTED_ERRORS = 200
BATCH = 5000
_TRUE = frozenset({"", "true", "yes", "y", "1", "billable"})
_FALSE = frozenset({"false", "no", "n", "0", "non-billable", "nb"})
_HOURS_RE = re.compile(r"(\d{1,4})(?:[.,](\d{1,6}))?")

_ME: Any = Member.__table__  # type: ignore[attr-defined]

Progress = Callable[[str, int, int | None], None]
"""`progress(stage, rows_done, rows_total_or_None)`: "writing" as rows go in."""


@dataclass(frozen=True)
class RowError:
    """A problem with one line of the file (line 1 is the header)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFailed(Exception):
    """The file was not imported; `errors` says why, line by line (nothing was written)."""

    def __init__(self, errors: list[RowError], more: int = 0) -> None:
        self.errors = errors
        self.more = more
        text = "; ".join(str(e) for e in errors[:5])
        super().__init__(f"{len(errors) + more} problem(s): {text}")


@dataclass
class ImportResult:
    """What an import did."""

    kind: str
    rows: int = 0
    written: int = 0
    stale_marked: int = 0
    notes: list[str] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: list[str] = field(default_factory=list)  # what a full import marked inactive

    def summary(self) -> str:
        """ "3 added, 1 updated, 1 retired, 5 unchanged" (directory kinds)."""
        return (
            f"{self.added} added, {self.updated} updated, {len(self.retired)} retired, "
            f"{self.unchanged} unchanged"
        )


Opener = Callable[[], TextIO]


def _rows(stream: TextIO, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; raises ImportFailed for a bad header."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed([RowError(1, "the file is empty (a header line is needed)")]) from None
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    required, optional = COLUMNS[kind]
    missing = [c for c in required if c not in names]
    unknown = [n for n in names if n and n not in required and n not in optional]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if len(set(names)) != len(names):
        problems.append("a column appears twice")
    if problems:
        expected = ",".join((*required, *optional))
        raise ImportFailed([RowError(1, f"{'; '.join(problems)} (the columns are: {expected})")])
    line = reader.line_num
    for values in reader:
        start, line = line + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue  # blank lines are allowed
        if len(values) != len(names):
            yield start, {"__error__": f"expected {len(names)} values, found {len(values)}"}
            continue
        yield start, {n: v.strip() for n, v in zip(names, values, strict=True) if n}


def _amount(row: dict[str, str], name: str, *, required: bool = False) -> int:
    raw = row.get(name, "")
    if not raw:
        if required:
            raise ValueError(f"{name} is empty")
        return 0
    try:
        value = parse_amount(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if value < 0:
        raise ValueError(f"{name} cannot be negative")
    return value


def _date(row: dict[str, str], name: str) -> date:
    raw = row.get(name, "")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} {raw!r} is not a date (use YYYY-MM-DD)") from None


def parse_minutes(raw: str) -> int:
    """Hours as a decimal string (`1.5`, `0,25`) in minutes, half up; ValueError otherwise."""
    match = _HOURS_RE.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"hours {raw!r} is not a number of hours (e.g. 1.5)")
    whole, frac = match.group(1), match.group(2) or ""
    # Exact integer arithmetic: minutes = (whole.frac) x 60, rounded half up.
    scale = 10 ** len(frac)
    numer = (int(whole) * scale + (int(frac) if frac else 0)) * 60
    minutes: int = (2 * numer + scale) // (2 * scale)
    return minutes


def parse_bool(raw: str) -> bool:
    """true/false, yes/no, 1/0 (empty: true)."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"billable {raw!r} is not true or false")


def _key(*parts: str) -> str:
    return "\x1f".join(p.casefold() for p in parts)


# ---------------------------------------------------------------------------------------
# Reference maps (loaded once per import)
# ---------------------------------------------------------------------------------------


@dataclass
class _Refs:
    members: dict[str, int]
    customers: dict[str, int]
    contracts: dict[tuple[int, str], int]
    contract_names: dict[str, list[int]]
    contract_customer: dict[int, int]
    tickets: dict[int, tuple[int, int | None, int | None]]


async def _refs(session: AsyncSession, workspace_id: int, *, tickets: bool = False) -> _Refs:
    member_rows = await session.execute(
        sa.select(_ME.c.id, _ME.c.email).where(_ME.c.workspace_id == workspace_id)
    )
    members = {str(e).lower(): int(i) for i, e in member_rows.all() if e}
    customers = {
        c.name.casefold(): int(c.id or 0)
        for c in (await session.exec(select(Customer).where(Customer.workspace_id == workspace_id)))
    }
    contracts: dict[tuple[int, str], int] = {}
    names: dict[str, list[int]] = {}
    owner: dict[int, int] = {}
    for c in await session.exec(select(Contract).where(Contract.workspace_id == workspace_id)):
        assert c.id is not None
        contracts[(c.customer_id, c.name.casefold())] = c.id
        names.setdefault(c.name.casefold(), []).append(c.id)
        owner[c.id] = c.customer_id
    ticket_map: dict[int, tuple[int, int | None, int | None]] = {}
    if tickets:
        tt: Any = Ticket.__table__  # type: ignore[attr-defined]
        for tid, number, customer_id, contract_id in (
            await session.execute(
                sa.select(tt.c.id, tt.c.number, tt.c.customer_id, tt.c.contract_id).where(
                    tt.c.workspace_id == workspace_id
                )
            )
        ).all():
            ticket_map[int(number)] = (int(tid), customer_id, contract_id)
    return _Refs(members, customers, contracts, names, owner, ticket_map)


# ---------------------------------------------------------------------------------------
# Directory kinds (small files: checked, then upserted row by row)
# ---------------------------------------------------------------------------------------


async def _apply_directory_row(
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    row: dict[str, str],
    refs: _Refs,
    at: datetime,
    match: Any = None,
) -> tuple[str, Any]:
    """Check one row and save it onto `match` (the record it names, if any). Returns (natural
    key, saved object)."""
    if kind == "members":
        email = directory.parse_email(row["email"])
        if match is not None and match.email != email:
            match.email = email  # matched by external id: the address changed at the source
            session.add(match)
            await session.flush()
        role = directory.parse_role(row.get("role"))
        slack = directory.parse_user_id(row.get("slack_user_id"))
        member = await directory.save_member(
            session=session,
            workspace_id=workspace_id,
            email=email,
            name=row.get("name", ""),
            slack_user_id=slack,
            group_name=row.get("group", ""),
            role=role,
            at=at,
        )
        return _key(email), member
    if kind == "customers":
        name = directory.clean_name(row["name"], "customer name")
        customer = await directory.save_customer(
            session=session,
            workspace_id=workspace_id,
            name=name,
            email_domains=directory.parse_domains(row.get("email_domains")),
            slack_channel=directory.parse_channel(row.get("slack_channel")),
            customer_id=None if match is None else match.id,
            internal_channel=directory.parse_channel(row.get("internal_channel")),
            at=at,
        )
        return _key(name), customer
    customer_id = None
    if row.get("customer"):
        customer_id = refs.customers.get(row["customer"].casefold())
        if customer_id is None:
            raise ValueError(f"no customer named {row['customer']!r} (import customers first)")
    if kind == "contacts":
        if customer_id is None:
            raise ValueError("customer is empty")
        email = directory.parse_email(row["email"])
        if match is not None and match.email != email:
            match.email = email
            session.add(match)
            await session.flush()
        contact = await directory.save_contact(
            session=session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            email=email,
            name=row.get("name", ""),
        )
        return _key(email), contact
    if kind == "contracts":
        if customer_id is None:
            raise ValueError("customer is empty")
        try:
            contract_kind = ContractKind(row["kind"].strip().lower())
        except ValueError:
            raise ValueError(f"kind {row['kind']!r} is not hourly, fixed or block") from None
        block_hours = row.get("block_hours", "")
        terms = directory.ContractTerms(
            name=directory.clean_name(row["name"], "contract name"),
            kind=contract_kind,
            start_date=_date(row, "start_date"),
            end_date=_date(row, "end_date") if row.get("end_date") else None,
            hourly_rate_minor=(_amount(row, "hourly_rate") if row.get("hourly_rate") else None),
            monthly_fee_minor=_amount(row, "monthly_fee"),
            block_minutes=parse_minutes(block_hours) if block_hours else 0,
            block_price_minor=_amount(row, "block_price"),
            overage_minor_per_hour=_amount(row, "overage_rate"),
            monthly_direct_cost_minor=_amount(row, "monthly_direct_cost"),
        )
        problems = directory.check_terms(terms)
        if problems:
            raise ValueError("; ".join(problems.values()))
        contract = await directory.save_contract(
            session=session,
            workspace_id=workspace_id,
            customer_id=customer_id,
            terms=terms,
            contract_id=None if match is None else match.id,
            at=at,
        )
        assert contract.id is not None
        policy = row.get("sla_policy", "").strip() or None
        if policy and not await policy_exists(
            session=session, workspace_id=workspace_id, name=policy
        ):
            raise ValueError(f"no SLA policy named {policy!r} (import sla-policies first)")
        contract.sla_policy = policy
        session.add(contract)
        refs.contracts[(customer_id, terms.name.casefold())] = contract.id
        return _key(str(customer_id), terms.name), contract
    if kind == "cost-rates":
        subject = row["subject"].strip()
        since = _date(row, "effective_from")
        minor = _amount(row, "hourly_cost", required=True)
        member_id = group_id = None
        if subject.lower().startswith("group:"):
            group = await ensure_group(
                session=session,
                workspace_id=workspace_id,
                name=directory.clean_name(subject[6:], "group name"),
            )
            group_id = group.id
            key = _key("group", group.name)
        elif subject.lower() == "default":
            key = _key("default")
        else:
            email = directory.parse_email(subject)
            member_id = refs.members.get(email)
            if member_id is None:
                raise ValueError(f"no member with email {email} (import members first)")
            key = _key("member", email)
        rate = await directory.save_cost_rate(
            session=session,
            workspace_id=workspace_id,
            effective_from=since,
            minor_per_hour=minor,
            member_id=member_id,
            group_id=group_id,
            at=at,
        )
        return _key(key, since.isoformat()), rate
    if kind == "charge-rates":
        name = row["contract"].casefold()
        if customer_id is not None:
            contract_id = refs.contracts.get((customer_id, name))
            found = [] if contract_id is None else [contract_id]
        else:
            found = refs.contract_names.get(name, [])
        if not found:
            raise ValueError(f"no contract named {row['contract']!r}")
        if len(found) > 1:
            raise ValueError(
                f"several customers have a contract named {row['contract']!r}: "
                "add a customer column"
            )
        since = _date(row, "effective_from")
        charge = await directory.save_charge_rate(
            session=session,
            workspace_id=workspace_id,
            contract_id=found[0],
            effective_from=since,
            minor_per_hour=_amount(row, "hourly_rate", required=True),
            at=at,
        )
        return _key(str(found[0]), since.isoformat()), charge
    if kind in SLA_KINDS:
        key = await apply_sla_row(session=session, workspace_id=workspace_id, kind=kind, row=row)
        return key, None
    raise ValueError(f"unknown kind {kind!r}")  # pragma: no cover - checked by the caller


_MODELS: dict[str, Any] = {
    "members": Member,
    "customers": Customer,
    "contacts": Contact,
    "contracts": Contract,
}


class _Unchanged(Exception):
    """Raised inside a row's savepoint to undo a save that changed nothing (no stale marks)."""

    def __init__(self, key: str, record_id: int) -> None:
        self.key, self.record_id = key, record_id


async def _find_existing(
    session: AsyncSession, workspace_id: int, kind: str, row: dict[str, str], refs: _Refs
) -> Any:
    """The record a directory row names: by its external id first, then by its natural key.

    Raises ValueError when the natural key names a record that has another external id.
    """
    model = _MODELS.get(kind)
    if model is None:
        return None
    external = row.get("external_id", "")
    if external:
        found = (
            await session.exec(
                select(model).where(
                    model.workspace_id == workspace_id, model.external_id == external
                )
            )
        ).first()
        if found is not None:
            return found
    stmt = select(model).where(model.workspace_id == workspace_id)
    if kind == "customers":
        name = " ".join(row.get("name", "").split())
        candidates = [c for c in await session.exec(stmt) if c.name.casefold() == name.casefold()]
    elif kind in ("members", "contacts"):
        email = row.get("email", "").strip().lower()
        candidates = list(await session.exec(stmt.where(model.email == email)))
    else:
        customer_id = refs.customers.get(row.get("customer", "").casefold())
        contract_id = refs.contracts.get(
            (customer_id or 0, " ".join(row.get("name", "").split()).casefold())
        )
        candidates = [] if contract_id is None else [await session.get(Contract, contract_id)]
    found = candidates[0] if candidates else None
    if found is not None and external and found.external_id not in (None, external):
        raise ValueError(
            f"this row's external_id {external!r} differs from the record's "
            f"({found.external_id!r}); fix the file or the record"
        )
    return found


async def _snapshot(session: AsyncSession, kind: str, record: Any) -> tuple[Any, ...]:
    """Everything an import may change on a record (to tell updated from unchanged)."""
    table = type(record).__table__
    values = tuple(
        getattr(record, c.name) for c in table.columns if c.name not in ("id", "created_at")
    )
    if kind == "contracts":
        ch: Any = ChargeRate.__table__  # type: ignore[attr-defined]
        rates = await session.execute(
            sa.select(ch.c.effective_from, ch.c.minor_per_hour)
            .where(ch.c.contract_id == record.id)
            .order_by(ch.c.effective_from)
        )
        values += tuple(tuple(r) for r in rates.all())
    return values


async def _save_row(
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    row: dict[str, str],
    refs: _Refs,
    at: datetime,
) -> tuple[str, Any, bool]:
    """Save one directory row; returns (natural key, record, whether it is new).

    Raises _Unchanged (undone by the caller's savepoint) when the row changed nothing.
    """
    match = await _find_existing(session, workspace_id, kind, row, refs)
    before = None if match is None else await _snapshot(session, kind, match)
    key, saved = await _apply_directory_row(session, workspace_id, kind, row, refs, at, match)
    if kind in _MODELS:
        if row.get("external_id"):
            if len(row["external_id"]) > 100:
                raise ValueError("external_id is longer than 100 characters")
            saved.external_id = row["external_id"]
        if kind == "contracts" and "product_code" in row:
            if len(row["product_code"]) > 100:
                raise ValueError("product_code is longer than 100 characters")
            saved.product_code = row["product_code"] or None
        saved.active = True
        session.add(saved)
        await session.flush()
        if before is not None and before == await _snapshot(session, kind, saved):
            raise _Unchanged(key, int(saved.id))
    return key, saved, match is None


async def _retire_missing(
    session: AsyncSession, workspace_id: int, kind: str, kept: set[int]
) -> list[str]:
    """Mark active records of `kind` not in `kept` inactive (never deleted); their labels."""
    model = _MODELS[kind]
    retired = []
    stmt = select(model).where(model.workspace_id == workspace_id, model.active.is_(True))
    for record in await session.exec(stmt.order_by(model.id)):
        if record.id in kept:
            continue
        record.active = False
        session.add(record)
        retired.append(getattr(record, "email", None) or record.name)
    await session.flush()
    return retired


async def _import_directory(
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    opener: Opener,
    at: datetime,
    progress: Progress | None,
    full: bool = False,
) -> ImportResult:
    result = ImportResult(kind=kind)
    errors: list[RowError] = []
    refs = await _refs(session, workspace_id)
    await start_sla_import(session=session, workspace_id=workspace_id, kind=kind)
    seen: dict[str, int] = {}
    external_seen: dict[str, int] = {}
    kept: set[int] = set()
    with opener() as stream:
        for line, row in _rows(stream, kind):
            result.rows += 1
            if "__error__" in row:
                errors.append(RowError(line, row["__error__"]))
                continue
            external = row.get("external_id", "")
            if external:
                if external in external_seen:
                    errors.append(
                        RowError(line, f"external_id repeats line {external_seen[external]}")
                    )
                    continue
                external_seen[external] = line
            try:
                # A failure inside a savepoint leaves the rest of the import usable, so every
                # bad row is found in one run.
                async with session.begin_nested():
                    key, saved, new = await _save_row(session, workspace_id, kind, row, refs, at)
                record_id = int(saved.id) if saved is not None and saved.id else None
                if new:
                    result.added += 1
                else:
                    result.updated += 1
            except _Unchanged as same:
                key, record_id = same.key, same.record_id
                result.unchanged += 1
            except (ValueError, KeyError) as exc:
                errors.append(RowError(line, _message(exc)))
                continue
            except sa.exc.IntegrityError as exc:
                errors.append(RowError(line, f"conflicts with an existing row ({exc.orig})"))
                continue
            if key in seen:
                errors.append(RowError(line, f"repeats line {seen[key]} (same {kind} key)"))
            seen[key] = line
            if record_id is not None and kind in _MODELS:
                kept.add(record_id)
            if kind == "customers" and record_id is not None:
                refs.customers[key] = record_id
            if progress is not None and result.rows % 500 == 0:
                progress("writing", result.rows, None)
    if errors:
        raise ImportFailed(errors[:MAX_REPORTED_ERRORS], max(0, len(errors) - MAX_REPORTED_ERRORS))
    if full:
        result.retired = await _retire_missing(session, workspace_id, kind, kept)
    result.written = result.added + result.updated + len(result.retired)
    return result


# ---------------------------------------------------------------------------------------
# Time (large files: streamed, checked, then written in batches)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRow:
    """A checked time row, ready to be written."""

    source_key: str
    member_id: int
    ticket_id: int | None
    customer_id: int | None
    contract_id: int | None
    work_date: date
    minutes: int
    billable: bool
    note: str


def check_time_row(
    row: dict[str, str], refs: _Refs, *, today: date, hashed_key: str = ""
) -> TimeRow:
    """Resolve and check one time row (pure once `refs` is loaded); ValueError says why.

    The source key is the row's `id` when it has one, else `hashed_key`.
    """
    email = row["member"].strip().lower()
    member_id = refs.members.get(email)
    if member_id is None:
        raise ValueError(f"no member with email {row['member']!r} (import members first)")
    ticket_id = customer_id = contract_id = None
    ticket_text = row.get("ticket", "").lstrip("#")
    if ticket_text:
        if not ticket_text.isdigit():
            raise ValueError(f"ticket {row['ticket']!r} is not a ticket number")
        ticket = refs.tickets.get(int(ticket_text))
        if ticket is None:
            raise ValueError(f"there is no ticket #{ticket_text}")
        ticket_id, customer_id, contract_id = ticket
    customer_name = row.get("customer", "")
    if customer_name:
        customer_id = refs.customers.get(customer_name.casefold())
        if customer_id is None:
            raise ValueError(f"no customer named {customer_name!r}")
        if ticket_id is not None and contract_id is not None:
            if refs.contract_customer.get(contract_id) != customer_id:
                contract_id = None  # the ticket's contract is another customer's
    contract_name = row.get("contract", "")
    if contract_name:
        if customer_id is None:
            raise ValueError("a contract needs its customer (fill the customer column)")
        contract_id = refs.contracts.get((customer_id, contract_name.casefold()))
        if contract_id is None:
            raise ValueError(f"{customer_name or 'the customer'} has no contract {contract_name!r}")
    if contract_id is not None and customer_id is None:
        customer_id = refs.contract_customer.get(contract_id)
    work_date = _date(row, "work_date")
    if work_date > today:
        raise ValueError(f"work_date {work_date.isoformat()} is in the future")
    minutes = parse_minutes(row["hours"])
    if minutes <= 0:
        raise ValueError("hours must be more than zero")
    if minutes > 24 * 60:
        raise ValueError("hours must be at most 24 for one row")
    billable = parse_bool(row.get("billable", ""))
    note = row.get("note", "")
    if len(note) > 2000:
        raise ValueError("note is longer than 2,000 characters")
    raw_id = row.get("id", "")
    source = hashed_key
    if raw_id:
        source = f"id:{raw_id}" if len(raw_id) <= 190 else "id#" + _digest(raw_id)
    return TimeRow(
        source, member_id, ticket_id, customer_id, contract_id, work_date, minutes, billable, note
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"column {exc.args[0]} is missing"
    return str(exc)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


# What a re-import may change on a time entry.
_UPDATED_ALL = (
    "member_id",
    "ticket_id",
    "customer_id",
    "contract_id",
    "work_date",
    "minutes",
    "billable",
    "note",
)
_TIME_COLUMNS = ("workspace_id", *_UPDATED_ALL, "source_key", "created_at", "updated_at")
_HASHED = tuple(sorted(COLUMNS["time"][0] + COLUMNS["time"][1]))


def row_hash(row: dict[str, str]) -> str:
    """A stable hash of a time row's values (header order and case do not matter)."""
    parts = [f"{k}={row.get(k, '')}" for k in _HASHED]
    return _digest("\x1e".join(parts))


def _time_rows(
    opener: Opener, refs: _Refs, today: date
) -> Iterator[tuple[int, TimeRow | None, str | None]]:
    occurrences: dict[str, int] = {}
    with opener() as stream:
        for line, row in _rows(stream, "time"):
            if "__error__" in row:
                yield line, None, row["__error__"]
                continue
            hashed = ""
            if not row.get("id"):
                digest = row_hash(row)
                n = occurrences[digest] = occurrences.get(digest, 0) + 1
                hashed = f"h:{digest}:{n}"
            try:
                checked = check_time_row(row, refs, today=today, hashed_key=hashed)
            except (ValueError, KeyError) as exc:
                yield line, None, _message(exc)
                continue
            yield line, checked, None


async def _import_time(
    session: AsyncSession,
    workspace_id: int,
    opener: Opener,
    at: datetime,
    today: date,
    progress: Progress | None,
) -> ImportResult:
    """One pass over the file: rows are checked and written in batches as they come. From the
    first bad line on nothing more is written but every line is still checked, so the error
    list is complete; ImportFailed then makes the caller roll back what was written."""
    result = ImportResult(kind="time")
    refs = await _refs(session, workspace_id, tickets=True)
    errors: list[RowError] = []
    error_count = 0
    ids_seen: dict[str, int] = {}

    def checked_rows() -> Iterator[TimeRow]:
        nonlocal error_count
        for line, checked, error in _time_rows(opener, refs, today):
            result.rows += 1
            if checked is not None and checked.source_key.startswith("id"):
                if checked.source_key in ids_seen:
                    error = f"id repeats line {ids_seen[checked.source_key]}"
                ids_seen[checked.source_key] = line
            if error is not None:
                error_count += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(RowError(line, error))
            elif checked is not None and not error_count:
                yield checked

    written, marked = await write_time_rows(
        session=session,
        workspace_id=workspace_id,
        rows=checked_rows(),
        at=at,
        progress=progress,
        mark=lambda: not error_count,
    )
    if error_count:
        raise ImportFailed(errors, error_count - len(errors))
    result.written, result.stale_marked = written, marked
    return result


def _time_values(workspace_id: int, row: TimeRow, at: datetime) -> tuple[Any, ...]:
    """A checked row's values in `_TIME_COLUMNS` order."""
    return (
        workspace_id,
        row.member_id,
        row.ticket_id,
        row.customer_id,
        row.contract_id,
        row.work_date,
        row.minutes,
        row.billable,
        row.note,
        row.source_key,
        at,
        at,
    )


async def write_time_rows(
    *,
    session: AsyncSession,
    workspace_id: int,
    rows: Iterable[TimeRow],
    at: datetime,
    progress: Progress | None = None,
    total: int | None = None,
    mark: Callable[[], bool] = lambda: True,
) -> tuple[int, int]:
    """Upsert checked time rows on (workspace, source key) in batches; returns (rows inserted
    or changed, customer-periods marked stale). The bulk path of `docket import time`, usable
    directly (e.g. to load benchmark data): rows need distinct, non-empty source keys.
    """
    if dialect(session) == "postgresql":
        return await _copy_time_rows(
            session=session,
            workspace_id=workspace_id,
            rows=rows,
            at=at,
            progress=progress,
            total=total,
            mark=mark,
        )
    table: Any = TimeEntry.__table__  # type: ignore[attr-defined]
    ins: Any = sqlite.insert(table)
    updated = _UPDATED_ALL
    upsert = ins.on_conflict_do_update(
        index_elements=["workspace_id", "source_key"],
        set_={**{c: ins.excluded[c] for c in updated}, "updated_at": ins.excluded.updated_at},
        # Unchanged rows are left alone: a second import of the same file writes nothing.
        where=sa.or_(*[table.c[c].is_distinct_from(ins.excluded[c]) for c in updated]),
    )
    # RETURNING gives only the rows inserted or changed: only they make periods stale.
    upsert_returning = upsert.returning(
        table.c.source_key, table.c.customer_id, table.c.contract_id, table.c.work_date
    )
    has_imported = (
        await session.execute(
            sa.select(table.c.id)
            .where(table.c.workspace_id == workspace_id, table.c.source_key.is_not(None))
            .limit(1)
        )
    ).first() is not None
    fast_sql: str | None = None
    if dialect(session) == "sqlite":
        # A bigger page cache keeps the indexes' pages in memory while a large file goes in.
        await session.execute(sa.text("PRAGMA cache_size = -262144"))
        if not has_imported:
            # The driver's own executemany, without per-row parameter processing, compiled
            # once, with values converted the way SQLAlchemy binds them. Nothing of this
            # workspace was imported before and the file's keys are distinct (a repeated id
            # is refused above, hashed keys are numbered), so no row can conflict: a plain
            # INSERT, which SQLite does in well under half the time of the upsert.
            dialect_obj = session.get_bind().dialect
            compiled = ins.values({c: sa.bindparam(c) for c in _TIME_COLUMNS}).compile(
                dialect=dialect_obj
            )
            if list(compiled.positiontup or ()) == list(_TIME_COLUMNS):
                fast_sql = str(compiled)
                to_day = table.c.work_date.type._cached_bind_processor(dialect_obj)
                to_flag = table.c.billable.type._cached_bind_processor(dialect_obj)
                to_time = table.c.created_at.type._cached_bind_processor(dialect_obj)
                at_value = to_time(at) if to_time else at
    changes: set[EntryKey] = set()
    written_count = 0
    batch: list[tuple[Any, ...]] = []
    done = 0

    async def flush() -> None:
        nonlocal done, written_count
        if not batch:
            return
        if fast_sql is not None:
            connection = await session.connection()
            await connection.exec_driver_sql(
                fast_sql,
                [
                    (
                        *r[:5],
                        to_day(r[5]) if to_day else r[5],
                        r[6],
                        to_flag(r[7]) if to_flag else r[7],
                        r[8],
                        r[9],
                        at_value,
                        at_value,
                    )
                    for r in batch
                ],
            )
        else:
            dicts = [dict(zip(_TIME_COLUMNS, r, strict=True)) for r in batch]
            if not has_imported:
                await session.execute(upsert, dicts)
        if not has_imported:
            # Nothing was imported before: every row is new.
            written_count += len(batch)
            changes.update(EntryKey(r[3], r[4], r[5]) for r in batch)
        else:
            # Entries re-imported with another date or customer also leave their old periods.
            found = await session.execute(
                sa.select(
                    table.c.source_key, table.c.customer_id, table.c.contract_id, table.c.work_date
                ).where(
                    table.c.workspace_id == workspace_id,
                    table.c.source_key.in_([r[9] for r in batch]),
                )
            )
            old = {k: EntryKey(c, t, d) for k, c, t, d in found.all()}
            written = await session.execute(upsert_returning, dicts)
            for key, customer_id, contract_id, work_date in written.all():
                written_count += 1
                changes.add(EntryKey(customer_id, contract_id, work_date))
                if key in old:
                    changes.add(old[key])
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress("writing", done, total)

    for checked in rows:
        batch.append(_time_values(workspace_id, checked, at))
        if len(batch) >= BATCH:
            await flush()
    await flush()
    if not mark():  # the caller will roll back: nothing to mark
        return written_count, 0
    marked = await mark_entry_changes(
        session=session, workspace_id=workspace_id, changes=changes, at=at
    )
    return written_count, marked


async def _copy_time_rows(
    *,
    session: AsyncSession,
    workspace_id: int,
    rows: Iterable[TimeRow],
    at: datetime,
    progress: Progress | None,
    total: int | None,
    mark: Callable[[], bool],
) -> tuple[int, int]:
    """PostgreSQL: COPY the rows into a staging table, then one upsert from it (unchanged
    rows are left alone, and only inserted or changed rows mark periods stale)."""
    conn = await session.connection()
    driver: Any = (await conn.get_raw_connection()).driver_connection
    staging = "docket_time_import"
    await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {staging}")
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} (LIKE time_entry INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    done = 0
    batch: list[tuple[Any, ...]] = []

    async def flush() -> None:
        nonlocal done
        if batch:
            await driver.copy_records_to_table(staging, records=batch, columns=_TIME_COLUMNS)
            done += len(batch)
            batch.clear()
            if progress is not None:
                progress("writing", done, total)

    for checked in rows:
        batch.append(_time_values(workspace_id, checked, at))
        if len(batch) >= 10 * BATCH:
            await flush()
    await flush()
    if not mark():
        return done, 0
    columns = ", ".join(_TIME_COLUMNS)
    # Entries re-imported with another date or customer also leave their old periods.
    found: Any = await conn.exec_driver_sql(
        f"SELECT t.source_key, t.customer_id, t.contract_id, t.work_date FROM time_entry t"
        f" JOIN {staging} s ON s.workspace_id = t.workspace_id AND s.source_key = t.source_key"
    )
    old = {row[0]: EntryKey(row[1], row[2], row[3]) for row in found.all()}
    changed = " OR ".join(f"time_entry.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in _UPDATED_ALL)
    written: Any = await conn.exec_driver_sql(
        f"INSERT INTO time_entry ({columns}) SELECT {columns} FROM {staging}"
        " ON CONFLICT (workspace_id, source_key) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_UPDATED_ALL, "updated_at"))
        + f" WHERE {changed} RETURNING source_key, customer_id, contract_id, work_date"
    )
    changes: set[EntryKey] = set()
    count = 0
    for row in written.all():
        count += 1
        changes.add(EntryKey(row[1], row[2], row[3]))
        if row[0] in old:
            changes.add(old[row[0]])
    del old
    await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {staging}")
    marked = await mark_entry_changes(
        session=session, workspace_id=workspace_id, changes=changes, at=at
    )
    return count, marked


async def import_csv(
    *,
    session: AsyncSession,
    workspace_id: int,
    kind: str,
    opener: Opener,
    at: datetime,
    today: date,
    progress: Progress | None = None,
    full: bool = False,
) -> ImportResult:
    """Import one CSV file of `kind` inside the caller's transaction.

    Directory rows are matched on their `external_id` first, then on their natural key; the
    result counts what was added, updated and left unchanged. With `full` (members, customers,
    contacts, contracts) the file is the complete list: active records missing from it are
    marked inactive, never deleted (their tickets, time and figures stay).

    `opener()` returns a fresh text stream of the file.
    Raises ImportFailed listing the bad lines; the caller must then roll back (nothing of the
    file may stay). `today` is the workspace's date (future work dates are refused).
    """
    if kind not in KINDS:
        raise ImportFailed([RowError(0, f"unknown kind {kind!r}: use {', '.join(KINDS)}")])
    if full and kind not in FULL_KINDS:
        raise ImportFailed([RowError(0, f"--full is for {', '.join(FULL_KINDS)}, not {kind}")])
    if kind == "time":
        return await _import_time(session, workspace_id, opener, at, today, progress)
    result = await _import_directory(session, workspace_id, kind, opener, at, progress, full)
    if kind in (*SLA_KINDS, "contracts"):
        # The clocks of unfinished tickets follow the new calendar and policies.
        await refresh_open_tickets(session=session, workspace_id=workspace_id, at=at)
    return result
