"""The daily Slack directory sync: page through `users.list`, then update members in one go.

`users.list` is a Tier 2 method: pages of up to 200 users, following `next_cursor`; a 429 is
answered by waiting its Retry-After and asking for the same page again. The whole directory is
read before anything is written, so a sync that fails half-way changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from models.slack_directory import SlackUser, SyncResult, apply_slack_users, parse_user

logger = logging.getLogger(__name__)

PAGE_SIZE = 200
MAX_RATE_LIMITS = 10  # 429s in a row on one page before the sync gives up until next time
DAILY_AT = time(6, 30)  # local time, outside the 00:00-04:00 daylight-saving hours

Sleep = Callable[[float], Awaitable[Any]]


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after") or "1"
    try:
        return max(1.0, float(value))
    except ValueError:
        return 1.0


async def fetch_users(
    client: AsyncWebClient, *, page_size: int = PAGE_SIZE, sleep: Sleep = asyncio.sleep
) -> list[SlackUser]:
    """Every user of the directory, page by page, honouring 429 Retry-After."""
    users: list[SlackUser] = []
    cursor = ""
    while True:
        limited = 0
        while True:
            try:
                page = await client.users_list(limit=page_size, cursor=cursor or None)
                break
            except SlackApiError as exc:
                if exc.response.status_code != 429 or limited >= MAX_RATE_LIMITS:
                    raise
                limited += 1
                wait = _retry_after(exc)
                logger.info("users.list rate limited; waiting %.0f s", wait)
                await sleep(wait)
        for data in page.get("members") or []:
            user = parse_user(data)
            if user is not None:
                users.append(user)
        cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return users


async def sync_slack_users(services: Services, *, page_size: int = PAGE_SIZE) -> SyncResult:
    """Read the Slack directory and bring members in step with it (one transaction)."""
    users = await fetch_users(services.slack, page_size=page_size)
    async with services.transaction() as session:
        result = await apply_slack_users(
            session=session,
            workspace_id=services.workspace_id,
            team_id=services.team_id,
            users=users,
            at=services.now(),
        )
    logger.info("slack directory sync: %s", result.summary())
    return result


def seconds_until_next(now: datetime, services: Services, at: time = DAILY_AT) -> float:
    """Seconds from `now` to the next `at` in the workspace's time zone."""
    local = now.astimezone(services.timezone)
    target = datetime.combine(local.date(), at, tzinfo=services.timezone)
    if target <= local:
        target = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=services.timezone)
    return max(1.0, (target.astimezone(UTC) - now).total_seconds())


class DirectorySyncWorker:
    """Runs the sync once a day at `DAILY_AT` local time until stopped."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = seconds_until_next(self.services.now(), self.services)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            try:
                await sync_slack_users(self.services)
            except Exception:
                logger.exception("slack directory sync failed; trying again tomorrow")
