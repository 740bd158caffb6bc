"""Journals and invoice lines for the accounting system, from the profitability figures.

Pure: plain values in, plain values out. The amounts come from the profitability engine's
stored results as the report presents them (each amount rounded once, half up, to the cent);
nothing here recomputes revenue or cost, it only says where each amount is posted.

Journal rules
-------------
- Per contract of a customer, each amount is posted twice, so every contract, every customer
  and the whole journal balance to the cent:

  | amount                       | debit              | credit             |
  |------------------------------|--------------------|--------------------|
  | hourly revenue               | `receivable`       | `revenue_hourly`   |
  | fixed monthly fee            | `receivable`       | `revenue_fixed`    |
  | prepaid block used           | `deferred_revenue` | `revenue_block`    |
  | block overage                | `receivable`       | `revenue_overage`  |
  | direct cost                  | `direct_cost`      | `accrued_costs`    |
  | loaded labour (a setting)    | `labour_cost`      | `labour_allocation`|

  A block contract's revenue is split into the overage (overage minutes x overage rate,
  rounded once) and the rest (the block used); the two add up to the contract's revenue.
- Amounts are kept as signed minor units per (customer, contract, line kind), debit positive.
  An adjustment is the difference between what a month's figures are now and what was
  exported for it; it balances because both sides do.

Invoice rules
-------------
- Hourly contracts: billable time by ticket and charge rate (the rate in force on each work
  date); each line's amount is its share of the contract's revenue by largest remainder, so
  the lines add up to the report exactly.
- Fixed fee: one line with the month's fee for the days the contract was active.
- Prepaid block: overage hours at the overage rate, and a line with the hours used and left
  (no amount: the block was sold up front). Non-billable time never appears.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from models.money import minutes_to_hours, round_subunits, split_largest_remainder
from models.money import to_decimal_string as dec
from models.periods import Period


class LineKind(StrEnum):
    """Kinds of journal lines; each maps to one ledger account."""

    RECEIVABLE = "receivable"
    DEFERRED_REVENUE = "deferred_revenue"
    REVENUE_HOURLY = "revenue_hourly"
    REVENUE_FIXED = "revenue_fixed"
    REVENUE_BLOCK = "revenue_block"
    REVENUE_OVERAGE = "revenue_overage"
    DIRECT_COST = "direct_cost"
    ACCRUED_COSTS = "accrued_costs"
    LABOUR_COST = "labour_cost"
    LABOUR_ALLOCATION = "labour_allocation"


DEFAULT_ACCOUNTS: dict[str, tuple[str, str]] = {
    LineKind.RECEIVABLE: ("1200", "Accounts receivable"),
    LineKind.DEFERRED_REVENUE: ("2400", "Deferred revenue (prepaid blocks)"),
    LineKind.REVENUE_HOURLY: ("4000", "Revenue: hourly services"),
    LineKind.REVENUE_FIXED: ("4010", "Revenue: fixed monthly fees"),
    LineKind.REVENUE_BLOCK: ("4020", "Revenue: prepaid blocks used"),
    LineKind.REVENUE_OVERAGE: ("4030", "Revenue: block overage"),
    LineKind.DIRECT_COST: ("5000", "Direct costs"),
    LineKind.ACCRUED_COSTS: ("2100", "Accrued direct costs"),
    LineKind.LABOUR_COST: ("6000", "Labour cost (management allocation)"),
    LineKind.LABOUR_ALLOCATION: ("6990", "Labour allocated to customers"),
}
"""The accounts used until a mapping is imported (`docket import account-codes FILE`)."""

_LABELS = {
    LineKind.RECEIVABLE: "receivable",
    LineKind.DEFERRED_REVENUE: "prepaid block drawn down",
    LineKind.REVENUE_HOURLY: "hourly revenue",
    LineKind.REVENUE_FIXED: "fixed fee revenue",
    LineKind.REVENUE_BLOCK: "prepaid block used",
    LineKind.REVENUE_OVERAGE: "block overage revenue",
    LineKind.DIRECT_COST: "direct cost",
    LineKind.ACCRUED_COSTS: "direct cost accrued",
    LineKind.LABOUR_COST: "loaded labour cost",
    LineKind.LABOUR_ALLOCATION: "labour allocated",
}
_ORDER = {kind: index for index, kind in enumerate(LineKind)}
_REVENUE_KIND = {
    "hourly": LineKind.REVENUE_HOURLY,
    "fixed": LineKind.REVENUE_FIXED,
    "block": LineKind.REVENUE_BLOCK,
}

FORMATS = ("csv", "json", "xero", "quickbooks")
NO_TAX = "Tax Exempt"  # Xero's tax rate name for lines without tax (a workspace may differ)

AmountKey = tuple[int | None, int, str]
"""(customer id or None, contract id or 0, line kind)."""


class MissingAccount(ValueError):
    """A line kind has no account in the workspace's mapping (nothing is written)."""

    def __init__(self, line_kind: str) -> None:
        self.line_kind = line_kind
        super().__init__(
            f"no account code for line kind {line_kind!r}: add it to the account-code file "
            "and import it again (`docket import account-codes FILE`)"
        )


@dataclass(frozen=True)
class ContractMonth:
    """One (customer, contract) row of a month's profitability, as presented (minor units)."""

    customer_id: int | None
    contract_id: int | None
    kind: str | None
    revenue_minor: int
    labour_cost_minor: int
    direct_cost_minor: int
    overage_minor: int = 0


def journal_amounts(rows: Iterable[ContractMonth], *, labour: bool) -> dict[AmountKey, int]:
    """Signed amounts (debit positive) per (customer, contract, line kind); zeros left out."""
    amounts: dict[AmountKey, int] = defaultdict(int)

    def post(row: ContractMonth, debit: LineKind, credit: LineKind, minor: int) -> None:
        if minor == 0:
            return
        key = row.contract_id or 0
        amounts[(row.customer_id, key, debit)] += minor
        amounts[(row.customer_id, key, credit)] -= minor

    for row in rows:
        revenue_kind = _REVENUE_KIND.get(row.kind or "")
        if revenue_kind is LineKind.REVENUE_BLOCK:
            post(row, LineKind.RECEIVABLE, LineKind.REVENUE_OVERAGE, row.overage_minor)
            post(
                row,
                LineKind.DEFERRED_REVENUE,
                LineKind.REVENUE_BLOCK,
                row.revenue_minor - row.overage_minor,
            )
        elif revenue_kind is not None:
            post(row, LineKind.RECEIVABLE, revenue_kind, row.revenue_minor)
        post(row, LineKind.DIRECT_COST, LineKind.ACCRUED_COSTS, row.direct_cost_minor)
        if labour:
            post(row, LineKind.LABOUR_COST, LineKind.LABOUR_ALLOCATION, row.labour_cost_minor)
    return {k: v for k, v in amounts.items() if v != 0}


def difference(
    now: Mapping[AmountKey, int], exported: Mapping[AmountKey, int]
) -> dict[AmountKey, int]:
    """What changed since `exported`: now minus exported per key (zeros left out)."""
    keys = set(now) | set(exported)
    changed = {k: now.get(k, 0) - exported.get(k, 0) for k in keys}
    return {k: v for k, v in changed.items() if v != 0}


def add_amounts(*parts: Mapping[AmountKey, int]) -> dict[AmountKey, int]:
    """The sum of several amount maps (zeros left out)."""
    total: dict[AmountKey, int] = defaultdict(int)
    for part in parts:
        for key, value in part.items():
            total[key] += value
    return {k: v for k, v in total.items() if v != 0}


def amounts_to_json(amounts: Mapping[AmountKey, int]) -> dict[str, int]:
    """Amounts keyed by "customer:contract:line_kind" (customer "-" for none) for storage."""
    return {f"{'-' if c is None else c}:{k}:{kind}": int(v) for (c, k, kind), v in amounts.items()}


def amounts_from_json(data: Mapping[str, Any]) -> dict[AmountKey, int]:
    """The inverse of `amounts_to_json`."""
    result: dict[AmountKey, int] = {}
    for text, value in data.items():
        customer, contract, kind = text.split(":", 2)
        result[(None if customer == "-" else int(customer), int(contract), kind)] = int(value)
    return result


@dataclass(frozen=True)
class Names:
    """Customer and contract names for the lines."""

    customers: Mapping[int, str]
    contracts: Mapping[int, str]

    def customer(self, customer_id: int | None) -> str:
        if customer_id is None:
            return "(no customer)"
        return self.customers.get(customer_id, f"customer {customer_id}")

    def contract(self, contract_id: int) -> str:
        if not contract_id:
            return "(no contract)"
        return self.contracts.get(contract_id, f"contract {contract_id}")


@dataclass(frozen=True)
class JournalLine:
    """One line of a journal (exactly one of debit and credit is non-zero)."""

    day: date
    account_code: str
    account_name: str
    customer: str
    contract: str
    line_kind: str
    description: str
    debit_minor: int
    credit_minor: int
    adjusts: str | None = None  # the month an adjusting line corrects


@dataclass(frozen=True)
class Journal:
    """A month's journal: its own lines, then adjustments to months exported before."""

    month: str
    report_run: str
    currency: str
    lines: tuple[JournalLine, ...]

    @property
    def total_debit(self) -> int:
        return sum(line.debit_minor for line in self.lines)

    @property
    def total_credit(self) -> int:
        return sum(line.credit_minor for line in self.lines)


def journal_lines(
    amounts: Mapping[AmountKey, int],
    *,
    day: date,
    accounts: Mapping[str, tuple[str, str]],
    names: Names,
    month: str,
    adjusts: str | None = None,
) -> list[JournalLine]:
    """Lines of `amounts` in customer, contract and line-kind order.

    Raises MissingAccount naming the first line kind without an account.
    """
    lines = []
    for customer_id, contract_id, kind in sorted(
        amounts,
        key=lambda k: (
            k[0] is None,
            names.customer(k[0]).casefold(),
            names.contract(k[1]).casefold(),
            k[1],
            _ORDER.get(k[2], 99),  # type: ignore[call-overload]
        ),
    ):
        if kind not in accounts:
            raise MissingAccount(kind)
        code, account_name = accounts[kind]
        minor = amounts[(customer_id, contract_id, kind)]
        customer, contract = names.customer(customer_id), names.contract(contract_id)
        label = _LABELS.get(kind, kind)  # type: ignore[call-overload]
        what = f"{month} {label}: {customer} / {contract}"
        lines.append(
            JournalLine(
                day=day,
                account_code=code,
                account_name=account_name,
                customer=customer,
                contract=contract,
                line_kind=kind,
                description=f"Adjustment to {what}" if adjusts else what,
                debit_minor=max(minor, 0),
                credit_minor=max(-minor, 0),
                adjusts=adjusts,
            )
        )
    return lines


def check_accounts(kinds: Iterable[str], accounts: Mapping[str, tuple[str, str]]) -> None:
    """Raise MissingAccount for the first of `kinds` (in line-kind order) with no account."""
    for kind in sorted(set(kinds), key=lambda k: _ORDER.get(k, 99)):  # type: ignore[call-overload]
        if kind not in accounts:
            raise MissingAccount(kind)


def balances(lines: Iterable[JournalLine]) -> dict[str, tuple[int, int]]:
    """(debits, credits) per customer."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        found[line.customer][0] += line.debit_minor
        found[line.customer][1] += line.credit_minor
    return {k: (v[0], v[1]) for k, v in found.items()}


def parse_account_codes(
    rows: Iterable[tuple[int, Mapping[str, str]]],
) -> dict[str, tuple[str, str]]:
    """Checked `line_kind,account_code,name` rows; ValueError lists every bad line."""
    problems: list[str] = []
    found: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    valid = {k.value for k in LineKind}
    for line, row in rows:
        kind = row.get("line_kind", "").strip().lower()
        code = row.get("account_code", "").strip()
        if kind not in valid:
            problems.append(f"line {line}: line_kind {kind!r} is not one of {', '.join(valid)}")
            continue
        if not code or len(code) > 40:
            problems.append(f"line {line}: account_code must be 1 to 40 characters")
            continue
        if kind in seen:
            problems.append(f"line {line}: {kind} repeats line {seen[kind]}")
            continue
        seen[kind] = line
        found[kind] = (code, " ".join(row.get("name", "").split())[:200])
    if problems:
        raise ValueError("; ".join(problems))
    return found


# ---------------------------------------------------------------------------------------
# Invoices
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillableTime:
    """Billable minutes of one ticket on one day on an hourly contract, and the charge rate
    in force that day (None: no rate, the time is unpriced and not invoiced)."""

    ticket: int | None
    title: str
    work_date: date
    minutes: int
    rate_minor: int | None


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice line; `amount_minor` None for a line that only informs (block usage)."""

    contract: str
    product_code: str
    line_kind: str
    description: str
    ticket: int | None
    quantity: Decimal | None
    unit_price_minor: int | None
    amount_minor: int | None


@dataclass(frozen=True)
class Invoice:
    """A customer's invoice for a month."""

    customer: str
    lines: tuple[InvoiceLine, ...]
    email: str = ""

    @property
    def total_minor(self) -> int:
        return sum(line.amount_minor or 0 for line in self.lines)


def hourly_lines(
    *, contract: str, product_code: str, revenue_minor: int, time: Sequence[BillableTime]
) -> list[InvoiceLine]:
    """Lines per ticket and charge rate; amounts share `revenue_minor` (the contract's
    revenue as reported) by the exact value of each line, so they add up to it."""
    groups: dict[tuple[int | None, int], list[BillableTime]] = defaultdict(list)
    for item in time:
        if item.rate_minor is not None and item.minutes > 0:
            groups[(item.ticket, item.rate_minor)].append(item)
    keys = sorted(groups, key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    exact = [sum(i.minutes for i in groups[k]) * k[1] for k in keys]
    if not keys or sum(exact) == 0:
        return []
    shares = split_largest_remainder(revenue_minor, exact)
    lines = []
    for key, share in zip(keys, shares, strict=True):
        items = groups[key]
        minutes = sum(i.minutes for i in items)
        ticket, rate = key
        title = items[0].title
        what = f"#{ticket} {title}".strip() if ticket is not None else "Time without a ticket"
        first, last = min(i.work_date for i in items), max(i.work_date for i in items)
        when = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
        lines.append(
            InvoiceLine(
                contract=contract,
                product_code=product_code,
                line_kind=LineKind.REVENUE_HOURLY,
                description=f"{what} ({when})",
                ticket=ticket,
                quantity=minutes_to_hours(minutes),
                unit_price_minor=rate,
                amount_minor=share,
            )
        )
    return lines


def active_days(month: Period, start: date, end: date | None) -> int:
    """Days of `month` on which a contract running from `start` to `end` is active."""
    first = max(month.start, start)
    last = month.end if end is None else min(month.end, end)
    return max(0, (last - first).days + 1)


def fixed_fee_line(
    *,
    contract: str,
    product_code: str,
    month: Period,
    days: int,
    revenue_minor: int,
) -> InvoiceLine | None:
    """The month's fee (as reported: pro rata to the active days); None when nothing is due."""
    if revenue_minor == 0:
        return None
    part = "" if days == month.day_count else f", {days} of {month.day_count} days"
    return InvoiceLine(
        contract=contract,
        product_code=product_code,
        line_kind=LineKind.REVENUE_FIXED,
        description=f"{contract}: monthly fee {month.key}{part}",
        ticket=None,
        quantity=Decimal("1.00"),
        unit_price_minor=revenue_minor,
        amount_minor=revenue_minor,
    )


@dataclass(frozen=True)
class BlockUsage:
    """A block contract's consumption: before the month and within it (billable minutes)."""

    block_minutes: int
    overage_minor_per_hour: int
    used_before: int
    used_in_month: int

    @property
    def overage_minutes(self) -> int:
        """Minutes of this month beyond the block (the rest used it up)."""
        after = self.used_before + self.used_in_month
        return max(0, after - self.block_minutes) - max(0, self.used_before - self.block_minutes)

    @property
    def overage_minor(self) -> int:
        """The overage revenue, rounded once (the engine charges overage per minute)."""
        return round_subunits(self.overage_minutes * self.overage_minor_per_hour)


def block_lines(*, contract: str, product_code: str, usage: BlockUsage) -> list[InvoiceLine]:
    """The usage line (no amount) and, when the block ran out, the overage line."""
    used_total = min(usage.used_before + usage.used_in_month, usage.block_minutes)
    inside = usage.used_in_month - usage.overage_minutes
    left = usage.block_minutes - used_total
    lines = [
        InvoiceLine(
            contract=contract,
            product_code=product_code,
            line_kind="block_usage",
            description=(
                f"{contract}: {minutes_to_hours(inside)} h of the prepaid block used this month; "
                f"{minutes_to_hours(used_total)} of {minutes_to_hours(usage.block_minutes)} h "
                f"used, {minutes_to_hours(left)} h left"
            ),
            ticket=None,
            quantity=minutes_to_hours(inside),
            unit_price_minor=None,
            amount_minor=None,
        )
    ]
    if usage.overage_minutes:
        lines.append(
            InvoiceLine(
                contract=contract,
                product_code=product_code,
                line_kind=LineKind.REVENUE_OVERAGE,
                description=f"{contract}: hours beyond the prepaid block",
                ticket=None,
                quantity=minutes_to_hours(usage.overage_minutes),
                unit_price_minor=usage.overage_minor_per_hour,
                amount_minor=usage.overage_minor,
            )
        )
    return lines


@dataclass(frozen=True)
class Invoices:
    """Every customer's invoice for a month."""

    month: Period
    currency: str
    invoices: tuple[Invoice, ...] = field(default_factory=tuple)

    @property
    def total_minor(self) -> int:
        return sum(invoice.total_minor for invoice in self.invoices)


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def _amount(minor: int | None) -> str:
    return "" if minor is None else dec(minor)


def _dmy(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _mdy(day: date) -> str:
    return day.strftime("%m/%d/%Y")


def journal_json(journal: Journal) -> dict[str, Any]:
    """The documented JSON shape of a journal."""
    return {
        "month": journal.month,
        "report_run": journal.report_run,
        "lines": [
            {
                "date": line.day.isoformat(),
                "account_code": line.account_code,
                "account_name": line.account_name,
                "customer": line.customer,
                "contract": line.contract,
                "line_kind": line.line_kind,
                "description": line.description,
                "debit": dec(line.debit_minor),
                "credit": dec(line.credit_minor),
            }
            for line in journal.lines
        ],
        "totals": {"debit": dec(journal.total_debit), "credit": dec(journal.total_credit)},
    }


JOURNAL_CSV = (
    "date",
    "account_code",
    "account_name",
    "customer",
    "contract",
    "line_kind",
    "description",
    "debit",
    "credit",
    "report_run",
)
XERO_JOURNAL = ("Narration", "Date", "Description", "AccountCode", "TaxRate", "Amount")
QUICKBOOKS_JOURNAL = (
    "Journal No.",
    "Journal Date",
    "Account Name",
    "Debits",
    "Credits",
    "Description",
    "Name",
)


def _narration(journal: Journal, line: JournalLine) -> str:
    if line.adjusts:
        return f"Docket adjustment to {line.adjusts} ({journal.report_run})"
    return f"Docket {journal.month} ({journal.report_run})"


def render_journal(journal: Journal, fmt: str, *, tax_rate: str = NO_TAX) -> str:
    """The journal as "csv", "json", "xero" (manual journal import) or "quickbooks"."""
    if fmt == "json":
        return json.dumps(journal_json(journal), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        rows: list[Sequence[Any]] = [JOURNAL_CSV]
        rows += [
            (
                line.day.isoformat(),
                line.account_code,
                line.account_name,
                line.customer,
                line.contract,
                line.line_kind,
                line.description,
                dec(line.debit_minor),
                dec(line.credit_minor),
                journal.report_run,
            )
            for line in journal.lines
        ]
        return _csv(rows)
    if fmt == "xero":
        # One manual journal per narration and date: the month's own lines, and one per
        # adjusted month. A positive Amount is a debit, a negative one a credit.
        rows = [XERO_JOURNAL]
        rows += [
            (
                _narration(journal, line),
                _dmy(line.day),
                line.description,
                line.account_code,
                tax_rate,
                dec(line.debit_minor - line.credit_minor),
            )
            for line in journal.lines
        ]
        return _csv(rows)
    if fmt == "quickbooks":
        # QuickBooks Online matches accounts by name; lines with one Journal No. form one entry.
        numbers: dict[str | None, str] = {}
        rows = [QUICKBOOKS_JOURNAL]
        for line in journal.lines:
            number = numbers.setdefault(
                line.adjusts,
                f"DK-{journal.month}" + (f"-ADJ-{line.adjusts}" if line.adjusts else ""),
            )
            rows.append(
                (
                    number,
                    _mdy(line.day),
                    line.account_name,
                    _amount(line.debit_minor or None),
                    _amount(line.credit_minor or None),
                    line.description,
                    "" if line.customer.startswith("(") else line.customer,
                )
            )
        return _csv(rows)
    raise ValueError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")


def _quantity(q: Decimal | None) -> str | None:
    return None if q is None else f"{q:.2f}"


def invoices_json(invoices: Invoices) -> dict[str, Any]:
    """The documented JSON shape of a month's invoices."""
    return {
        "month": invoices.month.key,
        "invoices": [
            {
                "customer": invoice.customer,
                "lines": [
                    {
                        "contract": line.contract,
                        "product_code": line.product_code,
                        "description": line.description,
                        "ticket": line.ticket,
                        "quantity": _quantity(line.quantity),
                        "unit_price": None
                        if line.unit_price_minor is None
                        else dec(line.unit_price_minor),
                        "amount": None if line.amount_minor is None else dec(line.amount_minor),
                    }
                    for line in invoice.lines
                ],
                "total": dec(invoice.total_minor),
            }
            for invoice in invoices.invoices
        ],
    }


INVOICE_CSV = (
    "month",
    "customer",
    "contract",
    "product_code",
    "description",
    "ticket",
    "quantity",
    "unit_price",
    "amount",
)
XERO_INVOICE = (
    "*ContactName",
    "EmailAddress",
    "*InvoiceNumber",
    "Reference",
    "*InvoiceDate",
    "*DueDate",
    "InventoryItemCode",
    "*Description",
    "*Quantity",
    "*UnitAmount",
    "*AccountCode",
    "*TaxType",
    "Currency",
)
QUICKBOOKS_INVOICE = (
    "Invoice no",
    "Customer",
    "Invoice Date",
    "Due Date",
    "Item(Product/Service)",
    "Item Description",
    "Item Quantity",
    "Item Rate",
    "Item Amount",
    "Service Date",
)


def _priced(line: InvoiceLine) -> tuple[str, str]:
    """Quantity and unit price an accounting system multiplies back to the line's amount:
    hours x rate when that gives the amount to the cent, else 1 x the amount."""
    assert line.amount_minor is not None
    if line.quantity is not None and line.unit_price_minor is not None:
        product = line.quantity * line.unit_price_minor
        if product == line.amount_minor:
            return f"{line.quantity:.2f}", dec(line.unit_price_minor)
    return "1.00", dec(line.amount_minor)


def render_invoices(
    invoices: Invoices,
    fmt: str,
    *,
    accounts: Mapping[str, tuple[str, str]],
    tax_type: str = NO_TAX,
    due_days: int = 30,
) -> str:
    """The invoices as "csv", "json", "xero" or "quickbooks" (sales invoice imports).

    For Xero and QuickBooks every line with an amount needs its revenue account or item, so a
    line kind without an account raises MissingAccount (nothing is written).
    """
    if fmt == "json":
        return json.dumps(invoices_json(invoices), indent=2, ensure_ascii=False) + "\n"
    month = invoices.month
    if fmt == "csv":
        rows: list[Sequence[Any]] = [INVOICE_CSV]
        for invoice in invoices.invoices:
            rows += [
                (
                    month.key,
                    invoice.customer,
                    line.contract,
                    line.product_code,
                    line.description,
                    "" if line.ticket is None else line.ticket,
                    _quantity(line.quantity) or "",
                    _amount(line.unit_price_minor),
                    _amount(line.amount_minor),
                )
                for line in invoice.lines
            ]
        return _csv(rows)
    if fmt not in ("xero", "quickbooks"):
        raise ValueError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    check_accounts(
        (line.line_kind for i in invoices.invoices for line in i.lines if line.amount_minor),
        accounts,
    )
    issued = month.end
    due = issued + timedelta(days=due_days)
    rows = [XERO_INVOICE if fmt == "xero" else QUICKBOOKS_INVOICE]
    for number, invoice in enumerate(invoices.invoices, start=1):
        invoice_no = f"DK-{month.key}-{number:03d}"
        for line in invoice.lines:
            if line.amount_minor is None:
                quantity, price, amount = "", "", ""
            else:
                quantity, price = _priced(line)
                amount = dec(line.amount_minor)
            if fmt == "xero":
                code = accounts[line.line_kind][0] if line.amount_minor is not None else ""
                rows.append(
                    (
                        invoice.customer,
                        invoice.email,
                        invoice_no,
                        f"Docket {month.key}",
                        _dmy(issued),
                        _dmy(due),
                        line.product_code,
                        line.description,
                        quantity,
                        price,
                        code,
                        tax_type if line.amount_minor is not None else "",
                        invoices.currency,
                    )
                )
            else:
                rows.append(
                    (
                        invoice_no,
                        invoice.customer,
                        _mdy(issued),
                        _mdy(due),
                        line.product_code,
                        line.description,
                        quantity,
                        price,
                        amount,
                        _mdy(month.end),
                    )
                )
    return _csv(rows)
