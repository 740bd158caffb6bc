"""The incremental profitability refresh against an earlier checkout of Docket, side by side.

Both run on copies of the same database, alternately, each in a fresh process: add one time
entry, mark its week and month stale, refresh until nothing is stale; `--times` such refreshes
per process (the first is a cold start, the rest are what the running service does).

    git worktree add /tmp/old 434d792        # the code to compare against
    python -m bench.refresh_compare --db p1m.db --old /tmp/old --rounds 3
    python -m bench.refresh_compare --small   # smoke: generated data, this checkout twice

The earlier code is imported from `--old` (its `models` package) through PYTHONPATH; its
refresh is `models.engine.refresh_some` where `models.profit_bulk` does not exist yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START = date(2025, 8, 4)
TODAY = date(2026, 1, 5)


async def _refreshes(path: str, times: int) -> dict[str, Any]:
    from bot.db import make_engine, make_sessionmaker
    from models.periods import month_of, week_of
    from models.tables import TimeEntry
    from models.timelog import mark_stale

    at = datetime.combine(TODAY, datetime.min.time(), UTC)
    try:
        from models import profit_bulk

        async def step(session: Any) -> Any:
            return await profit_bulk.refresh_step(
                session=session, workspace_id=1, today=TODAY, at=at
            )
    except ImportError:  # the code before the set-based recompute
        from models import engine as per_customer

        async def step(session: Any) -> Any:
            return await per_customer.refresh_some(session=session, workspace_id=1, at=at)

    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    sessions = make_sessionmaker(engine)
    timings = []
    try:
        for i in range(times):
            day = START + timedelta(days=i % 5)
            async with sessions() as session, session.begin():
                session.add(
                    TimeEntry(
                        workspace_id=1,
                        member_id=1,
                        customer_id=1,
                        contract_id=1,
                        work_date=day,
                        minutes=30,
                    )
                )
                keys = [(1, week_of(day)), (1, month_of(day))]
                await mark_stale(session=session, workspace_id=1, keys=keys, at=at)
            began = time.perf_counter()
            while True:
                async with sessions() as session, session.begin():
                    stats = await step(session)
                if not stats.customer_periods:
                    break
            timings.append((time.perf_counter() - began) * 1000)
    finally:
        await engine.dispose()
    return {"first_ms": timings[0], "rest_ms": statistics.median(timings[1:] or timings)}


def _child(code: Path, db: Path, times: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    # Run as a file, so that `models` and `bot` come from `code` alone.
    env["PYTHONPATH"] = str(code)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(db), str(times)],
        cwd=str(code),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"refresh with {code} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _small_database(work: Path) -> Path:
    from bench.profit import _migrate, generate

    path = work / "small.db"
    asyncio.run(_migrate(path))
    generate(path, members=20, customers=60, entries=5000)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(asyncio.run(_refreshes(argv[1], int(argv[2])))))
        return 0
    from bench._common import Row, machine, print_table, ratio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a generated database (bench.profit --db); copied")
    parser.add_argument("--old", help="a checkout of the code to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--times", type=int, default=20, help="refreshes per process")
    parser.add_argument("--small", action="store_true", help="smoke: small data, this code twice")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="docket-refresh-"))
    if args.small:
        source, old, args.rounds, args.times = _small_database(work), ROOT, 1, 3
    elif args.db and args.old:
        source, old = Path(args.db), Path(args.old)
    else:
        parser.error("--db and --old, or --small")
    print(f"machine: {machine()}")
    copies = {}
    for name in ("old", "new"):
        copies[name] = work / f"{name}.db"
        shutil.copy(source, copies[name])
    firsts: dict[str, list[float]] = {"old": [], "new": []}
    rests: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for name, code in (("old", old), ("new", ROOT)):
            result = _child(code, copies[name], args.times)
            firsts[name].append(result["first_ms"])
            rests[name].append(result["rest_ms"])
    first = {k: statistics.median(v) for k, v in firsts.items()}
    rest = {k: statistics.median(v) for k, v in rests.items()}
    measures = (("cold (first in a process)", first), ("warm (median of the rest)", rest))
    print_table(
        "Incremental refresh against earlier code",
        [
            Row(
                f"refresh after one entry, {label}, ms",
                f"{figures['new']:.1f}",
                f"{figures['old']:.1f} ({old.name})",
                ratio(figures["new"], figures["old"]),
                "no slower",
                figures["new"] <= figures["old"] * 1.1,
            )
            for label, figures in measures
        ],
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
