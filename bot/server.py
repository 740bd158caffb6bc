"""HTTP ingress: `POST /slack/events` and `GET /healthz` on aiohttp.

Every request is authenticated here, before Bolt sees it: a missing, forged, tampered,
stale or malformed signature gets 401 and nothing runs or is written. Events are stored in
the database before Slack gets its 200 (processing happens from there).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import intake
from bot.alert_ingress import add_alert_routes
from bot.services import Services
from jobs.intake import IntakeWorker
from models.workspaces import probe_write

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_CLOCK_SKEW_SECONDS = 5 * 60


def check_signature(
    verifier: SignatureVerifier, body: bytes, headers: Any, *, now: float | None = None
) -> str | None:
    """Return None when the request is Slack's, else the reason it is refused."""
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        return "missing signature headers"
    # isdigit() alone accepts "²" and other digits int() refuses.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "malformed timestamp"
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return "stale timestamp"
    # Signed over the raw bytes: a body that is not UTF-8 is refused, never decoded first.
    secret = getattr(verifier, "signing_secret", "")
    digest = hmac.new(
        secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    if not _equal(f"v0={digest}", signature):
        return "bad signature"
    return None


class RefusalLog:
    """One log line per refused request, at most one every `interval` seconds; the next line
    says how many were refused in between (a flood of junk cannot flood the log)."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last = float("-inf")
        self._quiet = 0

    def refused(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._quiet += 1
            return
        more = f" ({self._quiet} more refused since the last line)" if self._quiet else ""
        logger.warning("refused a Slack request: %s%s", reason, more)
        self._last, self._quiet = now, 0


class WriteProbe:
    """Whether the database takes writes: a read-only file or a full disk still answers
    SELECT 1. A write is tried at most every `interval` seconds; between, the last verdict."""

    def __init__(self, services: Services, interval: float = 2.0) -> None:
        self.services = services
        self.interval = interval
        self._at = float("-inf")
        self._failure: str | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._at < self.interval:
                return self._failure
            try:
                async with asyncio.timeout(5.0):
                    async with self.services.transaction() as session:
                        await probe_write(session=session, workspace_id=self.services.workspace_id)
                failure = None
            except Exception as exc:
                cause = getattr(exc, "orig", None) or exc
                failure = f"write failed: {type(cause).__name__}: {str(cause)[:200]}"
                if failure != self._failure:
                    logger.error("health check: the database does not take writes (%s)", failure)
            self._failure, self._at = failure, time.monotonic()
            return failure


def _malformed() -> web.Response:
    logger.warning("refused a signed Slack request with a malformed body")
    return web.json_response({"error": "malformed body"}, status=400)


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode("utf-8", "replace"))


def build_web_app(
    bolt: AsyncApp,
    services: Services,
    *,
    intake_worker: IntakeWorker | None = None,
    slack_route: bool = True,
) -> web.Application:
    """The aiohttp application serving Slack, health checks and monitoring alerts.

    Without `slack_route` (Socket Mode: Slack's requests come over the WebSocket) only the
    health check and the alert endpoints are served."""
    secret = services.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value() if secret else "")
    intake_store = intake.IntakeStore(services)
    refusals = RefusalLog()

    async def slack_events(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            logger.warning("refused a Slack request over %d bytes", MAX_BODY_BYTES)
            raise
        reason = check_signature(verifier, body, request.headers)
        if reason is not None:
            refusals.refused(reason)
            return web.json_response({"error": "invalid request"}, status=401)
        if request.content_type == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                return web.json_response({"error": "malformed body"}, status=400)
            if not isinstance(data, dict):
                return web.json_response({"error": "malformed body"}, status=400)
            kind = data.get("type")
            if kind == "url_verification":
                return web.json_response({"challenge": data.get("challenge", "")})
            if kind == "event_callback":
                return await intake.accept_event(services, data)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _malformed()
        payload = None
        if request.content_type == intake.FORM:
            # Read once here and handed on: a signed body Bolt could not read is refused.
            payload, malformed = intake.read_form(text)
            if malformed:
                return _malformed()
        durable = await intake.accept(
            services,
            text,
            request.content_type,
            intake_worker,
            intake_store,
            payload=payload,
        )
        if durable is not None:
            return durable
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers={k: v for k, v in request.headers.items()},
        )
        if bolt_request.context.team_id not in (None, services.team_id):
            return web.json_response({"error": "unknown workspace"}, status=403)
        response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    probe = WriteProbe(services)

    async def healthz(_request: web.Request) -> web.Response:
        try:
            async with services.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            logger.warning("health check: database unreachable (%s)", type(exc).__name__)
            return web.json_response({"status": "unavailable", "database": "down"}, status=503)
        failure = await probe.check()
        if failure is not None:
            return web.json_response(
                {"status": "unavailable", "database": "not writable", "reason": failure},
                status=503,
            )
        return web.json_response(
            {"status": "ok", "database": services.engine.dialect.name, "team": services.team_id}
        )

    web_app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def close_intake(_app: web.Application) -> None:
        await intake_store.close()

    web_app.on_cleanup.append(close_intake)
    if slack_route:
        web_app.router.add_post("/slack/events", slack_events)
    web_app.router.add_get("/healthz", healthz)
    add_alert_routes(web_app, services)
    return web_app
