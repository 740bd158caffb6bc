"""The Bolt app factory: listeners, services injection, and authorisation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.services import Services
from handlers import (
    admin,
    conversation,
    customer_channels,
    directory_admin,
    directory_forms,
    docket_cmd,
    events,
    full_message,
    home,
    integrations_admin,
    mentions,
    outbox_admin,
    profit_cmd,
    settings_admin,
    sla_admin,
    ticket_buttons,
    ticket_command,
    ticket_form,
    ticket_notes,
    time_cmd,
)
from handlers.events import EventRouter

logger = logging.getLogger(__name__)


def register_listeners(app: AsyncApp) -> EventRouter:
    """Wire every handler package's listeners into `app`; returns the stored-event router."""
    events.register(app)
    mentions.register(app)
    ticket_command.register(app)
    ticket_form.register(app)
    ticket_buttons.register(app)
    time_cmd.register(app)
    profit_cmd.register(app)
    admin.register(app)
    conversation.register(app)
    full_message.register(app)
    home.register(app)
    outbox_admin.register(app)
    settings_admin.register(app)
    directory_admin.register(app)
    directory_forms.register(app)
    integrations_admin.register(app)
    sla_admin.register(app)
    # Last: its help answers any /docket text no other listener matched.
    docket_cmd.register(app)

    router = EventRouter()
    mentions.register_events(router)
    ticket_notes.register_events(router)
    conversation.register_events(router)
    customer_channels.register_events(router)
    home.register_events(router)
    return router


def build_app(services: Services) -> tuple[AsyncApp, EventRouter]:
    """Build the Bolt app around `services`; see `_bolt_app`."""
    return _bolt_app(services, process_before_response=False)


def build_worker_app(services: Services) -> AsyncApp:
    """The same listeners for stored requests: each runs to its end before dispatch returns.

    The intake worker dispatches a stored body here; `ack()` only records what the listener
    would have answered (the ingress answered Slack already), so handlers keep their shape.
    """
    app, _router = _bolt_app(services, process_before_response=True)
    return app


def _bolt_app(services: Services, *, process_before_response: bool) -> tuple[AsyncApp, EventRouter]:
    """Build the Bolt app around `services`.

    Signatures are checked by the HTTP ingress before anything reaches Bolt (so forged and
    stale requests are answered 401 without a handler or a log of the body), hence
    `request_verification_enabled=False` here. The bot's identity comes from `auth.test`
    at start-up, through `authorize`, so Bolt never calls Slack on a request path.
    """

    async def authorize(
        enterprise_id: str | None, team_id: str | None, **_: Any
    ) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=services.team_id,
            bot_token=services.slack.token,
            bot_user_id=services.bot_user_id,
        )

    app = AsyncApp(
        client=services.slack,
        signing_secret=(
            services.settings.slack_signing_secret.get_secret_value()
            if services.settings.slack_signing_secret
            else "socket-mode"
        ),
        authorize=authorize,
        request_verification_enabled=False,
        ignoring_self_events_enabled=False,
        url_verification_enabled=True,
        raise_error_for_unhandled_request=False,
        process_before_response=process_before_response,
    )

    @app.middleware
    async def inject_services(
        context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        context["services"] = services
        return await next()

    @app.error
    async def on_error(error: Exception, request: AsyncBoltRequest) -> None:
        logger.error("listener failed: %s", type(error).__name__, exc_info=error)

    router = register_listeners(app)
    return app, router
