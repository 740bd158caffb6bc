"""Slack and mail adapters. `register(app)` wires every listener and returns the event router."""

from __future__ import annotations

import importlib
import logging

from slack_bolt.async_app import AsyncApp

from handlers.events import EventRouter

logger = logging.getLogger(__name__)

# Modules that expose `register(app)`, and optionally `register_events(router)`.
LISTENER_MODULES = (
    "handlers.events",
    "handlers.mentions",
    "handlers.tickets",
    "handlers.time_cmd",
    "handlers.profit_cmd",
    "handlers.admin",
    "handlers.conversation",
    "handlers.home",
    "handlers.outbox_admin",
    "handlers.settings_admin",
    "handlers.directory_admin",
    "handlers.sla_admin",
    "handlers.docket_cmd",  # last: its help answers any /docket text nobody else matched
)


def register(app: AsyncApp) -> EventRouter:
    router = EventRouter()
    for name in LISTENER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)
        if hasattr(module, "register_events"):
            module.register_events(router)
    return router
