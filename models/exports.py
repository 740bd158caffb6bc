"""Journals and invoices of a month from the stored profitability results (see models.accounting).

The figures are the engine's stored results as `models.engine.build_report` presents them, so a
journal and the invoices of a month agree to the cent with `docket report profitability
--period MONTH --format json`. A final journal stores what it exported (`JournalExport`); a
later change to that month appears once, as adjusting lines in the next final journal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import engine as per_customer
from models import profit_report
from models.accounting import (
    DEFAULT_ACCOUNTS,
    AmountKey,
    BillableTime,
    BlockUsage,
    ContractMonth,
    Invoice,
    InvoiceLine,
    Invoices,
    Journal,
    Names,
    active_days,
    add_amounts,
    amounts_from_json,
    amounts_to_json,
    block_lines,
    difference,
    fixed_fee_line,
    hourly_lines,
    journal_amounts,
    journal_lines,
)
from models.periods import Period, month_of
from models.profitability import Entry, PricedContract, PricingKind, attributed_contract
from models.rates import rate_in_force
from models.reporting import Report
from models.tables import (
    AccountCode,
    Contact,
    Contract,
    Customer,
    JournalExport,
    ProfitResult,
    Ticket,
    TimeEntry,
    Workspace,
)

LABOUR_SETTING = "journal_labour_allocation"
"""Workspace setting: post the loaded labour cost as a management allocation (default off)."""

_TE: Any = TimeEntry.__table__  # type: ignore[attr-defined]
_TK: Any = Ticket.__table__  # type: ignore[attr-defined]
_PR: Any = ProfitResult.__table__  # type: ignore[attr-defined]


class AlreadyFinal(ValueError):
    """The month's final journal was exported already: changes go into a later month's."""


# ---------------------------------------------------------------------------------------
# Account codes
# ---------------------------------------------------------------------------------------


async def load_accounts(*, session: AsyncSession, workspace_id: int) -> dict[str, tuple[str, str]]:
    """The workspace's mapping (line kind -> (code, name)); the defaults until one is imported.

    An imported mapping is the whole mapping: a line kind missing from it is an error at export.
    """
    rows = await session.exec(select(AccountCode).where(AccountCode.workspace_id == workspace_id))
    found = {r.line_kind: (r.account_code, r.name) for r in rows}
    return found if found else {str(k): v for k, v in DEFAULT_ACCOUNTS.items()}


async def replace_account_codes(
    *, session: AsyncSession, workspace_id: int, codes: dict[str, tuple[str, str]]
) -> tuple[int, int]:
    """Make `codes` the workspace's mapping; returns (lines kept or added, lines removed)."""
    existing = {
        r.line_kind: r
        for r in await session.exec(
            select(AccountCode).where(AccountCode.workspace_id == workspace_id)
        )
    }
    removed = 0
    for kind, row in existing.items():
        if kind not in codes:
            await session.delete(row)
            removed += 1
    for kind, (code, name) in codes.items():
        row = existing.get(kind) or AccountCode(
            workspace_id=workspace_id, line_kind=kind, account_code=code
        )
        row.account_code, row.name = code, name
        session.add(row)
    await session.flush()
    return len(codes), removed


async def labour_allocation(*, session: AsyncSession, workspace_id: int) -> bool:
    """Whether journals post the loaded labour cost (the workspace setting)."""
    ws = await session.get(Workspace, workspace_id)
    return bool(ws and (ws.settings or {}).get(LABOUR_SETTING, False))


async def set_labour_allocation(*, session: AsyncSession, workspace_id: int, on: bool) -> None:
    """Turn the labour allocation of journals on or off."""
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    ws.settings = {**(ws.settings or {}), LABOUR_SETTING: on}
    session.add(ws)
    await session.flush()


# ---------------------------------------------------------------------------------------
# A month's figures per contract
# ---------------------------------------------------------------------------------------


@dataclass
class MonthData:
    """A month's report and what the journal and invoices need beside it."""

    report: Report
    rows: list[ContractMonth]
    contracts: dict[int, Contract]
    pure: dict[int, PricedContract]
    usage: dict[int, BlockUsage] = field(default_factory=dict)


async def _names(session: AsyncSession, workspace_id: int) -> Names:
    customers = await session.execute(
        sa.select(Customer.__table__.c.id, Customer.__table__.c.name).where(  # type: ignore[attr-defined]
            Customer.__table__.c.workspace_id == workspace_id  # type: ignore[attr-defined]
        )
    )
    contracts = await session.execute(
        sa.select(Contract.__table__.c.id, Contract.__table__.c.name).where(  # type: ignore[attr-defined]
            Contract.__table__.c.workspace_id == workspace_id  # type: ignore[attr-defined]
        )
    )
    return Names(
        customers={int(i): str(n) for i, n in customers.all()},
        contracts={int(i): str(n) for i, n in contracts.all()},
    )


async def block_usage_in(
    *,
    session: AsyncSession,
    workspace_id: int,
    month: Period,
    contracts: dict[int, PricedContract],
) -> dict[int, BlockUsage]:
    """Each block contract's billable minutes used before `month` and within it.

    Read from the stored monthly results: a contract's row holds exactly the billable minutes
    the engine let it consume (its customer's time while it was active).
    """
    blocks = {i: c for i, c in contracts.items() if c.kind is PricingKind.BLOCK}
    if not blocks:
        return {}
    earlier = sa.case((_PR.c.period_start < month.start, _PR.c.billable_minutes), else_=0)
    within = sa.case((_PR.c.period_start == month.start, _PR.c.billable_minutes), else_=0)
    stmt = (
        sa.select(_PR.c.contract_key, sa.func.sum(earlier), sa.func.sum(within))
        .where(
            _PR.c.workspace_id == workspace_id,
            _PR.c.period_kind == "month",
            _PR.c.period_start <= month.start,
            _PR.c.contract_key.in_(list(blocks)),
        )
        .group_by(_PR.c.contract_key)
    )
    found = {int(k): (int(b or 0), int(w or 0)) for k, b, w in (await session.execute(stmt)).all()}
    return {
        i: BlockUsage(
            block_minutes=c.block_minutes,
            overage_minor_per_hour=c.overage_minor_per_hour,
            used_before=found.get(i, (0, 0))[0],
            used_in_month=found.get(i, (0, 0))[1],
        )
        for i, c in blocks.items()
    }


async def month_data(*, session: AsyncSession, workspace_id: int, month: Period) -> MonthData:
    """The stored figures of `month` per (customer, contract), with block overage split out."""
    report = await profit_report.build_report(
        session=session, workspace_id=workspace_id, period=month
    )
    stored = {
        c.id: c
        for c in await session.exec(select(Contract).where(Contract.workspace_id == workspace_id))
        if c.id is not None
    }
    pure = await per_customer.load_contracts(session=session, workspace_id=workspace_id)
    # Only contracts with figures this month can have lines.
    reported = {line.contract_id for line in report.contracts if line.contract_id}
    pure = {i: c for i, c in pure.items() if i in reported}
    usage = await block_usage_in(
        session=session, workspace_id=workspace_id, month=month, contracts=pure
    )
    rows = []
    for line in report.contracts:
        p = line.presented
        contract_id = line.contract_id
        overage = usage[contract_id].overage_minor if contract_id in usage else 0
        rows.append(
            ContractMonth(
                customer_id=line.customer_id,
                contract_id=contract_id,
                kind=line.kind,
                revenue_minor=p.revenue_minor,
                labour_cost_minor=p.labour_cost_minor,
                direct_cost_minor=p.direct_cost_minor,
                overage_minor=overage,
            )
        )
    return MonthData(report=report, rows=rows, contracts=stored, pure=pure, usage=usage)


async def report_run_label(*, session: AsyncSession, workspace_id: int, month: Period) -> str:
    """Which computation of the month's results an export reflects (their latest refresh)."""
    latest = (
        await session.execute(
            sa.select(sa.func.max(_PR.c.computed_at)).where(
                _PR.c.workspace_id == workspace_id,
                _PR.c.period_kind == month.kind,
                _PR.c.period_start == month.start,
            )
        )
    ).scalar_one()
    if latest is None:
        return f"profitability {month.key} (no figures)"
    if isinstance(latest, str):  # SQLite returns the aggregate as text
        latest = datetime.fromisoformat(latest)
    return f"profitability {month.key} computed {latest.strftime('%Y-%m-%dT%H:%M:%SZ')}"


# ---------------------------------------------------------------------------------------
# Journal
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalResult:
    """A journal, whether it was recorded as final, and the months it adjusts."""

    journal: Journal
    final: bool
    adjusted: tuple[str, ...]
    already_final: bool = False  # the month had a final journal before this (preview only)


async def _exported(session: AsyncSession, workspace_id: int) -> dict[str, list[JournalExport]]:
    rows = await session.exec(
        select(JournalExport)
        .where(JournalExport.workspace_id == workspace_id)
        .order_by(col(JournalExport.id))
    )
    by_month: dict[str, list[JournalExport]] = defaultdict(list)
    for row in rows:
        by_month[row.month].append(row)
    return by_month


def _month_from_key(key: str) -> Period:
    year, month = key.split("-")
    return month_of(datetime(int(year), int(month), 1).date())


async def month_amounts(
    *, session: AsyncSession, workspace_id: int, month: Period, labour: bool
) -> dict[AmountKey, int]:
    """The month's journal amounts from its stored results now."""
    data = await month_data(session=session, workspace_id=workspace_id, month=month)
    return journal_amounts(data.rows, labour=labour)


async def export_journal(
    *, session: AsyncSession, workspace_id: int, month: Period, final: bool, at: datetime
) -> JournalResult:
    """The journal of `month`: its own lines, then adjustments for every earlier month whose
    final journal no longer matches its figures (dated on the last day of `month`).

    With `final`, records what was exported so later changes become adjustments exactly once;
    raises AlreadyFinal when `month` was exported as final before, and MissingAccount (nothing
    recorded) when a line kind has no account.
    """
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        raise LookupError(f"workspace {workspace_id} does not exist")
    labour = await labour_allocation(session=session, workspace_id=workspace_id)
    accounts = await load_accounts(session=session, workspace_id=workspace_id)
    names = await _names(session, workspace_id)
    exported = await _exported(session, workspace_id)
    already = any(r.kind == "final" for r in exported.get(month.key, ()))
    if final and already:
        raise AlreadyFinal(
            f"{month.key} was exported as final already; later changes to it appear as "
            "adjustments in the next month's final journal"
        )
    own = await month_amounts(
        session=session, workspace_id=workspace_id, month=month, labour=labour
    )
    lines = journal_lines(own, day=month.end, accounts=accounts, names=names, month=month.key)
    adjustments: dict[str, dict[AmountKey, int]] = {}
    for key in sorted(k for k in exported if k < month.key):
        rows = exported[key]
        if not any(r.kind == "final" for r in rows):
            continue
        sent = add_amounts(*(amounts_from_json(r.amounts) for r in rows))
        now = await month_amounts(
            session=session, workspace_id=workspace_id, month=_month_from_key(key), labour=labour
        )
        change = difference(now, sent)
        if change:
            adjustments[key] = change
            lines += journal_lines(
                change, day=month.end, accounts=accounts, names=names, month=key, adjusts=key
            )
    run = await report_run_label(session=session, workspace_id=workspace_id, month=month)
    journal = Journal(month=month.key, report_run=run, currency=ws.currency, lines=tuple(lines))
    if final:
        session.add(
            JournalExport(
                workspace_id=workspace_id,
                month=month.key,
                exported_in=month.key,
                kind="final",
                amounts=amounts_to_json(own),
                report_run=run,
                created_at=at,
            )
        )
        for key, change in adjustments.items():
            session.add(
                JournalExport(
                    workspace_id=workspace_id,
                    month=key,
                    exported_in=month.key,
                    kind="adjustment",
                    amounts=amounts_to_json(change),
                    report_run=run,
                    created_at=at,
                )
            )
        await session.flush()
    return JournalResult(
        journal=journal, final=final, adjusted=tuple(adjustments), already_final=already
    )


# ---------------------------------------------------------------------------------------
# Invoices
# ---------------------------------------------------------------------------------------


async def _billable_time(
    session: AsyncSession, workspace_id: int, month: Period, contracts: dict[int, PricedContract]
) -> dict[int, list[BillableTime]]:
    hourly = [i for i, c in contracts.items() if c.kind is PricingKind.HOURLY]
    if not hourly:
        return {}
    # One row per customer, contract, ticket and day.
    keys = (
        _TE.c.customer_id,
        _TE.c.contract_id,
        _TE.c.ticket_id,
        _TK.c.number,
        _TK.c.title,
        _TE.c.work_date,
    )
    stmt = (
        sa.select(*keys, sa.func.sum(_TE.c.minutes))
        .select_from(_TE.outerjoin(_TK, _TK.c.id == _TE.c.ticket_id))
        .where(
            _TE.c.workspace_id == workspace_id,
            _TE.c.billable.is_(True),
            _TE.c.customer_id.is_not(None),
            _TE.c.contract_id.in_(hourly),
            _TE.c.work_date >= month.start,
            _TE.c.work_date <= month.end,
        )
        .group_by(*keys)
        .order_by(_TE.c.work_date)
    )
    found: dict[int, list[BillableTime]] = defaultdict(list)
    for index, (customer_id, contract_id, _tid, number, title, day, minutes) in enumerate(
        (await session.execute(stmt)).all()
    ):
        entry = Entry(
            id=index,
            member_id=0,
            customer_id=customer_id,
            contract_id=contract_id,
            work_date=day,
            minutes=int(minutes),
        )
        # Only time the engine attributes to the contract earns through it.
        contract = attributed_contract(entry, contracts)
        if contract is None:
            continue
        rate = rate_in_force(contract.charge_rates, day)
        found[contract.id].append(
            BillableTime(
                ticket=None if number is None else int(number),
                title=title or "",
                work_date=day,
                minutes=int(minutes),
                rate_minor=None if rate is None else rate.minor_per_hour,
            )
        )
    return found


async def build_invoices(*, session: AsyncSession, workspace_id: int, month: Period) -> Invoices:
    """Invoice lines of every customer for `month` (see models.accounting for the rules)."""
    data = await month_data(session=session, workspace_id=workspace_id, month=month)
    time = await _billable_time(session, workspace_id, month, data.pure)
    emails: dict[int, str] = {}
    for contact in await session.exec(
        select(Contact)
        .where(Contact.workspace_id == workspace_id, col(Contact.active).is_(True))
        .order_by(col(Contact.id))
    ):
        emails.setdefault(contact.customer_id, contact.email)
    by_customer: dict[int, list[InvoiceLine]] = defaultdict(list)
    names: dict[int, str] = {}
    for line in data.report.contracts:
        if line.customer_id is None or line.contract_id is None:
            continue
        stored = data.contracts.get(line.contract_id)
        if stored is None:
            continue
        code = stored.product_code or ""
        name = stored.name
        revenue = line.presented.revenue_minor
        new: list[InvoiceLine] = []
        if line.kind == PricingKind.HOURLY:
            new = hourly_lines(
                contract=name,
                product_code=code,
                revenue_minor=revenue,
                time=time.get(line.contract_id, []),
            )
        elif line.kind == PricingKind.FIXED:
            fee = fixed_fee_line(
                contract=name,
                product_code=code,
                month=month,
                days=active_days(month, stored.start_date, stored.end_date),
                revenue_minor=revenue,
            )
            new = [] if fee is None else [fee]
        elif line.kind == PricingKind.BLOCK and line.contract_id in data.usage:
            new = block_lines(contract=name, product_code=code, usage=data.usage[line.contract_id])
        if new:
            by_customer[line.customer_id] += new
            names[line.customer_id] = line.customer
    invoices = tuple(
        Invoice(customer=names[c], lines=tuple(lines), email=emails.get(c, ""))
        for c, lines in by_customer.items()
    )
    return Invoices(month=month, currency=data.report.currency, invoices=invoices)
