"""Ack path: signed `/ticket <title>` slash commands against `docket serve` and a bare Bolt app.

Both servers run as subprocesses; the load generator runs in a third process (its own event
loop), so neither server shares a loop or a core budget with the client more than the
machine forces. The Slack Web API emulator runs in this process for Docket's outbound calls.

    python -m bench.ack [--small] [--n 5000 --c 50 --overload-n 5000 --overload-c 500]
                        [--postgres postgresql://postgres@127.0.0.1/docket_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import Row, machine, missing_part, percentile, print_table, ratio

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
TEAM = "T0001"


# -- the load generator (runs in its own process) --------------------------------------------


async def _load(url: str, n: int, c: int, prefix: str, response_base: str) -> dict[str, Any]:
    import aiohttp

    from tests.slack_signing import SlackRequests

    requests = SlackRequests(SECRET, team_id=TEAM, response_base=response_base)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counter = iter(range(n))
    # The connector allows exactly C connections: C workers never queue inside the client.
    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in counter:
            body, headers = requests.slash_command(
                "/ticket", f"{prefix} printer on floor {i}", user_id=f"U{i % 20 + 1:03d}"
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

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(c)))
        seconds = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "n": n,
        "c": c,
        "ok": statuses.get("200", 0),
        "statuses": statuses,
        "seconds": seconds,
        "rps": n / seconds,
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms, default=0.0),
    }


async def run_client(
    url: str, n: int, c: int, prefix: str, response_base: str = "http://127.0.0.1:9/response/"
) -> dict[str, Any]:
    """Run the load generator as a child process and return its figures."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.ack",
        "--client",
        url,
        "--n",
        str(n),
        "--c",
        str(c),
        "--prefix",
        prefix,
        "--response-base",
        response_base,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# -- servers ----------------------------------------------------------------------------------


async def start_bare() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_bolt",
        "--secret",
        SECRET,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    if not line.startswith("ready"):
        raise RuntimeError(f"bare Bolt server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}/slack/events"


async def reset_postgres(url: str) -> str:
    from bot.db import make_engine, normalise_url

    url = normalise_url(url)
    if url.rsplit("/", 1)[-1].split("?")[0] == "test":
        raise SystemExit("refusing to reset the shared `test` database; use docket_bench")
    import sqlalchemy as sa

    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(sa.text("CREATE SCHEMA public"))
    await engine.dispose()
    return url


async def drain(count: Any, expected: int, limit: float) -> dict[str, Any]:
    """Wait until `expected` tickets are stored (the work after the ack), or progress stops."""
    began = time.perf_counter()
    last, last_change = -1, began
    at_start: int | None = None
    while True:
        stored = await count()
        now = time.perf_counter()
        at_start = stored if at_start is None else at_start
        if stored != last:
            last, last_change = stored, last_change if stored == at_start else now
        if stored >= expected or now - last_change > 15 or now - began > limit:
            # The work done after the acks stopped, alone: the worker's own rate.
            busy = max(last_change - began, 1e-9)
            return {
                "stored": stored,
                "drain_seconds": now - began,
                "after_acks": stored - at_start,
                "worker_rate": (stored - at_start) / busy if stored > at_start else 0.0,
            }
        await asyncio.sleep(0.25)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux VmHWM), in MB; 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def count_tickets_sqlite(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM ticket").fetchone()[0])


async def count_tickets_pg(url: str) -> int:
    import sqlalchemy as sa

    from bot.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as conn:
        value = (await conn.execute(sa.text("SELECT count(*) FROM ticket"))).scalar_one()
    await engine.dispose()
    return int(value)


async def measure(args: argparse.Namespace) -> int:
    from tests.procs import serve_env, start_serve
    from tests.slack_emulator import SlackEmulator

    print(f"machine: {machine()}")
    print(
        f"sizes: n={args.n} c={args.c}; overload n={args.overload_n} c={args.overload_c}; "
        f"warm-up {args.warmup} per server"
    )
    skip = missing_part("handlers.ticket_command")
    backends: list[tuple[str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="docket-bench-ack-"))
    backends.append(("sqlite", f"sqlite+aiosqlite:///{work / 'docket.db'}"))
    if args.postgres:
        backends.append(("postgresql", await reset_postgres(args.postgres)))

    bare, bare_url = await start_bare()
    results: dict[str, dict[str, Any]] = {}
    try:
        await run_client(bare_url, args.warmup, min(args.c, args.warmup), "warm")
        results["bare"] = await run_client(bare_url, args.n, args.c, "bare")
        results["bare-overload"] = await run_client(
            bare_url, args.overload_n, args.overload_c, "bare"
        )
        if skip:
            print(f"SKIPPED Docket /ticket measurement: {skip} (quick create not registered)")
        else:
            async with SlackEmulator(token=TOKEN, team_id=TEAM) as emu:
                for u in range(1, 21):
                    emu.add_user(f"U{u:03d}", name=f"agent{u}", email=f"agent{u}@bench.test")
                for name, url in backends:
                    env = serve_env(
                        database_url=url,
                        api_url=emu.api_url,
                        signing_secret=SECRET,
                        token=TOKEN,
                        DOCKET_LOG_LEVEL=args.log_level,
                    )
                    serve = await start_serve(env, work / f"serve-{name}.log", timeout=60)
                    try:
                        target = serve.url + "/slack/events"
                        # Docket answers some commands through response_url: the emulator's.
                        base = emu.response_url("")
                        await run_client(
                            target, args.warmup, min(args.c, args.warmup), "warm", base
                        )

                        async def count(name: str = name, url: str = url) -> int:
                            if name == "sqlite":
                                return count_tickets_sqlite(work / "docket.db")
                            return await count_tickets_pg(url)

                        await drain(count, args.warmup, args.drain)
                        r = results[name] = await run_client(target, args.n, args.c, "bench", base)
                        r.update(await drain(count, args.warmup + args.n, args.drain))
                        o = results[f"{name}-overload"] = await run_client(
                            target, args.overload_n, args.overload_c, "overload", base
                        )
                        o.update(
                            await drain(count, args.warmup + args.n + args.overload_n, args.drain)
                        )
                        r["tickets"] = o["stored"]
                        r["peak_rss_mb"] = peak_rss_mb(serve.proc.pid)
                    finally:
                        # In a thread: the emulator in this loop must keep answering while
                        # Docket finishes what it has in hand.
                        await asyncio.to_thread(serve.terminate)
    finally:
        bare.terminate()
        await bare.wait()

    bare_r = results["bare"]
    rows = [
        Row(
            f"bare Bolt: req/s (C={args.c})",
            f"{bare_r['rps']:.0f}",
            target="(baseline)",
        ),
        Row(
            "bare Bolt latency p50/p95/p99/max ms",
            f"{bare_r['p50']:.1f}/{bare_r['p95']:.1f}/{bare_r['p99']:.1f}/{bare_r['max']:.0f}",
        ),
    ]
    for name, _url in backends:
        if name not in results:
            continue
        r, o, bo = results[name], results[f"{name}-overload"], results["bare-overload"]
        expected = args.warmup + args.n + args.overload_n
        rows += [
            Row(
                f"{name}: throughput req/s (C={args.c})",
                f"{r['rps']:.0f}",
                f"{bare_r['rps']:.0f}",
                ratio(r["rps"], bare_r["rps"]),
                ">= 0.8x bare",
                r["rps"] >= 0.8 * bare_r["rps"],
            ),
            Row(
                f"{name}: p50/p95 ms (C={args.c})",
                f"{r['p50']:.1f}/{r['p95']:.1f}",
                f"{bare_r['p50']:.1f}/{bare_r['p95']:.1f}",
                ratio(r["p95"], bare_r["p95"]),
            ),
            Row(
                f"{name}: p99 ms (C={args.c})",
                f"{r['p99']:.1f}",
                f"{bare_r['p99']:.1f}",
                ratio(r["p99"], bare_r["p99"]),
                "< 150 ms",
                r["p99"] < 150,
            ),
            Row(
                f"{name}: max ms at C={args.overload_c} (p99 {o['p99']:.0f})",
                f"{o['max']:.0f}",
                f"{bo['max']:.0f}",
                ratio(o["max"], bo["max"]),
                "< 3000 ms",
                o["max"] < 3000,
            ),
            Row(
                f"{name}: overload req/s (C={args.overload_c})",
                f"{o['rps']:.0f}",
                f"{bo['rps']:.0f}",
                ratio(o["rps"], bo["rps"]),
            ),
            Row(
                f"{name}: 200 answers; tickets stored",
                f"{r['ok'] + o['ok']}/{args.n + args.overload_n}; {r['tickets']}/{expected}",
                "(tickets include the warm-up)",
                target="all",
                met=r["ok"] == args.n and o["ok"] == args.overload_n and r["tickets"] == expected,
            ),
        ]
        rows.append(
            Row(
                f"{name}: tickets created/s after the acks (C={args.c})",
                f"{r.get('worker_rate', 0):.0f}",
                f"{r.get('after_acks', 0)} tickets",
                target=">= 500/s",
                met=r.get("worker_rate", 0) >= 500,
            )
        )
        rows.append(
            Row(
                f"{name}: peak RSS of docket serve (after C={args.overload_c})",
                f"{r.get('peak_rss_mb', 0):.0f} MB",
                target="bounded",
            )
        )
        rows.append(
            Row(
                f"{name}: tickets stored/s incl. drain (C={args.c})",
                f"{args.n / (r['seconds'] + r['drain_seconds']):.0f}",
                f"{r['rps']:.0f} acks/s",
                ratio(args.n / (r["seconds"] + r["drain_seconds"]), r["rps"]),
                target=f"drain after acks {r['drain_seconds']:.1f}s",
            )
        )
        bad = {k: v for k, v in {**r["statuses"], **o["statuses"]}.items() if k != "200"}
        if bad:
            print(f"{name}: non-200 answers: {bad}")
    print_table("Ack path: /ticket quick create", rows)
    print(json.dumps({"results": results}, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket ack-path benchmark")
    parser.add_argument("--small", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--c", type=int, default=50)
    parser.add_argument("--overload-n", type=int, default=5000)
    parser.add_argument("--overload-c", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--postgres", help="also run against this PostgreSQL database URL")
    parser.add_argument("--drain", type=float, default=300, help="max seconds to wait for work")
    parser.add_argument("--log-level", default="INFO", help="Docket's DOCKET_LOG_LEVEL")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--response-base", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        result = asyncio.run(_load(args.client, args.n, args.c, args.prefix, args.response_base))
        print(json.dumps(result))
        return 0
    if args.small:
        args.n, args.c, args.overload_n, args.overload_c, args.warmup = 60, 10, 60, 30, 10
    return asyncio.run(measure(args))


if __name__ == "__main__":
    raise SystemExit(main())
