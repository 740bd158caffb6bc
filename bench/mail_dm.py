"""Email to DM: customer mails over SMTP to `docket serve`, timed until the assignee's DM.

Docket runs as a real `docket serve` subprocess (SQLite) with its SMTP receiver on a loopback
port and the Slack emulator (in this process) as Slack. Each mail answers an open ticket
(subject tag `[#n]`, sent by the ticket's requester) and carries a unique token; latency is
from the SMTP server's answer to DATA until the emulator receives the chat.postMessage that
contains the token. Every mail has its own sender and ticket (flood damping is per sender) and
tickets are spread over enough assignees that no DM channel needs more than Slack's one
message per second. Baseline from the same run: the floor of the pipeline's last hop, a direct
chat.postMessage from a client to the emulator.

    python -m bench.mail_dm [--small] [--burst] [--rate 20 --seconds 60] [--drain 60]

`--burst` is 60 replies at 2 a second to 20 assignees (a modest burst after an outage). The
emulator answers 429 to a second message in a channel within a second, as Slack does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bench._common import Row, free_port, machine, missing_part, percentile, print_table, ratio
from bench._setup import SECRET, TEAM, TOKEN

SUPPORT = "support@bench.test"
# Slack's chat.update pace (Tier 3, about 50 a minute): where DMs were held before they had
# their own delivery lane.
CARD_UPDATE_PACE = 50 / 60


def seed(path: Path, *, tickets: int, assignees: int) -> None:
    """Members, one customer, and `tickets` open tickets each with its own requester."""
    now = datetime.now(UTC).isoformat(sep=" ")
    db = sqlite3.connect(path, timeout=30)
    ws = db.execute("SELECT id FROM workspace WHERE team_id = ?", (TEAM,)).fetchone()[0]
    db.executemany(
        "INSERT INTO member (workspace_id, slack_user_id, email, name, role, active, created_at)"
        " VALUES (?, ?, ?, ?, 'agent', 1, ?)",
        [(ws, f"UAS{a:04d}", f"a{a}@provider.test", f"Agent {a}", now) for a in range(assignees)],
    )
    ids = [r[0] for r in db.execute("SELECT id FROM member WHERE slack_user_id LIKE 'UAS%'")]
    cur = db.execute(
        "INSERT INTO customer (workspace_id, name, email_domains, active, created_at)"
        " VALUES (?, 'Bench Customer', 'customer.test', 1, ?)",
        (ws, now),
    )
    customer = cur.lastrowid
    db.executemany(
        "INSERT INTO contact (workspace_id, customer_id, email, name) VALUES (?, ?, ?, ?)",
        [(ws, customer, f"c{t}@customer.test", f"Contact {t}") for t in range(tickets)],
    )
    contacts = dict(db.execute("SELECT email, id FROM contact WHERE customer_id = ?", (customer,)))
    db.executemany(
        "INSERT INTO ticket (workspace_id, number, title, description, status, priority,"
        " customer_id, contact_id, assignee_id, requester_email, verified, version,"
        " created_at, updated_at) VALUES (?, ?, ?, '', 'open', 'normal', ?, ?, ?, ?, 1, 1, ?, ?)",
        [
            (
                ws,
                t + 1,
                f"Printer {t}",
                customer,
                contacts[f"c{t}@customer.test"],
                ids[t % assignees],
                f"c{t}@customer.test",
                now,
                now,
            )
            for t in range(tickets)
        ],
    )
    db.execute("UPDATE workspace SET next_ticket_number = ? WHERE id = ?", (tickets + 1, ws))
    db.commit()
    db.close()


def send(port: int, t: int, token: str) -> float:
    """Send one reply; return time.monotonic() when the server answered DATA."""
    msg = EmailMessage()
    msg["From"] = f"Contact {t} <c{t}@customer.test>"
    msg["To"] = SUPPORT
    msg["Subject"] = f"Re: [#{t + 1}] Printer {t}"
    msg["Message-ID"] = f"<bench-{token}@customer.test>"
    msg.set_content(f"Still broken, see {token}.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(msg)
        done = time.monotonic()
    return done


async def direct_floor(api_url: str, n: int) -> list[float]:
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=TOKEN, base_url=api_url)
    out = []
    for i in range(n):
        began = time.monotonic()
        await client.chat_postMessage(channel=f"UFLOOR{i % 10}", text=f"floor {i}")
        out.append(time.monotonic() - began)
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests.procs import serve_env, start_serve
    from tests.slack_emulator import SlackEmulator

    total = int(args.rate * args.seconds)
    result: dict[str, Any] = {"mails": total}
    async with SlackEmulator(token=TOKEN, team_id=TEAM) as emu:
        floor = await direct_floor(emu.api_url, args.floor_n)
        result["floor_ms"] = [x * 1000 for x in floor]
        emu.clear()
        # Slack's one message per second per channel: a post that breaks it is answered 429.
        emu.enforce_channel_rate(1.0)
        # The receiver stores and threads the mail; the outbox worker delivers the DM.
        skip = missing_part("jobs.mail", "MailWorker") or missing_part(
            "jobs.outbox", "OutboxWorker"
        )
        if skip:
            result["skipped"] = skip
            return result
        work = Path(tempfile.mkdtemp(prefix="docket-bench-mail-"))
        db = work / "docket.db"
        smtp_port = free_port()
        env = serve_env(
            database_url=f"sqlite+aiosqlite:///{db}",
            api_url=emu.api_url,
            signing_secret=SECRET,
            token=TOKEN,
            DOCKET_SMTP_PORT=str(smtp_port),
            DOCKET_SUPPORT_ADDRESS=SUPPORT,
        )
        serve = await start_serve(env, work / "serve.log", timeout=60)
        try:
            seed(db, tickets=total, assignees=args.assignees)
            loop = asyncio.get_running_loop()
            sent: dict[str, float] = {}
            began = time.monotonic()

            async def one(t: int) -> None:
                await asyncio.sleep(max(0.0, began + t / args.rate - time.monotonic()))
                token = f"TOK{t:06d}X"
                sent[token] = await loop.run_in_executor(None, send, smtp_port, t, token)

            await asyncio.gather(*(one(t) for t in range(total)))
            result["send_seconds"] = time.monotonic() - began
            try:
                await emu.wait_for(
                    lambda c: (
                        c.method == "chat.postMessage"
                        and c.ok
                        and str(c.args.get("channel", "")).startswith(("U", "D"))
                        and "TOK" in json.dumps(c.args)
                    ),
                    timeout=args.drain,
                    count=total,
                )
            except TimeoutError as exc:
                result["error"] = str(exc)[:300]
            arrived: dict[str, float] = {}
            where: dict[str, int] = {}
            for call in emu.calls:
                if call.method != "chat.postMessage":
                    continue
                text = json.dumps(call.args)
                start = text.find("TOK")
                if start < 0:
                    continue
                channel = str(call.args.get("channel", ""))
                kind = f"{'DM' if channel.startswith(('U', 'D')) else channel}:{call.status}"
                where[kind] = where.get(kind, 0) + 1
                # The assignee's DM: posted to the user id or their D-channel.
                if call.ok and channel.startswith(("U", "D")):
                    arrived.setdefault(text[start : start + 10], call.at)
            result["token_posts"] = where
            lat = [(arrived[k] - v) * 1000 for k, v in sent.items() if k in arrived]
            result.update(delivered=len(lat), latency_ms=lat, ratelimited=emu.ratelimited_count)
            # DM pace: DMs delivered per second from the first mail to the last DM.
            if arrived:
                span = max(arrived.values()) - min(sent.values())
                result["dm_per_second"] = len(arrived) / span if span > 0 else float(len(arrived))
            result["card_updates"] = sum(1 for c in emu.calls if c.method == "chat.update" and c.ok)
        finally:
            await asyncio.to_thread(serve.terminate)
    return result


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    floor = r["floor_ms"]
    rows = [
        Row(
            "floor: direct chat.postMessage p50/p99 ms",
            f"{percentile(floor, 50):.1f}/{percentile(floor, 99):.1f}",
            target="(baseline)",
        )
    ]
    if "skipped" in r:
        print(f"SKIPPED mail-to-DM measurement: {r['skipped']}")
    else:
        lat = r["latency_ms"]
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        rows += [
            Row(
                "mail -> DM p50 ms",
                f"{p50:.1f}",
                f"{percentile(floor, 50):.1f}",
                ratio(p50, percentile(floor, 50)),
            ),
            Row(
                "mail -> DM p99 ms",
                f"{p99:.1f}",
                f"{percentile(floor, 99):.1f}",
                ratio(p99, percentile(floor, 99)),
                "< 500 ms",
                p99 < 500,
            ),
            Row("mail -> DM max ms", f"{max(lat, default=0):.0f}"),
            Row(
                "DMs delivered",
                f"{r['delivered']}/{r['mails']}",
                target="all",
                met=r["delivered"] == r["mails"],
            ),
            Row("send rate achieved /s", f"{r['mails'] / r['send_seconds']:.1f}", f"{args.rate}"),
            Row(
                "DM delivery pace /s (first mail to last DM)",
                f"{r.get('dm_per_second', 0):.1f}",
                f"{CARD_UPDATE_PACE:.2f} (card-update pace)",
                ratio(r.get("dm_per_second", 0), CARD_UPDATE_PACE),
            ),
            Row(
                "429 answers from Slack",
                f"{r['ratelimited']}",
                target="0",
                met=not r["ratelimited"],
            ),
        ]
        if "error" in r:
            print(f"did not finish: {r['error']}")
    print_table(f"Email to DM: {args.rate}/s for {args.seconds}s", rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Docket email-to-DM latency benchmark")
    parser.add_argument("--small", action="store_true", help="5/s for 2 s")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="a modest burst: 60 replies at 2/s to 20 assignees (target p99 < 500 ms)",
    )
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--assignees", type=int, default=40)
    parser.add_argument("--floor-n", type=int, default=200)
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for DMs")
    args = parser.parse_args(argv)
    if args.small:
        args.rate, args.seconds, args.floor_n, args.drain = 5.0, 2.0, 20, 20.0
    elif args.burst:
        args.rate, args.seconds, args.assignees = 2.0, 30.0, 20
    print(f"machine: {machine()}")
    result = asyncio.run(measure(args))
    report(args, result)
    slim = {k: v for k, v in result.items() if k not in ("latency_ms", "floor_ms")}
    print(json.dumps(slim, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
