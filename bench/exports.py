"""Accounting exports at scale: a month's journal and invoices against the month's report.

The profitability benchmark's dataset (bench.profit.generate: members with dated cost rates,
customers with hourly, fixed-fee and block contracts, a year of time) is generated into a
migrated SQLite file and rebuilt once. Then, in one process and side by side, each is timed a
few times (best run kept):

- baseline: `models.engine.build_report` of the month (what `docket report` reads);
- Docket: `models.exports.export_journal` (the report plus block usage and account mapping)
  and `models.exports.build_invoices` (the report plus the month's billable time per ticket).

The journal must balance and the invoices must add up to the report's revenue minus the block
revenue used; a difference prints MISMATCH.

    python -m bench.exports [--small] [--entries 200000 --customers 500 --members 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import Row, machine, print_table, ratio
from bench.profit import WEEKS, YEAR_START, generate

RUNS = 3


async def _best(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(RUNS):
        began = time.perf_counter()
        value = await call()
        best = min(best, time.perf_counter() - began)
    return best, value


async def measure(path: Path, ws: int) -> list[Row]:
    from bot.db import make_engine, make_sessionmaker
    from models import engine as per_customer
    from models import exports, profit_report
    from models.accounting import LineKind
    from models.periods import month_of

    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    sessions = make_sessionmaker(engine)
    today = YEAR_START + timedelta(days=WEEKS * 7)
    at = datetime.combine(today, datetime.min.time(), UTC)
    month = month_of(YEAR_START + timedelta(weeks=26))
    try:
        began = time.perf_counter()
        await per_customer.rebuild(sessions=sessions, workspace_id=ws, today=today, at=at)
        rebuild_s = time.perf_counter() - began

        async def report() -> Any:
            async with sessions() as s:
                return await profit_report.build_report(session=s, workspace_id=ws, period=month)

        async def journal() -> Any:
            async with sessions() as s:
                return await exports.export_journal(
                    session=s, workspace_id=ws, month=month, final=False, at=at
                )

        async def invoices() -> Any:
            async with sessions() as s:
                return await exports.build_invoices(session=s, workspace_id=ws, month=month)

        report_s, rep = await _best(report)
        journal_s, jr = await _best(journal)
        invoices_s, inv = await _best(invoices)
    finally:
        await engine.dispose()
    checks = []
    if jr.journal.total_debit != jr.journal.total_credit:
        checks.append("journal does not balance")
    block_used = sum(
        ln.credit_minor for ln in jr.journal.lines if ln.line_kind == LineKind.REVENUE_BLOCK
    )
    revenue = sum(line.presented.revenue_minor for line in rep.contracts)
    if inv.total_minor != revenue - block_used:
        checks.append(f"invoices {inv.total_minor} != revenue {revenue} - block {block_used}")
    print(
        f"month {month.key}: rebuild {rebuild_s:.1f} s; {len(rep.contracts)} contract rows, "
        f"{len(jr.journal.lines)} journal lines, {sum(len(i.lines) for i in inv.invoices)} "
        f"invoice lines"
    )
    for problem in checks:
        print(f"MISMATCH: {problem}")
    base = f"{report_s * 1000:.0f} ms"
    return [
        Row("report of the month (baseline)", base),
        Row("journal of the month", f"{journal_s * 1000:.0f} ms", base, ratio(journal_s, report_s)),
        Row(
            "invoices of the month",
            f"{invoices_s * 1000:.0f} ms",
            base,
            ratio(invoices_s, report_s),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket accounting export benchmark")
    parser.add_argument("--small", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--members", type=int, default=100)
    args = parser.parse_args(argv)
    if args.small:
        args.entries, args.customers, args.members = 2_000, 20, 8
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exports.db"
        ws = generate(path, members=args.members, customers=args.customers, entries=args.entries)
        print(f"{args.entries} entries, {args.customers} customers, {args.members} members")
        rows = asyncio.run(measure(path, ws))
    print_table("Accounting exports", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
