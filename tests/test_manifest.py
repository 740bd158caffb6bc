"""manifest.yml is a valid Slack app manifest that registers what Docket handles."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "manifest.yml"
# CI checks the repository out with a copy of shared/ beside it.
SCHEMA = REPO.parent / "shared" / "slack" / "manifest.schema.json"
REQUEST_URL = "https://docket.example.com/slack/events"

# What Docket registers listeners for; handlers/ids.py will own this list.
BOT_EVENTS = [
    "app_home_opened",
    "app_mention",
    "member_joined_channel",
    "message.channels",
    "message.groups",
    "message.im",
    "reaction_added",
]
COMMANDS = ["/ticket", "/time", "/profit", "/docket"]
BOT_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "mpim:history",
    "app_mentions:read",
    "users:read",
    "users:read.email",
    "channels:read",
    "groups:read",
    "files:write",
    "channels:join",
    "reactions:read",
    "reactions:write",
}
# Slack delivers an event only when the app holds these scopes.
EVENT_SCOPES = {
    "app_home_opened": set(),
    "app_mention": {"app_mentions:read"},
    "member_joined_channel": {"channels:read", "groups:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "message.im": {"im:history"},
    "reaction_added": {"reactions:read"},
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_manifest_validates_against_slacks_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"Slack's manifest schema is not beside the repository ({SCHEMA} is absent)")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(manifest), key=lambda e: e.json_path)
    assert [f"{e.json_path}: {e.message}" for e in errors] == []


def test_display_information(manifest: dict[str, Any]) -> None:
    display = manifest["display_information"]
    assert display["name"] == "Docket"
    assert display["description"]
    # The schema spells this pattern "regex", which JSON Schema ignores, so check it here.
    assert re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", display["background_color"])


def test_bot_user_and_app_home(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert features["bot_user"] == {"display_name": "docket", "always_online": True}
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": False,
    }


def test_slash_commands_point_at_docket(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == COMMANDS
    for command in commands:
        assert command["url"] == REQUEST_URL
        assert command["should_escape"] is False
        assert command["usage_hint"] and command["description"]


def test_message_shortcut_creates_a_ticket(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["shortcuts"] == [
        {
            "name": "Create ticket",
            "type": "message",
            "callback_id": "create_ticket_from_message",
            "description": manifest["features"]["shortcuts"][0]["description"],
        }
    ]


def test_events_and_their_scopes(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]
    assert events["request_url"] == REQUEST_URL
    assert sorted(events["bot_events"]) == BOT_EVENTS
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert scopes == BOT_SCOPES
    for event in BOT_EVENTS:
        assert EVENT_SCOPES[event] <= scopes, event


def test_settings(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": REQUEST_URL,
        "message_menu_options_url": REQUEST_URL,
    }
    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_every_subscribed_event_has_a_listener() -> None:
    """Bolt answers 404 to a subscribed event type with no listener; Slack may then disable
    the app's events. Every manifest event maps to a type in handlers.ids.EVENT_TYPES."""
    from handlers.ids import EVENT_TYPES

    manifest = yaml.safe_load(MANIFEST.read_text())
    subscribed = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {name.split(".")[0] for name in subscribed} == set(EVENT_TYPES)
