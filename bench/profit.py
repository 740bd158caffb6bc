"""Profitability at scale: Docket's engine against hand-written SQL and DuckDB on one dataset.

A realistic year is generated straight into a migrated SQLite file with executemany: 200
members in groups with effective-dated cost rates (member, group and workspace default),
2,000 customers with hourly (dated charge rates), fixed-fee and block contracts, and 1,000,000
time entries over 52 weeks. Every measurement runs in its own child process, so its time and
peak memory (ru_maxrss) are its own:

- reference: one SQL query computing one week's figures per customer (hours, billable
  hours, labour cost with member -> group -> default rate resolution, hourly revenue);
- duckdb: the same figures for every week of the year, load from the SQLite file included;
- Docket: the weekly report (models.reporting.build_report), a full rebuild and an
  incremental refresh after one new entry (models.engine), where those exist.

With `--postgres URL` the generated tables are also COPYed into that (reset) PostgreSQL
database and Docket's rebuild, report and refresh run there too, against the same baselines.

    python -m bench.profit [--small] [--entries 1000000 --customers 2000 --members 200]
                           [--postgres postgresql+asyncpg://postgres@127.0.0.1/docket_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import Row, machine, max_rss_mb, missing_part, print_table, ratio

YEAR_START = date(2025, 1, 6)  # a Monday: 52 whole ISO weeks follow
WEEKS = 52
REPORT_WEEK = YEAR_START + timedelta(weeks=30)
FIELDS = ("minutes", "billable_minutes", "labour_cost_60", "hourly_revenue_60")


# -- data generation ---------------------------------------------------------------------------


def generate(path: Path, *, members: int, customers: int, entries: int, seed: int = 7) -> int:
    """Fill a fresh migrated SQLite file; returns the workspace id."""
    from bench._setup import TEAM

    asyncio.run(_migrate(path))
    rnd = random.Random(seed)
    now = datetime.now(UTC).isoformat(sep=" ")
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA journal_mode=WAL")
    cur = db.cursor()
    cur.execute(
        "INSERT INTO workspace (team_id, name, timezone, currency, report_weekday, report_time,"
        " monthly_post, target_margin_pct, next_ticket_number, settings, created_at)"
        " VALUES (?, 'Bench IT', 'UTC', 'EUR', 0, '08:00', 1, 30, 1, '{}', ?)",
        (TEAM, now),
    )
    ws = int(cur.lastrowid or 0)
    groups = 5
    cur.executemany(
        "INSERT INTO member_group (id, workspace_id, name) VALUES (?, ?, ?)",
        [(g, ws, f"Group {g}") for g in range(1, groups + 1)],
    )
    cur.executemany(
        "INSERT INTO member (id, workspace_id, slack_user_id, email, name, role, group_id,"
        " active, created_at) VALUES (?, ?, ?, ?, ?, 'agent', ?, 1, ?)",
        [
            (m, ws, f"U{m:05d}", f"m{m}@bench.test", f"Member {m}", m % groups + 1, now)
            for m in range(1, members + 1)
        ],
    )
    rates: list[tuple[Any, ...]] = []
    mid = (YEAR_START + timedelta(weeks=26)).isoformat()
    first = (YEAR_START - timedelta(days=400)).isoformat()
    rates += [(ws, "default", None, None, first, 4500), (ws, "default", None, None, mid, 4800)]
    # Group 5 has no rate: its members fall through to the default.
    for g in range(1, groups):
        rates += [(ws, f"group:{g}", None, g, first, 5000 + 250 * g)]
        rates += [(ws, f"group:{g}", None, g, mid, 5200 + 250 * g)]
    for m in range(1, members + 1, 4):
        rates += [(ws, f"member:{m}", m, None, first, 6000 + m)]
        change = (YEAR_START + timedelta(days=rnd.randrange(364))).isoformat()
        rates += [(ws, f"member:{m}", m, None, change, 6500 + m)]
    cur.executemany(
        "INSERT INTO cost_rate (workspace_id, subject, member_id, group_id, effective_from,"
        f" minor_per_hour, created_at) VALUES (?, ?, ?, ?, ?, ?, '{now}')",
        rates,
    )
    cur.executemany(
        "INSERT INTO customer (id, workspace_id, name, email_domains, active, created_at)"
        " VALUES (?, ?, ?, ?, 1, ?)",
        [(c, ws, f"Customer {c}", f"c{c}.test", now) for c in range(1, customers + 1)],
    )
    contracts = []
    charge = []
    start = (YEAR_START - timedelta(days=90)).isoformat()
    for c in range(1, customers + 1):
        kind = ("hourly", "fixed", "block")[c % 3]
        fee = 150_000 + 1000 * (c % 50) if kind == "fixed" else 0
        block = (40 * 60, 900_000, 11_000) if kind == "block" else (0, 0, 0)
        contracts.append(
            (c, ws, c, f"{kind} {c}", kind, start, None, fee, *block, 2000 * (c % 4), now)
        )
        if kind == "hourly":
            charge.append((ws, c, start, 9000 + 10 * (c % 40), now))
            change = (YEAR_START + timedelta(days=rnd.randrange(364))).isoformat()
            charge.append((ws, c, change, 9500 + 10 * (c % 40), now))
    cur.executemany(
        "INSERT INTO contract (id, workspace_id, customer_id, name, kind, start_date, end_date,"
        " monthly_fee_minor, block_minutes, block_price_minor, overage_minor_per_hour,"
        " monthly_direct_cost_minor, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        contracts,
    )
    cur.executemany(
        "INSERT INTO charge_rate (workspace_id, contract_id, effective_from, minor_per_hour,"
        " created_at) VALUES (?, ?, ?, ?, ?)",
        charge,
    )
    days = [(YEAR_START + timedelta(days=d)).isoformat() for d in range(WEEKS * 7)]

    def rows() -> Iterator[tuple[Any, ...]]:
        for _ in range(entries):
            cust = rnd.randrange(1, customers + 1)
            yield (
                ws,
                rnd.randrange(1, members + 1),
                cust,
                cust,
                days[rnd.randrange(len(days))],
                rnd.choice((15, 30, 45, 60, 90, 120, 240)),
                rnd.random() < 0.9,
                now,
                now,
            )

    cur.executemany(
        "INSERT INTO time_entry (workspace_id, member_id, customer_id, contract_id, work_date,"
        " minutes, billable, note, created_at, updated_at) VALUES (?,?,?,?,?,?,?,'',?,?)",
        rows(),
    )
    db.commit()
    db.execute("ANALYZE")
    # Closed before the connection: a cursor still alive keeps the connection open until it
    # is collected, and with it the write-ahead log (a plain file copy would miss its pages).
    cur.close()
    db.close()
    return ws


def _workspace_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT min(id) FROM workspace").fetchone()[0])
    finally:
        db.close()


async def _migrate(path: Path) -> None:
    from bot.db import make_engine
    from bot.migrate import upgrade

    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()


async def copy_to_postgres(path: Path, url: str) -> str:
    """Migrate the PostgreSQL database at `url` afresh and COPY the generated tables into it."""
    from bench.ack import reset_postgres
    from bot.db import make_engine
    from bot.migrate import upgrade

    url = await reset_postgres(url)  # refuses the shared `test` database
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    src = sqlite3.connect(path)
    try:
        for table in COPIED:
            cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            buf = io.StringIO()
            writer = csv.writer(buf)
            for row in src.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                # SQLite keeps booleans as 0/1 and dates as ISO text: PostgreSQL parses both.
                writer.writerow(["\\N" if v is None else v for v in row])
            data = io.BytesIO(buf.getvalue().encode())
            await conn.copy_to_table(table, source=data, columns=cols, format="csv", null="\\N")
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        # What autovacuum does after a bulk load in a live database: statistics, and the
        # visibility map (index-only scans; no hint bits left to set on the first read).
        await conn.execute("VACUUM ANALYZE")
    finally:
        src.close()
        await conn.close()
    return url


COPIED = (
    "workspace",
    "member_group",
    "member",
    "cost_rate",
    "customer",
    "contract",
    "charge_rate",
    "time_entry",
)


# -- the reference: one hand-written SQL query -------------------------------------------------

REFERENCE_SQL = """
WITH e AS (
  SELECT t.customer_id, t.contract_id, t.member_id, t.work_date, t.minutes, t.billable,
         m.group_id
  FROM time_entry t JOIN member m ON m.id = t.member_id
  WHERE t.workspace_id = :ws AND t.work_date BETWEEN :start AND :end
)
SELECT e.customer_id,
  sum(e.minutes),
  sum(CASE WHEN e.billable THEN e.minutes ELSE 0 END),
  sum(e.minutes * coalesce(
    (SELECT r.minor_per_hour FROM cost_rate r WHERE r.workspace_id = :ws
       AND r.member_id = e.member_id AND r.effective_from <= e.work_date
       ORDER BY r.effective_from DESC, r.id DESC LIMIT 1),
    (SELECT r.minor_per_hour FROM cost_rate r WHERE r.workspace_id = :ws
       AND r.group_id = e.group_id AND r.member_id IS NULL AND r.effective_from <= e.work_date
       ORDER BY r.effective_from DESC, r.id DESC LIMIT 1),
    (SELECT r.minor_per_hour FROM cost_rate r WHERE r.workspace_id = :ws
       AND r.subject = 'default' AND r.effective_from <= e.work_date
       ORDER BY r.effective_from DESC, r.id DESC LIMIT 1))),
  sum(CASE WHEN e.billable AND c.kind = 'hourly' AND c.customer_id = e.customer_id
        AND c.start_date <= e.work_date AND (c.end_date IS NULL OR c.end_date >= e.work_date)
      THEN e.minutes * (SELECT cr.minor_per_hour FROM charge_rate cr
        WHERE cr.contract_id = c.id AND cr.effective_from <= e.work_date
        ORDER BY cr.effective_from DESC, cr.id DESC LIMIT 1)
      ELSE 0 END)
FROM e LEFT JOIN contract c ON c.id = e.contract_id
GROUP BY e.customer_id
"""


def reference_week(path: Path, ws: int, start: date) -> dict[str, list[int]]:
    db = sqlite3.connect(path)
    params = {"ws": ws, "start": start.isoformat(), "end": (start + timedelta(6)).isoformat()}
    out = {str(r[0]): [int(x or 0) for x in r[1:]] for r in db.execute(REFERENCE_SQL, params)}
    db.close()
    return out


# -- DuckDB: the whole year, load included ------------------------------------------------------

DUCK_SQL = """
WITH e AS (
  SELECT t.customer_id, t.contract_id, t.member_id, t.work_date, t.minutes, t.billable,
         m.group_id, date_trunc('week', t.work_date) AS week
  FROM te t JOIN mem m ON m.id = t.member_id
),
mr AS (SELECT member_id, effective_from, minor_per_hour FROM cr WHERE member_id IS NOT NULL),
gr AS (SELECT group_id, effective_from, minor_per_hour FROM cr
       WHERE group_id IS NOT NULL AND member_id IS NULL),
dr AS (SELECT 1 AS k, effective_from, minor_per_hour FROM cr WHERE subject = 'default'),
priced AS (
  SELECT e.*, coalesce(mr.minor_per_hour, gr.minor_per_hour, dr.minor_per_hour) AS cost,
         CASE WHEN e.billable AND c.kind = 'hourly' AND c.customer_id = e.customer_id
              AND c.start_date <= e.work_date
              AND (c.end_date IS NULL OR c.end_date::DATE >= e.work_date)
              THEN ch.minor_per_hour ELSE 0 END AS price
  FROM e
  ASOF LEFT JOIN mr ON e.member_id = mr.member_id AND e.work_date >= mr.effective_from
  ASOF LEFT JOIN gr ON e.group_id = gr.group_id AND e.work_date >= gr.effective_from
  ASOF LEFT JOIN (SELECT * FROM dr) d2 ON 1 = d2.k AND e.work_date >= d2.effective_from
  LEFT JOIN dr ON false
  LEFT JOIN con c ON c.id = e.contract_id
  ASOF LEFT JOIN chg ch ON e.contract_id = ch.contract_id AND e.work_date >= ch.effective_from
)
SELECT week, customer_id, sum(minutes), sum(CASE WHEN billable THEN minutes ELSE 0 END),
       sum(minutes * cost), sum(minutes * price)
FROM priced GROUP BY week, customer_id
"""


def duckdb_year(path: Path, ws: int, start: date) -> dict[str, Any]:
    """Load the tables from the SQLite file (CSV hand-off) and compute every week."""
    import duckdb

    src = sqlite3.connect(path)
    tmp = Path(tempfile.mkdtemp(prefix="docket-bench-duck-"))
    queries = {
        "te": "SELECT member_id, customer_id, contract_id, work_date, minutes, billable"
        f" FROM time_entry WHERE workspace_id = {ws}",
        "mem": "SELECT id, group_id FROM member",
        "cr": "SELECT subject, member_id, group_id, effective_from, minor_per_hour FROM cost_rate",
        "con": "SELECT id, customer_id, kind, start_date, end_date FROM contract",
        "chg": "SELECT contract_id, effective_from, minor_per_hour FROM charge_rate",
    }
    con = duckdb.connect()
    for name, sql in queries.items():
        cursor = src.execute(sql)
        file = tmp / f"{name}.csv"
        with file.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([d[0] for d in cursor.description])
            writer.writerows(cursor)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv_auto('{file}', header=true)")
    src.close()
    sql = DUCK_SQL.replace("LEFT JOIN dr ON false\n", "").replace(
        "dr.minor_per_hour", "d2.minor_per_hour"
    )
    rows = con.execute(sql).fetchall()
    week = {
        str(r[1]): [int(x or 0) for x in r[2:]]
        for r in rows
        if r[0] is not None and r[0].date() == start
    }
    return {"groups": len(rows), "week": week}


# -- Docket ------------------------------------------------------------------------------------


async def docket_measure(
    what: str, path: Path, ws: int, start: date, url: str | None = None
) -> dict[str, Any]:
    """Run one Docket operation (models.engine) and time it; `report` also returns figures.

    `url` runs it against that database (a PostgreSQL copy) instead of the SQLite file."""
    from bot.db import make_engine, make_sessionmaker
    from models import engine as per_customer
    from models import profit_report
    from models.periods import month_of, week_of
    from models.tables import TimeEntry

    engine = make_engine(url or f"sqlite+aiosqlite:///{path}")
    sessions = make_sessionmaker(engine)
    period = week_of(start)
    today = start + timedelta(days=WEEKS * 7)
    at = datetime.combine(today, datetime.min.time(), UTC)
    out: dict[str, Any] = {}
    try:
        if what == "rebuild":
            from models import profit_bulk

            began = time.perf_counter()
            await profit_bulk.rebuild(sessions=sessions, workspace_id=ws, today=today, at=at)
            out["seconds"] = time.perf_counter() - began
        elif what == "rebuild-per-customer":
            began = time.perf_counter()
            await per_customer.rebuild(sessions=sessions, workspace_id=ws, today=today, at=at)
            out["seconds"] = time.perf_counter() - began
        elif what == "backdate":
            out.update(await _backdate(sessions, ws, today, at, minor=6543))
        elif what == "backdate-reported":
            # A live workspace has posted every week: the change restates each of them.
            await _report_every_week(sessions, ws, today, at)
            out.update(await _backdate(sessions, ws, today, at, minor=7021))
        elif what == "report":
            began = time.perf_counter()
            async with sessions() as session:
                await profit_report.build_report(session=session, workspace_id=ws, period=period)
            out["seconds"] = time.perf_counter() - began
            async with sessions() as session:
                stored = await profit_report.stored_rows(
                    session=session, workspace_id=ws, period=period
                )
            week: dict[str, list[int]] = {}
            for (customer, contract), fig in stored.items():
                hourly = contract is not None and contract % 3 == 0  # the generator's kinds
                vals = [
                    fig.minutes,
                    fig.billable_minutes,
                    fig.labour_cost_60,
                    fig.revenue_60 if hourly else 0,
                ]
                prev = week.get(str(customer), [0, 0, 0, 0])
                week[str(customer)] = [x + y for x, y in zip(prev, vals, strict=True)]
            # Rows with no time (a fixed fee or direct cost only) are not in the reference.
            out["week"] = {k: v for k, v in week.items() if v[0]}
        elif what == "refresh":
            from models.timelog import mark_stale

            async with sessions() as session, session.begin():
                session.add(
                    TimeEntry(
                        workspace_id=ws,
                        member_id=1,
                        customer_id=1,
                        contract_id=1,
                        work_date=start,
                        minutes=30,
                    )
                )
                keys = [(1, week_of(start)), (1, month_of(start))]
                await mark_stale(session=session, workspace_id=ws, keys=keys, at=at)
            began = time.perf_counter()
            out["customer_periods"] = await _refresh_all(sessions, ws, today, at)
            out["seconds"] = time.perf_counter() - began
    finally:
        await engine.dispose()
    return out


async def _refresh_all(sessions: Any, ws: int, today: date, at: datetime) -> int:
    """Run the refresh worker's step until nothing is stale; customer-periods done."""
    from models import profit_bulk

    periods = 0
    while True:
        async with sessions() as session, session.begin():
            stats = await profit_bulk.refresh_step(
                session=session, workspace_id=ws, today=today, at=at
            )
        if not stats.customer_periods:
            return periods
        periods += stats.customer_periods


async def _report_every_week(sessions: Any, ws: int, today: date, at: datetime) -> None:
    """Record a posted weekly report for every week before `today`'s."""
    from models.periods import week_of
    from models.tables import ReportRun

    async with sessions() as session, session.begin():
        week = week_of(YEAR_START)
        while week.end < week_of(today).start:
            session.add(
                ReportRun(
                    workspace_id=ws,
                    kind="weekly",
                    period_key=week.key,
                    status="posted",
                    snapshot={},
                    claimed_at=at,
                )
            )
            week = week_of(week.end + timedelta(days=1))


async def _backdate(
    sessions: Any, ws: int, today: date, at: datetime, *, minor: int
) -> dict[str, Any]:
    """A group's cost rate corrected from the start of the year (40 members in the generated
    data), then the refresh worker's steps until every figure is fresh (what /profit reads)."""
    from sqlalchemy import text

    from models.cost_changes import has_pending
    from models.directory import save_cost_rate
    from models.profit_refresh import stale_count

    began = time.perf_counter()
    async with sessions() as session, session.begin():
        await save_cost_rate(
            session=session,
            workspace_id=ws,
            effective_from=YEAR_START - timedelta(days=400),
            minor_per_hour=minor,
            at=at,
            group_id=1,
        )
        marked = await stale_count(session=session, workspace_id=ws)
        changes = int(await has_pending(session, ws))
    periods = await _refresh_all(sessions, ws, today, at)
    seconds = time.perf_counter() - began
    async with sessions() as session:
        restated = await session.scalar(text("SELECT count(*) FROM restatement"))
    # Not timed: a rebuild from scratch afterwards must find nothing to change.
    from models import profit_bulk

    check = await profit_bulk.rebuild(sessions=sessions, workspace_id=ws, today=today, at=at)
    return {
        "seconds": seconds,
        "marked": marked,
        "cost_changes": changes,
        "customer_periods": periods,
        "rebuild_changed": check.rows_written + check.rows_deleted,
        "restatements": restated,
    }


# -- import ------------------------------------------------------------------------------------


def export_time_csv(path: Path, ws: int, out: Path) -> int:
    """The generated time entries as a `docket import time` file (names, not ids)."""
    src = sqlite3.connect(path)
    rows = src.execute(
        "SELECT m.email, t.work_date, t.minutes, c.name, k.name, t.billable, t.id"
        " FROM time_entry t JOIN member m ON m.id = t.member_id"
        " JOIN customer c ON c.id = t.customer_id JOIN contract k ON k.id = t.contract_id"
        " WHERE t.workspace_id = ? ORDER BY t.id",
        (ws,),
    )
    count = 0
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["member", "work_date", "hours", "customer", "contract", "billable", "id"])
        for email, day, minutes, customer, contract, billable, entry_id in rows:
            hours = f"{minutes // 60}.{minutes % 60 * 100 // 60:02d}".rstrip("0").rstrip(".")
            writer.writerow(
                [email, day, hours, customer, contract, "yes" if billable else "no", f"e{entry_id}"]
            )
            count += 1
    src.close()
    return count


def empty_copy(path: Path, out: Path) -> None:
    """A copy of the generated database without its time entries (and no results)."""
    shutil.copy(path, out)
    db = sqlite3.connect(out)
    db.execute("DELETE FROM time_entry")
    db.execute("DELETE FROM profit_result")
    db.execute("DELETE FROM stale_period")
    db.commit()
    db.execute("VACUUM")
    db.close()


def _plain_rows(
    csv_path: Path, lookups: tuple[dict[str, int], ...], ws: int, now: str
) -> Iterator[tuple[Any, ...]]:
    members, customers, contracts = lookups
    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for email, day, hours, customer, contract, billable, entry_id in reader:
            yield (
                ws,
                members[email],
                customers[customer],
                contracts[contract],
                day,
                round(float(hours) * 60),
                billable == "yes",
                entry_id,
                now,
                now,
            )


def plain_executemany(db_path: Path, csv_path: Path, ws: int) -> float:
    """Baseline: the file read with csv and inserted with sqlite3's executemany, names
    resolved from dictionaries and no checks."""
    began = time.perf_counter()
    db = sqlite3.connect(db_path)
    lookups = tuple(
        dict(db.execute(sql).fetchall())
        for sql in (
            "SELECT email, id FROM member",
            "SELECT name, id FROM customer",
            "SELECT name, id FROM contract",
        )
    )
    now = datetime.now(UTC).isoformat(sep=" ")
    db.executemany(
        "INSERT INTO time_entry (workspace_id, member_id, customer_id, contract_id, work_date,"
        " minutes, billable, source_key, note, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,'',?,?)",
        _plain_rows(csv_path, lookups, ws, now),
    )
    db.commit()
    db.close()
    return time.perf_counter() - began


async def plain_copy(url: str, csv_path: Path, ws: int) -> float:
    """Baseline on PostgreSQL: the same rows sent with COPY (asyncpg)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        began = time.perf_counter()
        lookups = (
            {r[0]: r[1] for r in await conn.fetch("SELECT email, id FROM member")},
            {r[0]: r[1] for r in await conn.fetch("SELECT name, id FROM customer")},
            {r[0]: r[1] for r in await conn.fetch("SELECT name, id FROM contract")},
        )
        now = datetime.now(UTC)
        records = [
            (*r[:4], date.fromisoformat(r[4]), *r[5:8], "", now, now)
            for r in _plain_rows(csv_path, lookups, ws, "")
        ]
        await conn.copy_records_to_table(
            "time_entry",
            records=records,
            columns=[
                "workspace_id",
                "member_id",
                "customer_id",
                "contract_id",
                "work_date",
                "minutes",
                "billable",
                "source_key",
                "note",
                "created_at",
                "updated_at",
            ],
        )
        return time.perf_counter() - began
    finally:
        await conn.close()


async def docket_import(url: str, csv_path: Path, ws: int) -> dict[str, Any]:
    """`docket import time FILE`'s work: models.importer.import_csv in one transaction."""
    from bot.db import make_engine, make_sessionmaker
    from models.importer import import_csv

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    at = datetime.now(UTC)
    try:
        began = time.perf_counter()
        async with sessions() as session, session.begin():
            result = await import_csv(
                session=session,
                workspace_id=ws,
                kind="time",
                opener=lambda: csv_path.open(newline="", encoding="utf-8"),
                at=at,
                today=at.date(),
            )
        return {"seconds": time.perf_counter() - began, "written": result.written}
    finally:
        await engine.dispose()


# -- child process entry -----------------------------------------------------------------------


def child(what: str, path: Path, ws: int, url: str | None = None) -> dict[str, Any]:
    began = time.perf_counter()
    if what == "reference":
        result: dict[str, Any] = {"week": reference_week(path, ws, REPORT_WEEK)}
    elif what == "duckdb":
        result = duckdb_year(path, ws, REPORT_WEEK)
    elif what.startswith("import:"):
        _, target, csv_file = what.split(":", 2)
        url = url or f"sqlite+aiosqlite:///{path}"
        if target == "docket":
            result = asyncio.run(docket_import(url, Path(csv_file), ws))
        elif url.startswith("postgresql"):
            result = {"seconds": asyncio.run(plain_copy(url, Path(csv_file), ws))}
        else:
            result = {"seconds": plain_executemany(path, Path(csv_file), ws)}
    else:
        result = asyncio.run(docket_measure(what, path, ws, REPORT_WEEK, url))
    result.setdefault("seconds", time.perf_counter() - began)
    result["maxrss_mb"] = max_rss_mb()
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds beside wall seconds: the machine is shared, so wall time can include waiting.
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def run_child(what: str, path: Path, ws: int, url: str | None = None) -> dict[str, Any]:
    from bench._common import run_json_child

    extra = ["--url", url] if url else []
    return run_json_child(
        ["-m", "bench.profit", "--child", what, "--db", str(path), "--ws", str(ws), *extra],
        timeout=1800,
    )


def compare(a: dict[str, list[int]], b: dict[str, list[int]], *, hourly_only: bool) -> list[str]:
    """Differences between two per-customer figure sets (revenue compared for hourly only)."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, [0, 0, 0, 0]), b.get(key, [0, 0, 0, 0])
        if hourly_only:
            x, y = x[:3], y[:3]
        if x != y:
            diffs.append(f"customer {key}: {x} != {y}")
    return diffs


def measure_import(path: Path, ws: int, backends: list[tuple[str, str | None]]) -> list[Row]:
    """`docket import time` of the year against a plain loader of the same file, on a copy
    of the generated database without its time entries (COPY on PostgreSQL)."""
    work = Path(tempfile.mkdtemp(prefix="docket-bench-import-"))
    csv_path = work / "time.csv"
    count = export_time_csv(path, ws, csv_path)
    rows = []
    for _backend, url in backends:
        label = "Docket" if url is None else "Docket PostgreSQL"
        figures: dict[str, float] = {}
        for target in ("plain", "docket"):
            if url is None:
                db = work / f"{target}.db"
                empty_copy(path, db)
                result = run_child(f"import:{target}:{csv_path}", db, ws)
            else:
                asyncio.run(_empty_postgres(url))
                result = run_child(f"import:{target}:{csv_path}", path, ws, url)
            figures[target] = result["seconds"]
        baseline = "COPY" if url else "executemany"
        rows.append(
            Row(
                f"{label} import of {count:,} time entries, s",
                f"{figures['docket']:.1f}",
                f"{figures['plain']:.1f} ({baseline})",
                ratio(figures["docket"], figures["plain"]),
                f"<= 1.5x {baseline}",
                figures["docket"] <= 1.5 * figures["plain"],
            )
        )
    return rows


async def _empty_postgres(url: str) -> None:
    from bot.db import make_engine

    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE time_entry, profit_result, stale_period")
    await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket profitability benchmark")
    parser.add_argument("--small", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--db", help="reuse/generate this SQLite file")
    parser.add_argument(
        "--postgres", help="also measure Docket on this PostgreSQL database (reset and loaded)"
    )
    parser.add_argument(
        "--per-customer",
        action="store_true",
        help="also time the per-customer rebuild (the engine before the set-based one; slow)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --db: reuse the data already generated there (measured on a copy)",
    )
    parser.add_argument("--no-import", action="store_true", help="skip the import measurement")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ws", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.db), args.ws, args.url)))
        return 0
    if args.small:
        args.entries, args.customers, args.members = 5000, 60, 20
    print(f"machine: {machine()}")
    print(
        f"sizes: {args.members} members, {args.customers} customers, {args.entries} time "
        f"entries over {WEEKS} weeks from {YEAR_START}; report week {REPORT_WEEK}"
    )
    path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="docket-bench-")) / "p.db"
    if args.reuse and path.exists():
        # The measurements change the data (a refresh adds an entry, a rate is back-dated):
        # they run on a copy, and the generated file stays as it was for the next run.
        work = path.with_name(path.stem + "-work.db")
        shutil.copy(path, work)
        path, ws = work, _workspace_of(work)
        print(f"reusing the data generated in {args.db} (copied to {work})")
    else:
        if path.exists():
            path.unlink()
        began = time.perf_counter()
        ws = generate(path, members=args.members, customers=args.customers, entries=args.entries)
        gen_s = time.perf_counter() - began
        print(f"generated in {gen_s:.1f}s ({args.entries / gen_s:,.0f} entries/s): {path}")
        if args.reuse:
            work = path.with_name(path.stem + "-work.db")
            shutil.copy(path, work)
            path = work
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres:
        # Copied before any Docket step runs: the refresh step adds a time entry.
        began = time.perf_counter()
        backends.append(("postgresql", asyncio.run(copy_to_postgres(path, args.postgres))))
        print(f"copied to PostgreSQL in {time.perf_counter() - began:.1f}s")

    ref = run_child("reference", path, ws)
    rows = [
        Row(
            "reference SQL: one week, s / peak MB",
            f"{ref['seconds']:.3f}s / {ref['maxrss_mb']:.0f}MB",
            target="(baseline)",
        )
    ]
    duck: dict[str, Any] | None = None
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("SKIPPED DuckDB baseline: duckdb is not installed (.venv/bin/pip install duckdb)")
    else:
        duck = run_child("duckdb", path, ws)
        diffs = compare(duck["week"], ref["week"], hourly_only=False)
        print(f"DuckDB week vs reference SQL: {'match' if not diffs else 'MISMATCH'} {diffs[:3]}")
        rows.append(
            Row(
                "DuckDB: full year load+query, s / peak MB (CPU s)",
                f"{duck['seconds']:.2f}s / {duck['maxrss_mb']:.0f}MB ({duck['cpu_s']:.1f})",
                target=f"(baseline; {duck['groups']} customer-weeks)",
            )
        )

    skip_engine = missing_part("models.profit_bulk", "rebuild", "refresh_step")
    skip_engine = skip_engine or missing_part("models.profit_report", "build_report")
    skip_engine = skip_engine or missing_part("models.timelog", "mark_stale")
    skip_report = skip_engine
    for _backend, url in backends:
        # The SQLite rows keep their plain labels; PostgreSQL rows say so.
        label = "Docket" if url is None else "Docket PostgreSQL"
        if skip_engine:
            print(f"SKIPPED Docket rebuild and refresh: {skip_engine}")
        else:
            rebuild = run_child("rebuild", path, ws, url)
            rows.append(
                Row(
                    f"{label} full rebuild, s (CPU s)",
                    f"{rebuild['seconds']:.2f} ({rebuild['cpu_s']:.1f})",
                    f"{duck['seconds']:.2f} (DuckDB)" if duck else "no DuckDB",
                    ratio(rebuild["seconds"], duck["seconds"]) if duck else "",
                    "<= 2x DuckDB",
                    rebuild["seconds"] <= 2 * duck["seconds"] if duck else None,
                )
            )
            rows.append(
                Row(
                    f"{label} full rebuild peak MB",
                    f"{rebuild['maxrss_mb']:.0f}",
                    f"{duck['maxrss_mb']:.0f} (DuckDB)" if duck else "",
                    target="< 200 MB",
                    met=rebuild["maxrss_mb"] < 200,
                )
            )
        if skip_report:
            print(f"SKIPPED Docket weekly report: {skip_report}")
        else:
            report = run_child("report", path, ws, url)
            diffs = compare(report.get("week", {}), ref["week"], hourly_only=False)
            print(
                f"{label} weekly figures vs reference SQL: {'match' if not diffs else 'MISMATCH'}"
            )
            for d in diffs[:5]:
                print("  ", d)
            rows.append(
                Row(
                    f"{label} weekly report, s",
                    f"{report['seconds']:.3f}",
                    f"{ref['seconds']:.3f} (SQL)",
                    ratio(report["seconds"], ref["seconds"]),
                    "<= 1.5x SQL",
                    report["seconds"] <= 1.5 * ref["seconds"],
                )
            )
            rows.append(
                Row(
                    f"{label} == reference figures",
                    "match" if not diffs else "MISMATCH",
                    met=not diffs,
                )
            )
        if not skip_engine:
            refresh = run_child("refresh", path, ws, url)
            rows.append(
                Row(
                    f"{label} incremental refresh, ms",
                    f"{refresh['seconds'] * 1000:.1f}",
                    target="< 50 ms",
                    met=refresh["seconds"] < 0.05,
                )
            )
            for what, title in (
                ("backdate", "back-dated group rate (40 members), s"),
                ("backdate-reported", "the same, every week reported before, s"),
            ):
                back = run_child(what, path, ws, url)
                rows.append(
                    Row(
                        f"{label} {title}",
                        f"{back['seconds']:.2f}",
                        f"{back['customer_periods']} customer-periods updated"
                        f" ({back['marked']} marked stale, {back['cost_changes']} cost change,"
                        f" {back['restatements']} restated; a rebuild then changes"
                        f" {back['rebuild_changed']} rows)",
                        target="< 5 s",
                        met=back["seconds"] < 5 and back["rebuild_changed"] == 0,
                    )
                )
        if args.per_customer and not skip_engine:
            old = run_child("rebuild-per-customer", path, ws, url)
            rows.append(
                Row(
                    f"{label} full rebuild, per customer (before), s",
                    f"{old['seconds']:.2f} ({old['cpu_s']:.1f})",
                    f"{duck['seconds']:.2f} (DuckDB)" if duck else "no DuckDB",
                    ratio(old["seconds"], duck["seconds"]) if duck else "",
                )
            )
    if not args.no_import:
        rows += measure_import(path, ws, backends)
    print_table("Profitability", rows)
    summary = {"reference_s": ref["seconds"], "duckdb_s": duck["seconds"] if duck else None}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
