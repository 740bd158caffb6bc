"""End-to-end harness: the real server on a loopback port, Slack answered by the emulator.

`DocketHarness` starts Docket through `bot.runtime.start` (the same code `docket serve` runs)
with SLACK_API_URL pointing at the emulator, and sends requests signed as Slack signs them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot import runtime as rt
from bot.config import Settings
from bot.services import Services
from tests.slack_emulator import SlackEmulator
from tests.slack_signing import SlackRequests


@dataclass
class Reply:
    status: int
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class DocketHarness:
    """A running Docket plus the emulator and a signed-request client."""

    runtime: rt.Runtime
    emulator: SlackEmulator
    requests: SlackRequests
    http: aiohttp.ClientSession

    @property
    def services(self) -> Services:
        return self.runtime.services

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    async def send(
        self, body: bytes, headers: dict[str, str], path: str = "/slack/events"
    ) -> Reply:
        import time

        started = time.monotonic()
        async with self.http.post(self.url + path, data=body, headers=headers) as resp:
            data = await resp.read()
            return Reply(resp.status, data, time.monotonic() - started)

    async def command(self, command: str, text: str = "", **kwargs: Any) -> Reply:
        kwargs.setdefault("response_url", self.emulator.response_url("cmd"))
        body, headers = self.requests.slash_command(command=command, text=text, **kwargs)
        return await self.send(body, headers)

    async def interact(self, payload: dict[str, Any]) -> Reply:
        body, headers = self.requests.interactivity(payload)
        return await self.send(body, headers)

    async def event(self, event: dict[str, Any], **kwargs: Any) -> Reply:
        body, headers = self.requests.event(event, **kwargs)
        return await self.send(body, headers)

    async def get(self, path: str) -> Reply:
        import time

        started = time.monotonic()
        async with self.http.get(self.url + path) as resp:
            return Reply(resp.status, await resp.read(), time.monotonic() - started)


@asynccontextmanager
async def running_docket(
    settings: Settings, emulator: SlackEmulator, signing_secret: str
) -> AsyncIterator[DocketHarness]:
    runtime = await rt.start(settings)
    try:
        async with aiohttp.ClientSession() as http:
            yield DocketHarness(
                runtime=runtime,
                emulator=emulator,
                requests=SlackRequests(signing_secret, team_id=emulator.team_id),
                http=http,
            )
    finally:
        await runtime.stop()
