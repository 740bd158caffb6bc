"""A bare Bolt AsyncApp behind aiohttp that only acks `/ticket`: the ack-path baseline.

It checks Slack's request signature (Bolt's own verification) like Docket does, then acks;
no database, no services. `python -m bench.bare_bolt --port P --secret S` prints
"ready <port>" once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest


def build(secret: str) -> web.Application:
    """The aiohttp application: POST /slack/events -> Bolt -> ack."""

    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> Any:
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-bare", bot_user_id="UB"
        )

    app = AsyncApp(signing_secret=secret, authorize=authorize)

    async def ticket(ack: Any) -> None:
        await ack()

    app.command("/ticket")(ticket)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8", "replace"),
            query=request.query_string,
            headers={k: v for k, v in request.headers.items()},
        )
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    web_app = web.Application()
    web_app.router.add_post("/slack/events", slack_events)
    return web_app


async def serve(port: int, secret: str) -> None:
    runner = web.AppRunner(build(secret), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"ready {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    asyncio.run(serve(args.port, args.secret))


if __name__ == "__main__":
    main()
