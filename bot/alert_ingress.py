"""`POST /integrations/alerts/{source}`: monitoring alerts in, stored before they are answered.

Order of checks: size (413 over 1 MB), the source's secret (401: a bearer token, or an
HMAC-SHA256 of the body; nothing is stored), the body (400 with the reason). A valid body is
stored (unique on source and body hash, so a re-sent body is a no-op) and answered 202; the
alert worker turns it into tickets from the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.services import Services
from models.alert_formats import AlertFormatError, body_hash, check_auth, decode_body, parse_alerts
from models.alerts import source_by_name, store_delivery

logger = logging.getLogger(__name__)

MAX_ALERT_BODY_BYTES = 1024 * 1024
ROUTE = "/integrations/alerts/{source}"
SOURCE_CACHE_SECONDS = 5.0
SOURCE_CACHE_MAX = 1000


@dataclass(frozen=True)
class _Source:
    id: int
    customer_label: str
    secret: str
    secret_hash: str


def _refuse(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def alert_handler(services: Services) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The request handler, bound to the running services."""

    cache: dict[str, tuple[float, _Source | None]] = {}

    async def lookup(name: str) -> _Source | None:
        # Sources change rarely: a short-lived copy saves a database round trip per alert.
        now = time.monotonic()
        hit = cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with services.read() as session:
            row = await source_by_name(
                session=session, workspace_id=services.workspace_id, name=name
            )
        found = None
        if row is not None and row.id is not None:
            found = _Source(row.id, row.customer_label, row.secret, row.secret_hash)
        if len(cache) >= SOURCE_CACHE_MAX:
            cache.clear()
        cache[name] = (now + SOURCE_CACHE_SECONDS, found)
        return found

    async def receive_alerts(request: web.Request) -> web.Response:
        name = request.match_info.get("source", "")
        if (request.content_length or 0) > MAX_ALERT_BODY_BYTES:
            logger.warning("refused an alert body over %d bytes", MAX_ALERT_BODY_BYTES)
            return _refuse(413, "body larger than 1 MB")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            logger.warning("refused an alert body over %d bytes", MAX_ALERT_BODY_BYTES)
            return _refuse(413, "body larger than 1 MB")
        if len(body) > MAX_ALERT_BODY_BYTES:
            return _refuse(413, "body larger than 1 MB")
        source = await lookup(name)
        if source is None:
            logger.warning("refused alerts for an unknown source")
            return _refuse(401, "unauthorized")
        reason = check_auth(
            secret=source.secret, stored_hash=source.secret_hash, body=body, headers=request.headers
        )
        if reason is not None:
            logger.warning("refused alerts for source %s: %s", name, reason)
            return _refuse(401, "unauthorized")
        try:
            data = decode_body(body)
            alerts = parse_alerts(data, customer_label=source.customer_label)
        except AlertFormatError as exc:
            logger.info("refused a malformed alert body for source %s: %s", name, exc)
            return _refuse(400, str(exc))
        async with services.transaction() as session:
            stored = await store_delivery(
                session=session,
                workspace_id=services.workspace_id,
                source_id=source.id,
                body_hash=body_hash(body),
                body=data,
                alert_count=len(alerts),
                at=services.now(),
            )
        return web.json_response(
            {"status": "accepted", "alerts": len(alerts), "duplicate": stored is None},
            status=202,
        )

    return receive_alerts


def add_alert_routes(web_app: web.Application, services: Services) -> None:
    """Mount the alert intake on the server's application."""
    web_app.router.add_post(ROUTE, alert_handler(services))
