"""Notifications under Slack's per-channel limit: the outbox worker against a strict emulator.

N notifications across K channels are queued in one transaction; the real outbox worker
(jobs/outbox.py, started as `docket serve` starts it) delivers them to the Slack emulator,
which answers 429 to a second message in a channel within one second. Figures: the delivered
rate as a fraction of the allowed rate (K msg/s), and the 429s Docket provoked. Baselines from
the same run: the allowed rate, and the time the emulator needs for the same N posts with no
limiter (a plain client posting directly).

    python -m bench.notify [--small] [--n 1000 --channels 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import Row, machine, missing_part, print_table

SLACK_OK_METHOD = "chat.postMessage"


async def direct_floor(api_url: str, token: str, n: int, channels: int) -> float:
    """Seconds for a plain client to post n messages (K at a time) to an unlimited emulator."""
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=token, base_url=api_url)
    queue = iter(range(n))

    async def one_channel(k: int) -> None:
        for i in queue:
            await client.chat_postMessage(channel=f"CFLOOR{k:02d}", text=f"floor {i}")

    started = time.perf_counter()
    await asyncio.gather(*(one_channel(k) for k in range(channels)))
    return time.perf_counter() - started


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench._setup import TEAM, TOKEN, sqlite_services
    from bot.runtime import Runtime
    from models.outbox import SLACK, enqueue, slack_call
    from tests.slack_emulator import SlackEmulator

    result: dict[str, Any] = {"n": args.n, "channels": args.channels}
    async with SlackEmulator(token=TOKEN, team_id=TEAM) as emu:
        floor = await direct_floor(emu.api_url, TOKEN, args.n, args.channels)
        result["floor_seconds"] = floor
        emu.clear()
        skip = missing_part("jobs.outbox", "OutboxWorker")
        if skip:
            result["skipped"] = skip
            return result

        from jobs import ratelimit
        from jobs.outbox import OutboxWorker

        result["workspace_pace_per_minute"] = ratelimit.PER_MINUTE.get(SLACK_OK_METHOD)

        if args.post_per_minute:
            # An experiment, in this process only: Docket's workspace-wide pace for posts.
            ratelimit.PER_MINUTE["chat.postMessage"] = args.post_per_minute
            result["post_per_minute"] = args.post_per_minute

        work = Path(tempfile.mkdtemp(prefix="docket-bench-notify-"))
        services = await sqlite_services(work / "docket.db", api_url=emu.api_url)
        now = services.now()
        async with services.transaction() as session:
            for i in range(args.n):
                channel = f"CNOTE{i % args.channels:02d}"
                await enqueue(
                    session=session,
                    workspace_id=services.workspace_id,
                    kind=SLACK,
                    key=f"bench-notify-{i}",
                    payload=slack_call("chat.postMessage", channel=channel, text=f"note {i}"),
                    at=now,
                    ordering_key=f"ticket:{i % (args.channels * 5)}",
                )
        emu.enforce_channel_rate(1.0)
        runtime = Runtime(services=services)
        started = time.perf_counter()
        worker = OutboxWorker(services, owner=f"{runtime.instance}:outbox")
        runtime.spawn("outbox", worker.run(runtime.stop_event))
        try:
            ok = lambda c: c.method == SLACK_OK_METHOD and c.ok  # noqa: E731
            await emu.wait_for(ok, timeout=args.timeout, count=args.n)
        except TimeoutError as exc:
            result["error"] = str(exc)[:300]
        finally:
            elapsed = time.perf_counter() - started
            await worker.close()
            await runtime.stop()
        delivered = [c for c in emu.calls if c.method == SLACK_OK_METHOD and c.ok]
        result.update(
            delivered=len(delivered),
            seconds=(delivered[-1].at - emu.calls[0].at) if delivered else elapsed,
            wall_seconds=elapsed,
            ratelimited=emu.ratelimited_count,
            max_per_channel_per_s=max(
                (emu.max_rate(f"CNOTE{k:02d}") for k in range(args.channels)), default=0
            ),
        )
    return result


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    allowed = float(args.channels)  # one message per second per channel
    # Docket's workspace-wide pace for posts also caps the rate (jobs/ratelimit.py).
    pace = r.get("post_per_minute") or r.get("workspace_pace_per_minute")
    paced = min(allowed, pace / 60) if pace else allowed
    per_channel = args.n / args.channels
    # The first message of each channel goes at once, so the ideal run lasts (n/K - 1) s.
    ideal = max(per_channel - 1, 1e-9)
    rows = [Row("emulator, no limiter: seconds for N posts", f"{r['floor_seconds']:.2f}")]
    if "skipped" in r:
        print(f"SKIPPED outbox measurement: {r['skipped']}")
    else:
        rate = r["delivered"] / r["seconds"] if r["seconds"] else 0.0
        fraction = min(rate, r["delivered"] / ideal) / allowed
        rows += [
            Row(
                "delivered rate msg/s",
                f"{rate:.2f}",
                f"{allowed:.0f} allowed",
                f"{rate / allowed:.2f}",
                ">= 0.9 of allowed",
                rate / allowed >= 0.9,
            ),
            Row(
                "delivered rate vs. allowed incl. workspace pace",
                f"{rate:.2f}",
                f"{paced:.2f} allowed ({pace}/min)",
                f"{rate / paced:.2f}",
                ">= 0.9 of allowed",
                rate / paced >= 0.9,
            ),
            Row(
                "delivered / ideal-time rate",
                f"{r['delivered']}/{args.n} in {r['seconds']:.1f}s",
                f"ideal {ideal:.0f}s",
                f"{fraction:.2f}",
            ),
            Row("429 answers provoked", str(r["ratelimited"]), "0", "", "0", r["ratelimited"] == 0),
            Row("max accepted per channel in 1 s", str(r["max_per_channel_per_s"]), "1"),
            Row(
                "time vs. no-limiter floor",
                f"{r['seconds']:.1f}s",
                f"{r['floor_seconds']:.2f}s",
                f"{r['seconds'] / r['floor_seconds']:.0f}x" if r["floor_seconds"] else "n/a",
            ),
        ]
        if "error" in r:
            print(f"did not finish: {r['error']}")
    print_table(f"Notifications: {args.n} across {args.channels} channels, 1 msg/s/channel", rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket outbox rate-limit benchmark")
    parser.add_argument("--small", action="store_true", help="100 across 10 channels")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default 3x ideal)")
    parser.add_argument(
        "--post-per-minute",
        type=int,
        default=None,
        help="experiment: override Docket's workspace-wide chat.postMessage pace (per minute)",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.n, args.channels = 100, 10
    if args.timeout is None:
        args.timeout = 3 * args.n / args.channels + 10
    print(f"machine: {machine()}")
    result = asyncio.run(measure(args))
    report(args, result)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
