"""Socket Mode ingress: Slack's envelopes over a WebSocket, through the same path as HTTP.

Every envelope goes where the same request sent over HTTP would go. An `events_api` envelope
is stored as an event (`bot.intake.accept_event`) and acknowledged after the commit. A slash
command or interactivity envelope is re-encoded to the form body Slack would have POSTed and
handed to `bot.intake.accept`: a request that writes is stored before its ack, and the ack
carries the answer the HTTP response would have carried. What `accept` leaves to Bolt (reads,
help, modal opens) is dispatched to the Bolt app as the stock Socket Mode adapter does.

An envelope the ingress refuses (another workspace, a malformed event) or could not store is
never acknowledged as if it had been taken: Slack retries it or tells the person it failed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.intake import FORM, IntakeStore, accept, accept_event, busy_response, read_form
from bot.services import Services
from jobs.intake import IntakeWorker

logger = logging.getLogger(__name__)

EVENTS_API = "events_api"
SLASH_COMMANDS = "slash_commands"
INTERACTIVE = "interactive"
PING_INTERVAL_SECONDS = 10.0


def _form_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def slash_command_body(payload: dict[str, Any]) -> str:
    """The form-urlencoded body Slack POSTs for the slash command in `payload`."""
    return urlencode({str(k): _form_value(v) for k, v in payload.items()})


def interactive_body(payload: dict[str, Any]) -> str:
    """The form-urlencoded `payload=<json>` body Slack POSTs for an interactivity payload."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def form_body(envelope_type: str, payload: dict[str, Any]) -> str | None:
    """The HTTP body of a slash command or interactivity envelope; None for other types."""
    if envelope_type == SLASH_COMMANDS:
        return slash_command_body(payload)
    if envelope_type == INTERACTIVE:
        return interactive_body(payload)
    return None


def envelope_ack(envelope_id: str, response: web.Response) -> SocketModeResponse | None:
    """The envelope's acknowledgement carrying what the HTTP response would have carried;
    None when the HTTP answer is a refusal (not 2xx): the envelope stays unacknowledged."""
    if response.status >= 300:
        return None
    body = response.body
    if not body:
        return SocketModeResponse(envelope_id=envelope_id)
    assert isinstance(body, bytes)
    return SocketModeResponse(envelope_id=envelope_id, payload=json.loads(body))


class SocketModeIngress:
    """Receives Slack's envelopes over Socket Mode (`slack_sdk`'s aiohttp client) and sends
    each through the HTTP ingress's store-then-ack path before acknowledging it."""

    def __init__(
        self,
        bolt: AsyncApp,
        services: Services,
        *,
        app_token: str,
        intake_worker: IntakeWorker | None = None,
        ping_interval: float = PING_INTERVAL_SECONDS,
    ) -> None:
        self.bolt = bolt
        self.services = services
        self.worker = intake_worker
        self.store = IntakeStore(services)
        self.client = SocketModeClient(
            app_token=app_token, web_client=services.slack, ping_interval=ping_interval
        )
        self.client.socket_mode_request_listeners.append(self.handle)

    async def connect(self) -> None:
        """Open the WebSocket. A refused app token raises here instead of retrying forever."""
        self.client.wss_uri = await self.client.issue_new_wss_url()
        await self.client.connect()

    async def close(self) -> None:
        """Stop receiving: disconnect and release the client's HTTP session, then let the
        requests being stored finish."""
        await self.client.close()
        await self.store.close()

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """Answer one envelope: store-then-ack, or Bolt for what runs inline."""
        started = time.time()
        try:
            durable = await self._durable(req)
        except Exception:
            logger.exception("a Socket Mode %s envelope could not be stored", req.type)
            durable = self._busy(req)
        if durable is not None:
            ack = envelope_ack(req.envelope_id, durable)
            if ack is None:
                logger.warning("left a %s envelope unacknowledged (%d)", req.type, durable.status)
                return
            await client.send_socket_mode_response(ack)
            return
        bolt_request = AsyncBoltRequest(
            mode="socket_mode", body=req.payload, headers=build_headers(req)
        )
        if bolt_request.context.team_id not in (None, self.services.team_id):
            logger.warning("refused a %s envelope for another workspace", req.type)
            return
        bolt_response = await self.bolt.async_dispatch(bolt_request)
        await send_async_response(client, req, bolt_response, started)

    async def _durable(self, req: SocketModeRequest) -> web.Response | None:
        payload = req.payload
        if req.type == EVENTS_API:
            if payload.get("type") == "event_callback":
                return await accept_event(self.services, payload)
            return None
        text = form_body(req.type, payload)
        if text is None:
            return None
        form, _malformed = read_form(text)
        return await accept(self.services, text, FORM, self.worker, self.store, payload=form)

    def _busy(self, req: SocketModeRequest) -> web.Response | None:
        # An event that could not be stored stays unacknowledged: Slack sends it again.
        text = form_body(req.type, req.payload)
        form = read_form(text)[0] if text is not None else None
        return busy_response(form) if form is not None else None
