"""Start and stop everything `docket serve` runs in one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from slack_sdk.http_retry.builtin_async_handlers import AsyncServerErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app, build_worker_app
from bot.config import Settings
from bot.db import DatabaseUnavailable, check_reachable, make_engine, make_sessionmaker
from bot.intake import make_deliver, make_runner
from bot.migrate import upgrade
from bot.server import build_web_app
from bot.services import Services
from bot.socket_mode import SocketModeIngress
from handlers.alert_notifications import SlackAlertHooks
from handlers.ids import Command
from handlers.mail import SmtpServer
from handlers.quick_create import joins_batch, run_stored_quick_creates
from handlers.ticket_notifications import SlackHooks
from jobs.alerts import AlertWorker
from jobs.directory_sync import DirectorySyncWorker
from jobs.events import EventWorker
from jobs.intake import Batch, IntakeWorker
from jobs.mail import MailWorker
from jobs.outbox import OutboxWorker
from jobs.profit import ProfitWorker
from jobs.scheduler import ReportScheduler
from jobs.sla import SlaScanWorker
from models.workspaces import ensure_workspace

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0


SLACK_TIMEOUT_SECONDS = 10


def make_slack_client(
    settings: Settings, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client. With `session` its calls share connections (kept alive), instead
    of a new connection, and TLS handshake, per call; the session's owner closes it."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_SECONDS,
        session=session,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )


def slack_http_session() -> aiohttp.ClientSession:
    """One HTTP session for the process's Web API calls (call inside the running loop)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SLACK_TIMEOUT_SECONDS))


@dataclass
class Runtime:
    """A running Docket: services, HTTP site, workers. `stop()` ends them in order."""

    services: Services
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    port: int | None = None
    smtp_port: int | None = None

    def spawn(self, name: str, coro: Awaitable[Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)

    async def stop(self) -> None:
        self.stop_event.set()
        for stopper in reversed(self.stoppers):
            began = time.monotonic()
            try:
                await stopper()
            except Exception:
                logger.exception("error while stopping")
            took = time.monotonic() - began
            if took > 1.0:
                logger.info(
                    "stopping %s took %.1f s", getattr(stopper, "__qualname__", stopper), took
                )
        # Workers see stop_event and return after their current step; cancelling one inside a
        # SQLite transaction could leave the write lock held until its connection is collected.
        if self.tasks:
            _done, pending = await asyncio.wait(self.tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await _close_http(self.services.slack)
        await self.services.engine.dispose()


async def _close_http(slack: AsyncWebClient) -> None:
    if slack.session is not None and not slack.session.closed:
        await slack.session.close()


async def build_services(settings: Settings) -> Services:
    """Connect to the database (migrating it) and learn who we are in Slack."""
    engine = make_engine(
        settings.database_url, hide_parameters=not settings.docket_log_sql_parameters
    )
    try:
        await check_reachable(engine)
    except DatabaseUnavailable:
        await engine.dispose()
        raise
    await upgrade(engine)
    slack = make_slack_client(settings, session=slack_http_session())
    try:
        auth = await slack.auth_test()
    except BaseException:
        await _close_http(slack)
        await engine.dispose()
        raise
    team_id = str(auth["team_id"])
    bot_user_id = str(auth["user_id"])
    sessions = make_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ws = await ensure_workspace(
            session=session,
            team_id=team_id,
            name=str(auth.get("team") or ""),
            timezone=settings.docket_timezone,
            currency=settings.docket_currency,
            triage_channel=settings.docket_triage_channel,
            managers_channel=settings.docket_managers_channel,
            bot_user_id=bot_user_id,
        )
        workspace_id = ws.id
        tz = ws.timezone
    assert workspace_id is not None
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        slack=slack,
        workspace_id=workspace_id,
        team_id=team_id,
        bot_user_id=bot_user_id,
        timezone=ZoneInfo(tz),
    )


async def start_reports(services: Services) -> ReportScheduler | None:
    """Start the report scheduler (unless DOCKET_SCHEDULER is off) and catch up missed posts;
    settings changes reschedule a workspace's posts through `services.on_reschedule`."""
    if not services.settings.docket_scheduler:
        logger.info("report scheduler is off (DOCKET_SCHEDULER=false)")
        return None
    reports = ReportScheduler(services)
    await reports.start()
    services.on_reschedule = reports.request_reschedule
    reports.spawn_catch_up()
    return reports


async def start(settings: Settings, *, services: Services | None = None) -> Runtime:
    """Start Docket: HTTP (or Socket Mode), event worker, outbox, scheduler, SMTP."""
    if services is None:
        services = await build_services(settings)
    runtime = Runtime(services=services)
    bolt, router = build_app(services)

    if settings.docket_process_events:
        runtime.spawn("events", EventWorker(services, router.dispatch).run(runtime.stop_event))
        alerts = AlertWorker(
            services, hooks=SlackAlertHooks(services), owner=f"{runtime.instance}:alerts"
        )
        runtime.spawn("alerts", alerts.run(runtime.stop_event))

    intake = build_intake(runtime)
    if settings.docket_process_events:
        runtime.spawn("intake", intake.run(runtime.stop_event))

    outbox = OutboxWorker(services, owner=f"{runtime.instance}:outbox")
    runtime.spawn("outbox", outbox.run(runtime.stop_event))
    runtime.stoppers.append(outbox.close)

    profit = ProfitWorker(services)
    runtime.spawn("profit", profit.run(runtime.stop_event))
    runtime.stoppers.append(profit.close)

    sla = SlaScanWorker(services)
    runtime.spawn("sla", sla.run(runtime.stop_event))
    runtime.stoppers.append(sla.close)

    reports = await start_reports(services)
    if reports is not None:
        runtime.stoppers.append(reports.stop)

    directory = DirectorySyncWorker(services)
    runtime.spawn("directory-sync", directory.run(runtime.stop_event))

    # What a mail causes in Slack is queued through the ticket-notification hooks.
    mail = MailWorker(services, hooks=SlackHooks(services))
    runtime.spawn("mail", mail.run(runtime.stop_event))
    if settings.docket_smtp_port != 0:
        smtp = SmtpServer(services)
        runtime.smtp_port = await smtp.start()
        runtime.stoppers.append(smtp.stop)

    if settings.socket_mode:
        assert settings.slack_app_token is not None
        socket = SocketModeIngress(
            bolt,
            services,
            app_token=settings.slack_app_token.get_secret_value(),
            intake_worker=intake,
        )
        runtime.stoppers.append(socket.close)
        try:
            await socket.connect()
        except BaseException:
            await runtime.stop()
            raise
        logger.info("connected to Slack in Socket Mode")
    # Health checks and monitoring alerts are served over HTTP either way; Slack's own
    # requests only when they do not come over Socket Mode.
    web_app = build_web_app(
        bolt, services, intake_worker=intake, slack_route=not settings.socket_mode
    )
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    runtime.port = sockets[0].getsockname()[1] if sockets else settings.port
    runtime.stoppers.append(runner.cleanup)
    served = "/healthz and alerts" if settings.socket_mode else "/slack/events"
    logger.info("listening on http://%s:%s (%s)", settings.host, runtime.port, served)
    return runtime


def build_intake(runtime: Runtime) -> IntakeWorker:
    """The worker for stored commands, actions and submissions (claims are leased per row)."""
    services = runtime.services
    settings = services.settings
    worker = IntakeWorker(
        services,
        make_runner(build_worker_app(services), services),
        owner=runtime.instance,
        deliver=make_deliver(services),
        capacity=settings.docket_intake_concurrency,
        lease_seconds=settings.docket_intake_lease_seconds,
        # A backlog of `/ticket <title>` quick creates is created many per transaction.
        batch=Batch(
            kind="slash_command",
            name=Command.TICKET.value,
            run=partial(run_stored_quick_creates, services),
            accepts=joins_batch,
        ),
    )
    runtime.stoppers.append(worker.drain)
    return worker
