"""The `docket` command: serve, migrate, demo, report, import, rebuild, outbox, mail,
integrations, export, sync."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from bot.db import DatabaseUnavailable
from bot.demo import command_demo
from bot.exports import command_export
from bot.importer import command_import
from bot.integrations_cli import command_integrations
from bot.mail_cli import command_mail
from bot.outbox_cli import command_outbox
from bot.reports import command_rebuild, command_report
from bot.sync_cli import command_sync

logger = logging.getLogger("docket")

# Exit statuses: 2 invalid settings, 3 the database could not be reached at start.
EXIT_DATABASE_UNAVAILABLE = 3

# Sub-commands defined in other modules. Each takes (settings, args) and returns an exit
# status; its `configure` attribute, when present, adds its arguments to its parser.
EXTRA_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "demo": command_demo,
    "report": command_report,
    "rebuild": command_rebuild,
    "import": command_import,
    "outbox": command_outbox,
    "mail": command_mail,
    "integrations": command_integrations,
    "export": command_export,
    "sync": command_sync,
}


def configure_logging(level: str, *, sql_parameters: bool = False) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if sql_parameters:
        # Asked for: every statement with its values (the engine shows them, see bot.db).
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    else:
        # The drivers' DEBUG lines carry each statement's values (customer text, raw mail).
        for name in ("aiosqlite", "asyncpg"):
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    # Bolt logs whole request bodies (customer text, response_url) on some paths.
    for name in ("slack_bolt", "slack_sdk", "aiosmtpd", "mail.log", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)


async def _serve(settings: Settings) -> int:
    from bot import runtime as rt

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Before start-up: a SIGTERM that comes as soon as /healthz answers still stops cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = await rt.start(settings)
    where = f"HTTP port {runtime.port}" + (
        ", Slack over Socket Mode" if settings.socket_mode else ""
    )
    print(f"Docket is running ({where}).", flush=True)
    await stop.wait()
    logger.info("stopping")
    await runtime.stop()
    return 0


def command_serve(settings: Settings, _args: argparse.Namespace) -> int:
    settings.require_slack()
    return asyncio.run(_serve(settings))


def command_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.db import make_engine
    from bot.migrate import current_revision, upgrade

    async def go() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(go())
    print(f"Database is at revision {revision}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docket", description="Slack-first helpdesk and profitability."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the Slack app, workers, scheduler and mail receiver")
    sub.add_parser("migrate", help="apply database migrations")
    for name, func in EXTRA_COMMANDS.items():
        configure: Callable[[argparse.ArgumentParser], None] | None = getattr(
            func, "configure", None
        )
        sub_parser = sub.add_parser(
            name, help=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else None
        )
        if configure is not None:
            configure(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configure_logging(settings.docket_log_level, sql_parameters=settings.docket_log_sql_parameters)
    commands: dict[str, Any] = {"serve": command_serve, "migrate": command_migrate}
    try:
        if args.command in commands:
            return int(commands[args.command](settings, args))
        return int(EXTRA_COMMANDS[args.command](settings, args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_DATABASE_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
