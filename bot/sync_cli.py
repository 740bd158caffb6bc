"""`docket sync slack-users`: the daily Slack directory sync, now."""

from __future__ import annotations

import argparse
import asyncio
import logging

from bot.config import Settings
from bot.runtime import build_services
from jobs.directory_sync import sync_slack_users


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read the Slack directory (users.list) and bring members in step: deactivated users "
        "become inactive and their open tickets are listed in the triage channel (delivered "
        "by `docket serve`); name and email changes follow. Nobody gets a role."
    )
    parser.add_argument("what", choices=["slack-users"])


async def _sync(settings: Settings) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    services = await build_services(settings)
    try:
        result = await sync_slack_users(services)
    finally:
        await services.engine.dispose()
    print(result.summary() + ".")
    for name in result.deactivated:
        print(f"  deactivated: {name}")
    return 0


def command_sync(settings: Settings, _args: argparse.Namespace) -> int:
    """Sync members with the Slack directory now (the daily job does it too)."""
    settings.require_slack()
    return asyncio.run(_sync(settings))


command_sync.configure = _configure  # type: ignore[attr-defined]
