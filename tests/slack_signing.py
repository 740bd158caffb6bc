"""Signed requests exactly as Slack sends them to Docket, for end-to-end tests.

`sign` is Slack's v0 request signature. `SlackRequests` builds the bodies and headers Slack
sends for slash commands, interactivity (block actions, modal submissions, message shortcuts,
options requests) and the Events API, each returned as a `SignedRequest` of
`(body, headers)`. Every builder takes `timestamp=` and `signature=` so a test can replay
or forge a request.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode

import aiohttp

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# A closed loopback port: a response_url nobody set up fails fast instead of reaching the internet.
UNREACHABLE_RESPONSE_BASE = "http://127.0.0.1:9/response/"
_TRIGGER_RE = re.compile(r"^(\d{13})\.\d+\.[0-9a-f]{32}$")


def sign(signing_secret: str, body: bytes, timestamp: int | str) -> str:
    """Return Slack's v0 signature of `body` sent at `timestamp` (Unix seconds)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def make_trigger_id(*, now: float | None = None) -> str:
    """Return a trigger_id shaped like Slack's whose first part records when it was issued.

    The emulator reads the issue time back (`trigger_issued_at`) to refuse triggers older
    than Slack's three seconds.
    """
    issued = time.time() if now is None else now
    return f"{int(issued * 1000)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}"


def trigger_issued_at(trigger_id: str) -> float | None:
    """Return the Unix time a `make_trigger_id` trigger was issued, or None for any other id."""
    match = _TRIGGER_RE.match(trigger_id)
    return int(match.group(1)) / 1000 if match else None


def dm_channel_id(user_id: str) -> str:
    """The id of the bot's DM with `user_id`; the emulator's conversations.open answers it too."""
    return f"D{user_id}"


class SignedRequest(NamedTuple):
    """A request body and the headers Slack sends with it."""

    body: bytes
    headers: dict[str, str]


def envelope_payload(req: SignedRequest) -> dict[str, Any]:
    """What Slack puts in a Socket Mode envelope for the same request: a slash command's
    fields, an interactivity payload, or the `event_callback` body."""
    if req.headers["Content-Type"] == JSON:
        return dict(json.loads(req.body))
    fields = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
    return dict(json.loads(fields["payload"])) if "payload" in fields else fields


class SlackReply(NamedTuple):
    """What Docket answered to a signed request."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> SlackReply:
    """POST a built request to Docket and return its status, body and headers."""
    async with session.post(url, data=body, headers=dict(headers)) as response:
        return SlackReply(response.status, await response.read(), response.headers)


def text_value(value: str | None) -> dict[str, Any]:
    """State value of a plain_text_input, as Slack puts it in `view.state.values`."""
    return {"type": "plain_text_input", "value": value}


def select_value(value: str | None, text: str | None = None) -> dict[str, Any]:
    """State value of a static_select (None: nothing selected)."""
    if value is None:
        return {"type": "static_select", "selected_option": None}
    return {"type": "static_select", "selected_option": _option(value, text)}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


def _find_element(blocks: Any, action_id: str) -> tuple[str | None, dict[str, Any] | None]:
    """Find the block_id and element carrying `action_id` in a message's or view's blocks."""
    for block in blocks or []:
        candidates = [*block.get("elements", []), block.get("accessory"), block.get("element")]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None


class SlackRequests:
    """Builds Slack's inbound requests for one workspace, signed with `signing_secret`."""

    def __init__(
        self,
        signing_secret: str,
        *,
        team_id: str = "T0001",
        team_domain: str = "acme",
        response_base: str | None = None,
        api_app_id: str = "A0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        verification_token: str = "verification-token",
    ) -> None:
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.team_domain = team_domain
        self.response_base = response_base or UNREACHABLE_RESPONSE_BASE
        self.api_app_id = api_app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.verification_token = verification_token
        self._seq = itertools.count(1)

    # -- signing ------------------------------------------------------------------------

    def signed(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> SignedRequest:
        """Sign any body; `timestamp` defaults to now, `signature` overrides the real one."""
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature or sign(self.signing_secret, body, ts),
            **(extra_headers or {}),
        }
        return SignedRequest(body, headers)

    def response_url(self, kind: str = "hook") -> str:
        """A fresh response_url under `response_base`, e.g. `.../response/cmd-3`."""
        return f"{self.response_base}{kind}-{next(self._seq)}"

    # -- slash commands -------------------------------------------------------------------

    def slash_command(
        self,
        command: str = "/ticket",
        text: str = "",
        *,
        user_id: str = "U1",
        user_name: str = "alice",
        channel_id: str = "C1",
        channel_name: str | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
        timestamp: int | str | None = None,
        signature: str | None = None,
    ) -> SignedRequest:
        """A slash command invocation, form-encoded with every field Slack sends."""
        fields = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name or _channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.response_url("cmd"),
            "trigger_id": trigger_id or make_trigger_id(),
        }
        return self.signed(
            urlencode(fields).encode(), FORM, timestamp=timestamp, signature=signature
        )

    # -- interactivity --------------------------------------------------------------------

    def interactivity(
        self,
        payload: Mapping[str, Any],
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
    ) -> SignedRequest:
        """An interactivity request: the form body `payload=<json>`."""
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return self.signed(body, FORM, timestamp=timestamp, signature=signature)

    def block_actions(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user_id: str = "U1",
        user_name: str | None = None,
        block_id: str | None = None,
        selected_option: dict[str, Any] | str | None = None,
        action_type: str | None = None,
        action: Mapping[str, Any] | None = None,
        message: Mapping[str, Any] | None = None,
        channel_id: str | None = None,
        view: Mapping[str, Any] | None = None,
        state_values: dict[str, Any] | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> dict[str, Any]:
        """A `block_actions` payload: a button (default) or a select (`selected_option`).

        With `message` (and its `channel_id`) the action comes from a message; with `view`
        from a modal or the Home tab. The block_id is looked up in their blocks when not
        given; `action` adds or overrides fields of the action (e.g. `selected_user`).
        """
        blocks = (view or {}).get("blocks") or (message or {}).get("blocks")
        found_block_id, element = _find_element(blocks, action_id)
        kind = action_type or (element or {}).get("type")
        kind = kind or ("button" if selected_option is None else "static_select")
        act: dict[str, Any] = {
            "type": kind,
            "action_id": action_id,
            "block_id": block_id or found_block_id or "docket-block",
            "action_ts": f"{time.time():.6f}",
        }
        if kind == "button":
            act["text"] = (element or {}).get("text") or {"type": "plain_text", "text": action_id}
        if value is not None:
            act["value"] = value
        if selected_option is not None:
            act["selected_option"] = (
                _option(selected_option) if isinstance(selected_option, str) else selected_option
            )
        act.update(action or {})

        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user(user_id, user_name),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": trigger_id or make_trigger_id(),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view.get("id")}
            payload["view"] = dict(view)
            values = state_values if state_values is not None else _view_values(view)
            payload["state"] = {"values": values}
        else:
            channel = channel_id or (message or {}).get("channel")
            container: dict[str, Any] = {"type": "message", "channel_id": channel}
            if message is not None:
                container.update(message_ts=message.get("ts"), is_ephemeral=False)
                payload["message"] = dict(message)
            else:
                container["is_ephemeral"] = True
            payload["container"] = container
            if channel:
                payload["channel"] = {"id": channel, "name": _channel_name(channel)}
            payload["state"] = {"values": state_values or {}}
            payload["response_url"] = response_url or self.response_url("action")
        payload["actions"] = [act]
        return payload

    def view_submission(
        self,
        callback_id: str,
        state_values: dict[str, Any],
        private_metadata: str | None = None,
        *,
        user_id: str = "U1",
        user_name: str | None = None,
        view_id: str | None = None,
        view: Mapping[str, Any] | None = None,
        trigger_id: str | None = None,
        response_urls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A `view_submission` payload.

        `view` (e.g. the one the emulator returned from views.open) supplies the id, blocks,
        title and metadata; explicit arguments win. `private_metadata` None keeps the view's
        (or "" without a view).
        """
        base = dict(view or {})
        vid = view_id or base.get("id") or f"V{next(self._seq):08d}"
        submitted = {
            "id": vid,
            "team_id": self.team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "title": {"type": "plain_text", "text": "Docket", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": vid,
            "app_id": self.api_app_id,
            "external_id": "",
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            **base,
        }
        submitted["id"] = vid
        submitted["callback_id"] = callback_id
        submitted["state"] = {"values": state_values}
        if private_metadata is not None:
            submitted["private_metadata"] = private_metadata
        return {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user_id, user_name),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "trigger_id": trigger_id or make_trigger_id(),
            "view": submitted,
            "response_urls": response_urls or [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def message_action(
        self,
        callback_id: str,
        message: Mapping[str, Any],
        channel_id: str,
        user_id: str = "U1",
        *,
        user_name: str | None = None,
        channel_name: str | None = None,
        trigger_id: str | None = None,
        response_url: str | None = None,
    ) -> dict[str, Any]:
        """A message shortcut (`message_action`) payload on `message` in `channel_id`."""
        msg = {"type": "message", **message}
        msg.setdefault("ts", f"{time.time():.6f}")
        return {
            "type": "message_action",
            "token": self.verification_token,
            "action_ts": f"{time.time():.6f}",
            "team": self._team(),
            "user": self._user(user_id, user_name),
            "channel": {"id": channel_id, "name": channel_name or _channel_name(channel_id)},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": trigger_id or make_trigger_id(),
            "response_url": response_url or self.response_url("shortcut"),
            "message_ts": msg["ts"],
            "message": msg,
        }

    def block_suggestion(
        self,
        action_id: str,
        value: str,
        user_id: str = "U1",
        view: Mapping[str, Any] | None = None,
        *,
        user_name: str | None = None,
        block_id: str | None = None,
        channel_id: str | None = None,
        message: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An options request (`block_suggestion`) for an external select, typed `value`."""
        blocks = (view or {}).get("blocks") or (message or {}).get("blocks")
        found_block_id, _ = _find_element(blocks, action_id)
        payload: dict[str, Any] = {
            "type": "block_suggestion",
            "user": self._user(user_id, user_name),
            "api_app_id": self.api_app_id,
            "token": self.verification_token,
            "action_id": action_id,
            "block_id": block_id or found_block_id or "docket-block",
            "value": value,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view.get("id")}
            payload["view"] = dict(view)
        else:
            channel = channel_id or (message or {}).get("channel")
            payload["container"] = {
                "type": "message",
                "message_ts": (message or {}).get("ts"),
                "channel_id": channel,
                "is_ephemeral": message is None,
            }
            if channel:
                payload["channel"] = {"id": channel, "name": _channel_name(channel)}
            if message is not None:
                payload["message"] = dict(message)
        return payload

    # -- Events API -----------------------------------------------------------------------

    def event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        event_time: int | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | str | None = None,
        signature: str | None = None,
    ) -> SignedRequest:
        """An `event_callback` envelope around `event`; `retry_num` marks Slack's retries."""
        envelope = {
            "token": self.verification_token,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()) if event_time is None else event_time,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(24)}",
        }
        extra = None
        if retry_num is not None:
            extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.signed(
            json.dumps(envelope).encode(),
            JSON,
            timestamp=timestamp,
            signature=signature,
            extra_headers=extra,
        )

    def url_verification(
        self,
        challenge: str,
        *,
        timestamp: int | str | None = None,
        signature: str | None = None,
    ) -> SignedRequest:
        """The handshake Slack sends when the events request URL is saved."""
        body = {
            "token": self.verification_token,
            "challenge": challenge,
            "type": "url_verification",
        }
        return self.signed(
            json.dumps(body).encode(), JSON, timestamp=timestamp, signature=signature
        )

    # Inner events: pass them to `event()`.

    def message_event(
        self,
        text: str,
        *,
        channel: str = "C1",
        user: str = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        channel_type: str = "channel",
    ) -> dict[str, Any]:
        """A `message` event from a person (`channel_type` "im" for a DM to Docket)."""
        ts = ts or f"{time.time():.6f}"
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.team_id,
            "channel_type": channel_type,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        return event

    def app_mention(
        self, text: str, *, channel: str = "C1", user: str = "U1", ts: str | None = None
    ) -> dict[str, Any]:
        """An `app_mention` event (Slack sends a `message` event for it too)."""
        ts = ts or f"{time.time():.6f}"
        return {
            "type": "app_mention",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.team_id,
        }

    def app_home_opened(self, user: str = "U1", *, tab: str = "home") -> dict[str, Any]:
        """An `app_home_opened` event for `user`."""
        return {
            "type": "app_home_opened",
            "user": user,
            "channel": dm_channel_id(user),
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }

    def member_joined_channel(
        self, user: str, *, channel: str = "C1", channel_type: str = "C"
    ) -> dict[str, Any]:
        """A `member_joined_channel` event."""
        return {
            "type": "member_joined_channel",
            "user": user,
            "channel": channel,
            "channel_type": channel_type,
            "team": self.team_id,
            "event_ts": f"{time.time():.6f}",
        }

    # -- helpers --------------------------------------------------------------------------

    def _team(self) -> dict[str, str]:
        return {"id": self.team_id, "domain": self.team_domain}

    def _user(self, user_id: str, user_name: str | None) -> dict[str, str]:
        name = user_name or user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}


def _channel_name(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "directmessage"
    return "privategroup" if channel_id.startswith("G") else channel_id.lower()


def _view_values(view: Mapping[str, Any]) -> dict[str, Any]:
    state = view.get("state") or {}
    values = state.get("values") if isinstance(state, dict) else None
    return dict(values or {})
