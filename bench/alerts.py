"""Monitoring alert intake: stored-and-answered rate of `POST /integrations/alerts/{source}`,
and the rate at which stored deliveries become tickets and occurrences.

Intake: `docket serve` (intake only, `DOCKET_PROCESS_EVENTS=false`) answers N signed alert
bodies from C concurrent clients; each 202 means the body was authenticated, parsed and
stored. Baseline, same run, same database kind: a bare aiohttp handler that only stores the
body (`python -m bench.alerts --bare URL`). The load generator is a separate process.
Processing: a normal `docket serve` then works the stored deliveries off; the rate is taken
from the deliveries' own processed times (start-up excluded). The bodies cycle over
`--distinct` alerts, so that many tickets open and the rest are occurrences.

    python -m bench.alerts [--small] [--n 2000 --c 20 --distinct 20]
                           [--postgres postgresql://postgres@127.0.0.1/docket_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, Row, machine, percentile, print_table, ratio

SOURCE_SECRET = "bench-alert-secret-0123456789"
TOKEN = "xoxb-bench-token"
SIGNING = "bench-signing-secret"


# -- the load generator (its own process) -------------------------------------------------------


async def _load(url: str, n: int, c: int, distinct: int, prefix: str) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(n))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SOURCE_SECRET}"}
    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c)

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in counter:
            body = json.dumps(
                {
                    "title": f"Disk filling on host {i % distinct}",
                    "severity": "warning",
                    "customer": "Acme",
                    "fingerprint": f"{prefix}-disk-{i % distinct}",
                    "status": "firing",
                    "details": f"{prefix} reading {i}: 91% used",
                }
            )
            started = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    key = str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            latencies.append(time.perf_counter() - started)
            statuses[key] = statuses.get(key, 0) + 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(c)))
        seconds = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "n": n,
        "statuses": statuses,
        "rps": n / seconds,
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
    }


async def run_client(url: str, n: int, c: int, distinct: int, prefix: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.alerts",
        "--client",
        url,
        "--n",
        str(n),
        "--c",
        str(c),
        "--distinct",
        str(distinct),
        "--prefix",
        prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# -- the baseline: a bare handler that stores the body (its own process) -----------------------


async def _bare(url: str) -> None:
    import sqlalchemy as sa
    from aiohttp import web

    from bot.db import make_engine

    engine = make_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "bench_bare_alert",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(meta.drop_all)
        await conn.run_sync(meta.create_all)

    async def store(request: web.Request) -> web.Response:
        body = await request.read()
        async with engine.begin() as conn:
            await conn.execute(table.insert().values(body=body.decode("utf-8", "replace")))
        return web.Response(status=202)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/integrations/alerts/{source}", store)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"ready {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    async with engine.begin() as conn:
        await conn.run_sync(meta.drop_all)
    await engine.dispose()


async def start_bare(url: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.alerts",
        "--bare",
        url,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    if not line.startswith("ready"):
        raise RuntimeError(f"bare server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}/integrations/alerts/bench"


# -- Docket ------------------------------------------------------------------------------------


async def delivery_times(url: str) -> tuple[int, int, float]:
    """(done, pending, seconds between the first and the last processed delivery)."""
    import sqlalchemy as sa

    from bot.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            done, first, last = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*), min(processed_at), max(processed_at) "
                        "FROM alert_delivery WHERE status = 'done'"
                    )
                )
            ).one()
            pending = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM alert_delivery WHERE status = 'pending'")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    span = 0.0
    if first is not None and last is not None:
        from datetime import datetime

        a = first if isinstance(first, datetime) else datetime.fromisoformat(str(first))
        b = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
        span = (b - a).total_seconds()
    return int(done), int(pending), span


async def measure_backend(
    kind: str, url: str, bare_url: str, args: argparse.Namespace, work: Path, emulator_url: str
) -> dict[str, Any]:
    from tests.procs import serve_env, start_serve

    result: dict[str, Any] = {}
    bare, bare_endpoint = await start_bare(bare_url)
    try:
        await run_client(bare_endpoint, args.warmup, min(args.c, args.warmup), 1, "warm")
        result["bare"] = await run_client(bare_endpoint, args.n, args.c, args.distinct, "bare")
    finally:
        bare.send_signal(signal.SIGTERM)
        await bare.wait()

    env = serve_env(database_url=url, api_url=emulator_url, signing_secret=SIGNING, token=TOKEN)
    intake = await start_serve({**env, "DOCKET_PROCESS_EVENTS": "false"}, work / f"{kind}-1.log")
    try:
        added = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "integrations",
                "add",
                "bench",
                "--secret",
                SOURCE_SECRET,
            ],
            env=env,
            cwd=str(work),
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise RuntimeError(added.stderr)
        endpoint = f"{intake.url}/integrations/alerts/bench"
        await run_client(endpoint, args.warmup, min(args.c, args.warmup), 1, "warm")
        result["docket"] = await run_client(endpoint, args.n, args.c, args.distinct, "docket")
    finally:
        intake.terminate()
    expected = args.n + args.warmup
    worker = await start_serve(env, work / f"{kind}-2.log")
    began = time.perf_counter()
    try:
        while True:
            done, pending, span = await delivery_times(url)
            if pending == 0 or time.perf_counter() - began > args.limit:
                break
            await asyncio.sleep(0.5)
    finally:
        worker.terminate()
    result["processing"] = {"done": done, "expected": expected, "span": span}
    return result


def report(kind: str, res: dict[str, Any], n: int) -> None:
    bare, docket, proc = res["bare"], res["docket"], res["processing"]
    ok = docket["statuses"].get("202", 0)
    per_s = proc["done"] / proc["span"] if proc["span"] > 0 else 0.0
    rows = [
        Row(
            f"{kind}: intake (stored+202) req/s",
            f"{docket['rps']:.0f}",
            f"{bare['rps']:.0f}",
            ratio(docket["rps"], bare["rps"]),
        ),
        Row(f"{kind}: intake p50 ms", f"{docket['p50']:.1f}", f"{bare['p50']:.1f}"),
        Row(f"{kind}: intake p99 ms", f"{docket['p99']:.1f}", f"{bare['p99']:.1f}"),
        Row(f"{kind}: answered 202", f"{ok}/{n}", f"{bare['statuses'].get('202', 0)}/{n}"),
        Row(
            f"{kind}: processing deliveries/s",
            f"{per_s:.0f}",
            f"({proc['done']}/{proc['expected']} done)",
            "",
            "all done",
            proc["done"] == proc["expected"],
        ),
    ]
    if ok != n:
        print(f"MISMATCH: {kind} answered {docket['statuses']}")
    print_table(f"Alert intake and processing ({kind})", rows)


async def measure(args: argparse.Namespace) -> int:
    from bench.ack import reset_postgres
    from tests.slack_emulator import SlackEmulator

    print(f"machine: {machine()}")
    print(f"sizes: n={args.n} c={args.c} distinct alerts={args.distinct} warm-up={args.warmup}")
    work = Path(tempfile.mkdtemp(prefix="docket-bench-alerts-"))
    backends = [
        (
            "sqlite",
            f"sqlite+aiosqlite:///{work / 'docket.db'}",
            f"sqlite+aiosqlite:///{work / 'bare.db'}",
        )
    ]
    if args.postgres:
        url = await reset_postgres(args.postgres)
        backends.append(("postgresql", url, url))
    async with SlackEmulator(token=TOKEN, team_id="T0001") as emulator:
        for kind, url, bare_url in backends:
            res = await measure_backend(kind, url, bare_url, args, work, emulator.api_url)
            report(kind, res, args.n)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--c", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--limit", type=float, default=300.0, help="max seconds to process")
    parser.add_argument("--postgres", help="also run against this PostgreSQL database URL")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="a", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        out = asyncio.run(_load(args.client, args.n, args.c, args.distinct, args.prefix))
        print(json.dumps(out))
        return 0
    if args.bare:
        asyncio.run(_bare(args.bare))
        return 0
    if args.small:
        args.n, args.c, args.warmup, args.limit = 60, 4, 5, 60.0
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
