"""A Slack Web API emulator for Docket's tests: a real aiohttp server on 127.0.0.1.

Point slack_sdk at `emu.api_url` (Docket's `SLACK_API_URL`). The emulator answers the methods
Docket calls with Slack's response shapes, checks the bot token, required arguments and Block
Kit limits, records every call for assertions (`calls`, `wait_for`), and injects Slack's
failure modes on demand: API errors, 429 with Retry-After, per-channel message rate limits,
5xx, slow answers and a server that is down. It also receives `respond()` webhooks at
`emu.response_url(name)` and file uploads at the URLs files.getUploadURLExternal hands out.

Socket Mode: `apps.connections.open` (with the app-level token `emu.app_token`) hands out a
`ws://` URL on the same server; a client that connects gets Slack's `hello`, and a test pushes
envelopes (`send_envelope`) and reads back the client's acknowledgements (`wait_for_ack`).

Leniency, on purpose: any channel id exists unless the test declares it missing; chat.update
and chat.delete need a message the bot posted (or `add_message`), while reactions.add and
chat.getPermalink accept any well-formed ts, because they also target people's messages.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import hashlib
import itertools
import json
import math
import mimetypes
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.slack_signing import dm_channel_id, trigger_issued_at

Surface = Literal["message", "modal", "home"]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELD = 2000
MAX_SECTION_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_MODAL_TITLE = 24
MAX_MODAL_BUTTON = 24
MAX_PRIVATE_METADATA = 3000
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_MESSAGE_TEXT = 40000
MAX_ID = 255

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "call",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
_SELECTS_WITH_OPTIONS = frozenset({"static_select", "multi_static_select"})
_PLACEHOLDER_ELEMENTS = frozenset(
    {
        "static_select",
        "multi_static_select",
        "external_select",
        "multi_external_select",
        "users_select",
        "multi_users_select",
        "conversations_select",
        "multi_conversations_select",
        "channels_select",
        "multi_channels_select",
        "plain_text_input",
        "datepicker",
        "timepicker",
        "email_text_input",
        "url_text_input",
        "number_input",
    }
)
_TS_RE = re.compile(r"^\d+\.\d+$")
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]+$")
# Fields slack_sdk sends as JSON strings inside form bodies.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")
_RATED_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})
_WEBHOOK_METHODS = frozenset({"response_url", "file_upload"})
# Methods called with the app-level token (xapp-), which every other method refuses.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Interactivity payloads whose envelope accepts a response payload (Slack's documentation).
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


# ---------------------------------------------------------------------------------------
# Block Kit validation
# ---------------------------------------------------------------------------------------


class _Checker:
    """Collects Slack-style error strings, each ending in a JSON pointer."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.block_ids: set[str] = set()

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def length(self, value: Any, limit: int, pointer: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", pointer)

    def text(
        self, obj: Any, limit: int, pointer: str, *, plain_only: bool = False, required=True
    ) -> None:
        if obj is None:
            if required:
                self.fail("missing required field: text", pointer)
            return
        if not isinstance(obj, dict):
            self.fail("must be a text object", pointer)
            return
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if obj.get("type") not in allowed:
            self.fail(f"must be one of {', '.join(allowed)}", f"{pointer}/type")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.fail("must be more than 0 characters", f"{pointer}/text")
        else:
            self.length(text, limit, f"{pointer}/text")

    def items(self, value: Any, limit: int, pointer: str, *, minimum: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self.fail("must be an array", pointer)
            return []
        if len(value) > limit:
            self.fail(f"must provide no more than {limit} items", pointer)
        if len(value) < minimum:
            self.fail(f"must provide at least {minimum} items", pointer)
        return value

    def blocks(self, blocks: Any, limit: int, pointer: str) -> None:
        for index, block in enumerate(self.items(blocks, limit, pointer)):
            self.block(block, f"{pointer}/{index}")

    def block(self, block: Any, pointer: str) -> None:
        if not isinstance(block, dict):
            self.fail("must be an object", pointer)
            return
        kind = block.get("type")
        if kind not in KNOWN_BLOCK_TYPES:
            self.fail(f"unsupported type: {kind!r}", f"{pointer}/type")
            return
        block_id = block.get("block_id")
        if block_id is not None:
            self.length(block_id, MAX_ID, f"{pointer}/block_id")
            if block_id in self.block_ids:
                self.fail(f"duplicate block_id: {block_id}", f"{pointer}/block_id")
            self.block_ids.add(block_id)
        if kind == "section":
            if block.get("text") is None and block.get("fields") is None:
                self.fail("must provide either text or fields", pointer)
            self.text(block.get("text"), MAX_SECTION_TEXT, f"{pointer}/text", required=False)
            if block.get("fields") is not None:
                fields = self.items(block["fields"], MAX_SECTION_FIELDS, f"{pointer}/fields")
                for i, item in enumerate(fields):
                    self.text(item, MAX_SECTION_FIELD, f"{pointer}/fields/{i}")
            if block.get("accessory") is not None:
                self.element(block["accessory"], f"{pointer}/accessory")
        elif kind == "header":
            self.text(block.get("text"), MAX_HEADER_TEXT, f"{pointer}/text", plain_only=True)
        elif kind == "actions":
            elements = self.items(block.get("elements"), 25, f"{pointer}/elements", minimum=1)
            for i, element in enumerate(elements):
                self.element(element, f"{pointer}/elements/{i}")
        elif kind == "context":
            elements = self.items(block.get("elements"), 10, f"{pointer}/elements", minimum=1)
            for i, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "image":
                    continue
                self.text(element, MAX_SECTION_TEXT, f"{pointer}/elements/{i}")
        elif kind == "input":
            self.text(block.get("label"), 2000, f"{pointer}/label", plain_only=True)
            self.text(block.get("hint"), 2000, f"{pointer}/hint", plain_only=True, required=False)
            if block.get("element") is None:
                self.fail("missing required field: element", pointer)
            else:
                self.element(block["element"], f"{pointer}/element")
        elif kind == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                self.fail("missing required field: image_url", pointer)
            self.length(block.get("image_url"), 3000, f"{pointer}/image_url")
            alt = block.get("alt_text")
            if not isinstance(alt, str) or not alt:
                self.fail("missing required field: alt_text", f"{pointer}/alt_text")
            self.length(alt, 2000, f"{pointer}/alt_text")
        elif kind == "markdown":
            if not isinstance(block.get("text"), str) or not block["text"]:
                self.fail("missing required field: text", f"{pointer}/text")
            self.length(block.get("text"), 12000, f"{pointer}/text")
        elif kind == "rich_text":
            self.items(block.get("elements"), 1000, f"{pointer}/elements")

    def element(self, element: Any, pointer: str) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.fail("must be an element object with a type", pointer)
            return
        kind = element["type"]
        self.length(element.get("action_id"), MAX_ID, f"{pointer}/action_id")
        if kind == "button":
            self.text(element.get("text"), MAX_BUTTON_TEXT, f"{pointer}/text", plain_only=True)
            self.length(element.get("value"), 2000, f"{pointer}/value")
            self.length(element.get("url"), 3000, f"{pointer}/url")
            if element.get("style") not in (None, "primary", "danger"):
                self.fail("must be one of primary, danger", f"{pointer}/style")
        if kind in _PLACEHOLDER_ELEMENTS:
            self.text(element.get("placeholder"), 150, f"{pointer}/placeholder", required=False)
        if kind in _SELECTS_WITH_OPTIONS:
            has_options = element.get("options") is not None
            has_groups = element.get("option_groups") is not None
            if has_options == has_groups:
                self.fail("must provide exactly one of options or option_groups", pointer)
        if kind == "plain_text_input":
            for key in ("max_length", "min_length"):
                value = element.get(key)
                if isinstance(value, int) and not 0 <= value <= 3000:
                    self.fail("must be between 0 and 3000", f"{pointer}/{key}")
        limits = {"overflow": 5, "radio_buttons": 10, "checkboxes": 10}
        if element.get("options") is not None:
            self.options(element["options"], limits.get(kind, MAX_OPTIONS), f"{pointer}/options")
        if element.get("option_groups") is not None:
            groups = self.items(element["option_groups"], MAX_OPTIONS, f"{pointer}/option_groups")
            for i, group in enumerate(groups):
                group_pointer = f"{pointer}/option_groups/{i}"
                if not isinstance(group, dict):
                    self.fail("must be an object", group_pointer)
                    continue
                self.text(group.get("label"), MAX_OPTION_TEXT, f"{group_pointer}/label")
                self.options(group.get("options"), MAX_OPTIONS, f"{group_pointer}/options")
        if element.get("initial_option") is not None:
            self.options([element["initial_option"]], 1, f"{pointer}/initial_option")

    def options(self, options: Any, limit: int, pointer: str) -> None:
        for i, option in enumerate(self.items(options, limit, pointer)):
            option_pointer = f"{pointer}/{i}"
            if not isinstance(option, dict):
                self.fail("must be an option object", option_pointer)
                continue
            self.text(option.get("text"), MAX_OPTION_TEXT, f"{option_pointer}/text")
            value = option.get("value")
            if value is None and "url" not in option:
                self.fail("missing required field: value", option_pointer)
            self.length(value, MAX_OPTION_VALUE, f"{option_pointer}/value")

    def view(self, view: Any, pointer: str) -> None:
        if not isinstance(view, dict):
            self.fail("must be an object", pointer)
            return
        kind = view.get("type")
        if kind not in ("modal", "home"):
            self.fail("must be one of modal, home", f"{pointer}/type")
        if kind == "modal":
            title = view.get("title")
            self.text(title, MAX_MODAL_TITLE, f"{pointer}/title", plain_only=True)
            for key in ("submit", "close"):
                self.text(
                    view.get(key),
                    MAX_MODAL_BUTTON,
                    f"{pointer}/{key}",
                    plain_only=True,
                    required=False,
                )
            blocks = view.get("blocks")
            blocks = blocks if isinstance(blocks, list) else []
            has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
            if has_input and view.get("submit") is None:
                self.fail("submit is required when an input block is present", pointer)
        self.length(
            view.get("private_metadata"), MAX_PRIVATE_METADATA, f"{pointer}/private_metadata"
        )
        self.length(view.get("callback_id"), MAX_ID, f"{pointer}/callback_id")
        self.length(view.get("external_id"), MAX_ID, f"{pointer}/external_id")
        self.blocks(view.get("blocks"), MAX_VIEW_BLOCKS, f"{pointer}/blocks")


def validate_blocks(blocks: Any, surface: Surface = "message") -> list[str]:
    """Check blocks against Slack's Block Kit limits for `surface`; return Slack-style errors.

    An empty list means Slack would accept them. Limits: 50 blocks in a message, 100 in a
    modal or the Home tab, section text 3,000, header 150, button text 75, 100 options,
    known block types and unique block_ids.
    """
    checker = _Checker()
    limit = MAX_MESSAGE_BLOCKS if surface == "message" else MAX_VIEW_BLOCKS
    checker.blocks(blocks, limit, "/blocks")
    return checker.errors


def validate_view(view: Any) -> list[str]:
    """Check a modal or Home tab view (title 24, private_metadata 3,000, 100 blocks, ...)."""
    checker = _Checker()
    checker.view(view, "/view")
    return checker.errors


# ---------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request the emulator answered.

    `method` is the Web API method, or "response_url" / "file_upload" for webhooks and
    uploads; `args` are the decoded arguments (JSON-string fields such as blocks parsed,
    token removed); `at` is `time.monotonic()` on arrival; `status` and `response` are what
    the emulator answered.
    """

    method: str
    args: dict[str, Any]
    at: float
    headers: CIMultiDictProxy[str]
    path: str = ""
    status: int = 200
    response: dict[str, Any] | None = None
    token: str | None = None  # the bot token the call was made with (Web API calls)

    @property
    def ok(self) -> bool:
        """True when the request was accepted (HTTP 2xx and, for the Web API, `ok: true`)."""
        return self.status < 300 and (self.response is None or self.response.get("ok") is True)


@dataclass
class Upload:
    """A file handed out by files.getUploadURLExternal, filled by the upload and completion."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None
    completed: bool = False


@dataclass
class SocketConnection:
    """One Socket Mode WebSocket a client opened with a ticket from apps.connections.open."""

    ws: web.WebSocketResponse
    ticket: str
    opened_at: float
    ended: bool = False  # the client went away (closed, or its process died)

    @property
    def closed(self) -> bool:
        return self.ended or self.ws.closed


@dataclass
class _Fault:
    kind: Literal["fail", "ratelimit", "server", "body", "late"]
    method: str | None
    remaining: int | None
    error: str = ""
    retry_after: int = 1
    status: int = 500
    body: bytes = b""
    delay: float = 0.0


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body = {"ok": False, "error": error, **extra}


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def _missing(field_name: str) -> _ApiError:
    return _ApiError(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] missing required field: {field_name}"]},
    )


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


# ---------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------


class SlackEmulator:
    """Slack's Web API on a loopback port, with recording and fault injection.

    Use `async with SlackEmulator() as emu:` (or `start()`/`stop()`), then give Docket
    `emu.api_url` as `SLACK_API_URL` and `emu.token` as the bot token.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        team_id: str = "T0001",
        team_name: str = "Acme IT",
        team_domain: str = "acme",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "docket",
        app_id: str = "A0001",
        app_token: str = "xapp-1-A0001-1-test",
    ) -> None:
        self.token = token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.app_token = app_token

        self.calls: list[Call] = []
        self.missing_channels: set[str] = set()
        self.not_in_channels: set[str] = set()
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.uploads: list[Upload] = []
        self.reactions: dict[tuple[str, str], list[str]] = {}
        self.message_times: dict[str, list[float]] = {}
        self.ratelimited_count = 0
        self.trigger_ttl: float | None = 3.0
        self.expired_trigger_ids: set[str] = set()

        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._posted: list[tuple[str, str]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._opened_dms: set[str] = set()
        self._faults: list[_Fault] = []
        self._delay = 0.0
        self._channel_interval: float | None = None
        self._last_accepted: dict[str, float] = {}
        self._ts_seq = itertools.count(100, 100)
        self._ids = itertools.count(1)
        self._down = False
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._cond: asyncio.Condition | None = None
        self._bots: dict[str, dict[str, Any]] = {}
        self.sockets: list[SocketConnection] = []
        self.envelopes: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self._tickets: set[str] = set()
        self.add_user(bot_user_id, name=bot_name, real_name="Docket", is_bot=True)

    def add_bot(self, token: str, *, team_id: str, team_name: str, bot_user_id: str) -> None:
        """Accept a second bot token, installed in another workspace: `auth.test` with it
        answers that team; every call records the token it came with (`Call.token`)."""
        self._bots[token] = {"team_id": team_id, "team": team_name, "user_id": bot_user_id}
        self.add_user(bot_user_id, name=self.bot_name, real_name="Docket", is_bot=True)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a port the OS picks."""
        self._cond = asyncio.Condition()
        # Chart uploads exceed aiohttp's 1 MiB default body size.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{name}", self._handle_response_url)
        app.router.add_get("/link/", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def stop(self) -> None:
        """Close every connection and free the port."""
        if self._runner is not None:
            for conn in self.sockets:
                await conn.ws.close()
            self._drop_connections()
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The loopback port, stable across `set_down`."""
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL with its trailing slash, for slack_sdk's `base_url`."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url the emulator receives; "" gives the base for `SlackRequests`."""
        return f"{self.base_url}/response/{name}"

    async def _listen(self) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        self._site = site
        self._port = self._runner.addresses[0][1]

    def _drop_connections(self) -> None:
        server = self._runner.server if self._runner else None
        for connection in server.connections if server else []:
            connection.force_close()

    # -- test set-up ----------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/London",
        is_admin: bool = False,
        team_id: str | None = None,
        is_stranger: bool = False,
    ) -> dict[str, Any]:
        """Register a user for users.info and users.lookupByEmail; returns Slack's user object.

        `team_id` of another organisation makes a Slack Connect user; `is_stranger` one whose
        organisation shares nothing else with ours (Slack answers with few fields)."""
        name = name or user_id.lower()
        real_name = real_name or name
        now = datetime.now(UTC).astimezone(ZoneInfo(tz))
        offset = now.utcoffset()
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": name,
            "display_name_normalized": name,
            "team": self.team_id,
        }
        if email is not None:
            profile["email"] = email
        if is_bot:
            profile["bot_id"] = self.bot_id if user_id == self.bot_user_id else f"B{user_id}"
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name,
            "tz": tz,
            "tz_label": now.tzname(),
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_admin": is_admin,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": profile,
        }
        if team_id is not None:
            user["team_id"] = profile["team"] = team_id
        if is_stranger:
            # What Slack tells about a user of an organisation we share a channel with only.
            user = {"id": user_id, "team_id": team_id or "TSTRANGER", "is_stranger": True}
            user["profile"] = {"real_name": real_name, "display_name": name}
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_private: bool = False,
        members: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Give a channel a name, privacy and members (unregistered channels exist anyway)."""
        self.channels[channel_id] = {
            "name": name or channel_id.lower(),
            "is_private": is_private,
            "members": list(members),
        }
        return self._channel_info(channel_id)

    def add_message(
        self,
        channel: str,
        text: str = "",
        *,
        user: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """Store a message as if it had been posted, e.g. for chat.update; returns it."""
        message = self._new_message(channel, text=text, blocks=blocks, thread_ts=thread_ts)
        if user is not None:
            message.update(user=user)
            message.pop("bot_id", None)
            message.pop("app_id", None)
        return copy.deepcopy(message)

    # -- assertions -----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one method, oldest first."""
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages posted with chat.postMessage since `clear()`, as Slack now stores them.

        Updates show, deleted messages are gone, each carries its "channel", and blocks have
        block_ids filled in as Slack does; the call args keep exactly what Docket sent.
        """
        found = []
        for key in self._posted:
            message = self._messages.get(key)
            if message is not None and (channel is None or key[0] == channel):
                found.append({**copy.deepcopy(message), "channel": key[0]})
        return found

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral) since `clear()`, with channel and user."""
        return [e for e in self._ephemerals if channel is None or e["channel"] == channel]

    def responses(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies posted to `response_url(name)` (all response URLs when None)."""
        suffix = None if name is None else f"/response/{name}"
        return [
            c.args
            for c in self.calls
            if c.method == "response_url" and (suffix is None or c.path == suffix)
        ]

    def files(self, channel: str | None = None) -> list[Upload]:
        """Completed uploads, optionally only those shared to `channel`."""
        return [
            u
            for u in self.uploads
            if u.completed and (channel is None or channel in (u.channel_id, *u.channels))
        ]

    def max_rate(self, channel: str, window: float = 1.0) -> int:
        """Most messages accepted for `channel` within any `window` seconds."""
        times = self.message_times.get(channel, [])
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def clear(self) -> None:
        """Forget what was recorded (calls, message list, rate counters); keep workspace state."""
        self.calls.clear()
        self._posted.clear()
        self._ephemerals.clear()
        self.message_times.clear()
        self.ratelimited_count = 0

    # The timeout is an argument because tests read better as `wait_for(pred, timeout=2)`.
    async def wait_for(
        self,
        predicate: Callable[[Call], bool],
        timeout: float = 5.0,
        *,
        count: int = 1,
    ) -> Call:
        """Wait until `count` recorded calls satisfy `predicate`; return the `count`-th.

        Calls recorded before the wait count too. A predicate raising KeyError counts as no
        match, so `lambda c: c.args["channel"] == "C1"` is fine. Raises TimeoutError.
        """

        def match() -> Call | None:
            found = [c for c in self.calls if _safe(predicate, c)]
            return found[count - 1] if len(found) >= count else None

        assert self._cond is not None, "start the emulator first"
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: match() is not None), timeout)
            except TimeoutError:
                seen = ", ".join(f"{c.method}({c.status})" for c in self.calls[-20:]) or "none"
                raise TimeoutError(
                    f"no matching call within {timeout}s; last calls: {seen}"
                ) from None
        result = match()
        assert result is not None
        return result

    # -- Socket Mode ------------------------------------------------------------------------

    def open_sockets(self) -> list[SocketConnection]:
        """Socket Mode connections still open, oldest first."""
        return [c for c in self.sockets if not c.closed]

    async def wait_for_socket(self, *, opened: int = 1, timeout: float = 10.0) -> SocketConnection:
        """Wait until `opened` connections have been made in all and one is open; return the
        newest open one (after a client restarts, `opened=2` waits for its new connection)."""

        def ready() -> bool:
            return len(self.sockets) >= opened and bool(self.open_sockets())

        await self._wait(ready, timeout, f"{opened} Socket Mode connection(s)")
        return self.open_sockets()[-1]

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Send an envelope (`events_api`, `slash_commands`, `interactive`) to the newest open
        connection as Slack frames it; return its envelope_id."""
        open_now = self.open_sockets()
        if not open_now:
            raise RuntimeError("no Socket Mode connection is open")
        envelope_id = envelope_id or str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or (
                kind == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        self.envelopes.append(envelope)
        await open_now[-1].ws.send_str(json.dumps(envelope))
        return envelope_id

    def ack_for(self, envelope_id: str) -> dict[str, Any] | None:
        """The client's first acknowledgement of `envelope_id` (`{"envelope_id", "payload"?}`)."""
        return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the acknowledgement of `envelope_id` and return it. Raises TimeoutError."""
        await self._wait(lambda: self.ack_for(envelope_id) is not None, timeout, "an ack")
        ack = self.ack_for(envelope_id)
        assert ack is not None
        return ack

    async def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        assert self._cond is not None, "start the emulator first"
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(check), timeout)
            except TimeoutError:
                raise TimeoutError(f"no {what} within {timeout}s") from None

    async def _notify(self) -> None:
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = SocketConnection(ws, ticket, time.monotonic())
        self.sockets.append(conn)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.open_sockets()),
                "debug_info": {
                    "host": "applink-emulator",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        await self._notify()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("envelope_id"):
                    self.acks.append(data)
                    await self._notify()
        finally:
            conn.ended = True
            await self._notify()
        return ws

    # -- faults ---------------------------------------------------------------------------

    def fail_next(self, method: str | None, error: str, count: int | None = 1) -> None:
        """Answer the next `count` calls of `method` (None: any API method; count None:
        until cleared) with `{"ok": false, "error": error}`."""
        self._faults.append(_Fault("fail", method, count, error=error))

    def rate_limit_next(
        self, method: str | None, retry_after: int = 1, count: int | None = 1
    ) -> None:
        """Answer the next `count` calls of `method` with HTTP 429, Retry-After and ratelimited."""
        self._faults.append(_Fault("ratelimit", method, count, retry_after=retry_after))

    def server_error_next(
        self, method: str | None = None, status: int = 500, count: int | None = 1
    ) -> None:
        """Answer the next `count` calls of `method` (None: any API method) with a 5xx page."""
        self._faults.append(_Fault("server", method, count, status=status))

    def bad_body_next(
        self, method: str | None, body: bytes = b"", *, status: int = 200, count: int | None = 1
    ) -> None:
        """Answer the next `count` calls of `method` with `status` and this raw body as
        application/json (empty, cut short, an HTML page): a proxy or a network fault."""
        self._faults.append(_Fault("body", method, count, status=status, body=body))

    def answer_late_next(self, method: str, seconds: float, count: int | None = 1) -> None:
        """Carry out the next `count` calls of `method` (the message is stored), then hold the
        answer `seconds` before sending it: a client with a shorter timeout sees a timeout."""
        self._faults.append(_Fault("late", method, count, delay=seconds))

    def clear_faults(self) -> None:
        """Drop pending faults, the delay and the channel rate limit (not `set_down`)."""
        self._faults.clear()
        self._delay = 0.0
        self._channel_interval = None

    def enforce_channel_rate(self, per_second: float | None = 1.0) -> None:
        """Refuse chat.postMessage/update/postEphemeral faster than `per_second` per channel
        with 429 and a whole-second Retry-After (>= 1); None turns it off."""
        self._channel_interval = None if per_second is None else 1.0 / per_second

    def delay(self, seconds: float) -> None:
        """Make every answer wait `seconds` (0 restores fast answers)."""
        self._delay = seconds

    @property
    def is_down(self) -> bool:
        """True while `set_down(True)` is in force."""
        return self._down

    async def set_down(self, down: bool) -> None:
        """Stop listening and drop open connections (clients get connection errors), or
        listen again on the same port."""
        if down == self._down or self._runner is None:
            return
        self._down = down
        if down:
            assert self._site is not None
            await self._site.stop()
            self._site = None
            # Closing the listener leaves accepted connections open: a kept-alive client
            # would still be answered, so drop them too.
            self._drop_connections()
        else:
            await self._listen()

    def _take_fault(self, method: str) -> _Fault | None:
        # A fault for any method (None) spares webhooks and uploads, which fail differently.
        for fault in self._faults:
            matches = fault.method == method or (
                fault.method is None and method not in _WEBHOOK_METHODS
            )
            if matches:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        method = request.match_info["method"]
        if self._delay:
            await asyncio.sleep(self._delay)
        # Like Slack: API errors are HTTP 200; only rate limits and outages change the status.
        status, headers = 200, {}
        args: dict[str, Any] = {}
        token: str | None = None
        late = 0.0
        try:
            args, token = await _read_args(request)
            fault = self._take_fault(method)
            if fault is not None and fault.kind == "body":
                await self._record(
                    Call(method, args, arrived, _headers(request), request.path, fault.status)
                )
                return web.Response(
                    status=fault.status, body=fault.body, content_type="application/json"
                )
            late = fault.delay if fault is not None and fault.kind == "late" else 0.0
            if late:
                fault = None
            if fault is not None:
                if fault.kind == "server":
                    return await self._record_page(request, method, args, arrived, fault.status)
                if fault.kind == "ratelimit":
                    raise _RateLimited(fault.retry_after)
                raise _ApiError(fault.error)
            handler = self._methods().get(method)
            if handler is None:
                raise _ApiError("unknown_method", req_method=method)
            if token is None:
                raise _ApiError("not_authed")
            self._check_token(method, token)
            body = handler(args)
            if method == "auth.test" and token in self._bots:
                body = {**body, **self._bots[token]}
        except _ApiError as error:
            body = error.body
        except _RateLimited as limited:
            status, headers = 429, {"Retry-After": str(limited.retry_after)}
            body = {"ok": False, "error": "ratelimited"}
        await self._record(
            Call(method, args, arrived, _headers(request), request.path, status, body, token)
        )
        if late:
            await asyncio.sleep(late)
        return web.json_response(body, status=status, headers=headers)

    def _check_token(self, method: str, token: str) -> None:
        bot_token = token == self.token or token in self._bots
        if method in _APP_TOKEN_METHODS:
            if token != self.app_token:
                raise _ApiError("not_allowed_token_type" if bot_token else "invalid_auth")
        elif token == self.app_token:
            raise _ApiError("not_allowed_token_type")
        elif not bot_token:
            raise _ApiError("invalid_auth")

    async def _record_page(
        self, request: web.Request, method: str, args: dict[str, Any], arrived: float, status: int
    ) -> web.Response:
        await self._record(Call(method, args, arrived, _headers(request), request.path, status))
        page = f"<html><body><h1>{status} Server Error</h1></body></html>"
        return web.Response(status=status, text=page, content_type="text/html")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        if self._delay:
            await asyncio.sleep(self._delay)
        try:
            body = await request.json()
        except ValueError:
            body = None
        args = body if isinstance(body, dict) else {}
        fault = self._take_fault("response_url")
        status, text = 200, "ok"
        if fault is not None and fault.kind == "server":
            return await self._record_page(request, "response_url", args, arrived, fault.status)
        if fault is not None:
            status, text = (
                (429, "rate_limited") if fault.kind == "ratelimit" else (404, fault.error)
            )
        elif not isinstance(body, dict):
            status, text = 400, "invalid_payload"
        elif args.get("blocks") is not None and validate_blocks(args["blocks"]):
            status, text = 400, "invalid_blocks"
        elif not any(args.get(k) for k in ("text", "blocks", "attachments", "delete_original")):
            status, text = 400, "no_text"
        await self._record(
            Call("response_url", args, arrived, _headers(request), request.path, status)
        )
        return web.Response(status=status, text=text)

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        if self._delay:
            await asyncio.sleep(self._delay)
        file_id = request.match_info["file_id"]
        upload = next((u for u in self.uploads if u.file_id == file_id), None)
        data = await _read_upload(request)
        args = {"file_id": file_id, "length": len(data)}
        fault = self._take_fault("file_upload")
        if fault is not None and fault.kind == "server":
            return await self._record_page(request, "file_upload", args, arrived, fault.status)
        # Slack's upload host answers plain text; slack_sdk looks only at the status.
        status, text = 200, f"OK - {len(data)}"
        if upload is None:
            status, text = 404, "file_not_found"
        elif fault is not None:
            status, text = 400, fault.error or "upload_failed"
        else:
            upload.data = data
        await self._record(
            Call("file_upload", args, arrived, _headers(request), request.path, status)
        )
        return web.Response(status=status, text=text)

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()

    # -- Web API methods --------------------------------------------------------------------

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.list": self._users_list,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "reactions.add": self._reactions_add,
            "apps.connections.open": self._apps_connections_open,
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        host = self.base_url.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{host}/link/?ticket={ticket}&app_id={self.app_id}"}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            raise _ApiError("channel_not_found")
        self._check_content(args)
        channel = self._resolve_channel(args["channel"])
        self._check_rate(channel)
        message = self._new_message(
            channel,
            text=args.get("text") or "",
            blocks=args.get("blocks"),
            thread_ts=args.get("thread_ts"),
            attachments=args.get("attachments"),
            metadata=args.get("metadata"),
        )
        self._posted.append((channel, message["ts"]))
        self._accepted(channel)
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "message": copy.deepcopy(message),
        }

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._require(args, "channel", "ts")
        self._check_content(args)
        self._resolve_channel(channel)
        message = self._messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        self._check_rate(channel)
        message["text"] = args.get("text") or ""
        for key in ("blocks", "attachments", "metadata"):
            if key in args:
                message[key] = _with_block_ids(args[key]) if key == "blocks" else args[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self._accepted(channel)
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._require(args, "channel", "ts")
        self._resolve_channel(channel)
        if self._messages.pop((channel, ts), None) is None:
            raise _ApiError("message_not_found")
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            raise _ApiError("channel_not_found")
        (user,) = self._require(args, "user")
        self._check_content(args)
        channel = self._resolve_channel(args["channel"])
        self._check_rate(channel)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "ts": ts,
                "text": args.get("text") or "",
                "blocks": args.get("blocks"),
                "thread_ts": args.get("thread_ts"),
            }
        )
        self._accepted(channel)
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._require(args, "channel", "message_ts")
        self._resolve_channel(channel, need_membership=False)
        if not _TS_RE.match(ts):
            raise _ApiError("message_not_found")
        # Any well-formed ts: permalinks are asked for people's messages the emulator never saw.
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = (self._messages.get((channel, ts)) or {}).get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        self._check_trigger(args)
        view = self._checked_view(args, "modal")
        return {"ok": True, "view": self._store_view(view)}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        self._check_trigger(args)
        view = self._checked_view(args, "modal")
        return {"ok": True, "view": self._store_view(view)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._checked_view(args, None)
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            raise _missing("view_id")
        current = self.views.get(view_id or "") or next(
            (v for v in self.views.values() if external_id and v["external_id"] == external_id),
            None,
        )
        if current is None:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        stored = self._store_view(view, view_id=current["id"], previous=current)
        return {"ok": True, "view": stored}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        (user_id,) = self._require(args, "user_id")
        view = self._checked_view(args, "home")
        current = self.home_views.get(user_id)
        if current is not None and args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        stored = self._store_view(
            view, view_id=current["id"] if current else None, previous=current
        )
        self.home_views[user_id] = stored
        return {"ok": True, "view": stored}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(args.get("user") or "")
        if user is None:
            raise _ApiError("user_not_found")
        return {"ok": True, "user": copy.deepcopy(user)}

    def _users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """A page of users in id order; `cursor` is the next user id (base64, as Slack's
        cursors are opaque), `limit` defaults to 200 like Slack's recommended maximum."""
        try:
            limit = int(args.get("limit") or 200)
        except ValueError:
            raise _ApiError("invalid_limit") from None
        if limit < 1:
            raise _ApiError("invalid_limit")
        ids = sorted(self.users)
        start = 0
        cursor = str(args.get("cursor") or "")
        if cursor:
            try:
                after = base64.b64decode(cursor.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise _ApiError("invalid_cursor") from None
            if not after.startswith("user:"):
                raise _ApiError("invalid_cursor")
            start = bisect.bisect_left(ids, after[5:])
        page = ids[start : start + limit]
        following = ids[start + limit] if start + limit < len(ids) else ""
        next_cursor = base64.b64encode(f"user:{following}".encode()).decode() if following else ""
        return {
            "ok": True,
            "members": [copy.deepcopy(self.users[i]) for i in page],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        (email,) = self._require(args, "email")
        for user in self.users.values():
            if str(user["profile"].get("email", "")).lower() == email.lower():
                return {"ok": True, "user": copy.deepcopy(user)}
        raise _ApiError("users_not_found")

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {
                "ok": True,
                "channel": self._channel_info(self._resolve_channel(args["channel"])),
            }
        users = args.get("users")
        ids = users if isinstance(users, list) else str(users or "").split(",")
        ids = [u.strip() for u in ids if u.strip()]
        if not ids:
            raise _ApiError("users_list_not_supplied")
        for user_id in ids:
            if not _USER_ID_RE.match(user_id):
                raise _ApiError("user_not_found")
            if self.users.get(user_id, {}).get("deleted"):
                raise _ApiError("user_disabled")
        if len(ids) == 1:
            channel_id = dm_channel_id(ids[0])
        else:
            digest = hashlib.sha1(",".join(sorted(ids)).encode()).hexdigest()[:10].upper()
            channel_id = f"G{digest}"
        already_open = channel_id in self._opened_dms
        self._opened_dms.add(channel_id)
        channel = (
            self._channel_info(channel_id) if _truthy(args.get("return_im")) else {"id": channel_id}
        )
        body: dict[str, Any] = {"ok": True, "channel": channel}
        if already_open:
            body.update(no_op=True, already_open=True)
        return body

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel") or "", need_membership=False)
        return {"ok": True, "channel": self._channel_info(channel)}

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel") or "", need_membership=False)
        info = self._channel_info(channel)
        if not info.get("is_channel"):
            raise _ApiError("method_not_supported_for_channel_type")
        body: dict[str, Any] = {"ok": True}
        if channel in self.not_in_channels:
            self.not_in_channels.discard(channel)
        else:
            body["warning"] = "already_in_channel"
            body["response_metadata"] = {"warnings": ["already_in_channel"]}
        members = self.channels.get(channel, {}).get("members")
        if members is not None and self.bot_user_id not in members:
            members.append(self.bot_user_id)
        body["channel"] = self._channel_info(channel)
        return body

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(args.get("channel") or "", need_membership=False)
        members = self._members(channel)
        limit = int(args.get("limit") or 100)
        cursor = args.get("cursor") or ""
        start = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        page = members[start : start + limit]
        more = start + limit < len(members)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": next_cursor}}

    @staticmethod
    def _shown(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """A copy of a stored message as a read returns it: metadata only when asked for."""
        shown = copy.deepcopy(message)
        if not _truthy(args.get("include_all_metadata")):
            shown.pop("metadata", None)
        return shown

    def _channel_messages(self, channel: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Messages of `channel` from `oldest` to `latest` (`latest` itself only when
        `inclusive`), newest first."""
        latest = args.get("latest")
        oldest = float(args.get("oldest") or 0)
        inclusive = _truthy(args.get("inclusive"))
        found = []
        for (chan, ts), message in self._messages.items():
            if chan != channel or float(ts) < oldest:
                continue
            if latest and (float(ts) > float(latest) or (ts == latest and not inclusive)):
                continue
            found.append(self._shown(message, args))
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return found

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, top-level messages; metadata only with include_all_metadata."""
        (channel,) = self._require(args, "channel")
        channel = self._resolve_channel(channel)
        limit = int(args.get("limit") or 100)
        top = [
            m
            for m in self._channel_messages(channel, args)
            if m.get("thread_ts") in (None, m["ts"])
        ]
        return {"ok": True, "messages": top[:limit], "has_more": len(top) > limit}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread, oldest first as Slack sorts it: its parent and replies."""
        channel, ts = self._require(args, "channel", "ts")
        channel = self._resolve_channel(channel)
        parent = self._messages.get((channel, ts))
        if parent is None:
            raise _ApiError("thread_not_found")
        root = parent.get("thread_ts") or ts
        thread = sorted(
            (
                self._shown(m, args)
                for (chan, mts), m in self._messages.items()
                if chan == channel and (mts == root or m.get("thread_ts") == root)
            ),
            key=lambda m: float(m["ts"]),
        )
        return {"ok": True, "messages": thread, "has_more": False}

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = self._require(args, "filename", "length")
        try:
            size = int(length)
        except ValueError:
            raise _ApiError("invalid_arguments") from None
        file_id = f"F{next(self._ids):08d}"
        self.uploads.append(Upload(file_id=file_id, filename=filename, length=size))
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        (entries,) = self._require(args, "files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        channels = [c for c in str(args.get("channels") or "").split(",") if c]
        for channel in filter(None, [args.get("channel_id"), *channels]):
            self._resolve_channel(channel)
        done = []
        for entry in entries:
            upload = next((u for u in self.uploads if u.file_id == entry.get("id")), None)
            if upload is None or upload.data is None:
                raise _ApiError("file_not_found")
            done.append((upload, entry))
        files = []
        for upload, entry in done:
            upload.title = entry.get("title") or upload.filename
            upload.channel_id = args.get("channel_id")
            upload.channels = channels
            upload.initial_comment = args.get("initial_comment")
            upload.thread_ts = args.get("thread_ts")
            upload.completed = True
            files.append(
                {
                    "id": upload.file_id,
                    "created": int(time.time()),
                    "name": upload.filename,
                    "title": upload.title,
                    "mimetype": mimetypes.guess_type(upload.filename)[0]
                    or "application/octet-stream",
                    "user": self.bot_user_id,
                    "size": len(upload.data or b""),
                    "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{upload.file_id}/{upload.filename}",
                }
            )
        return {"ok": True, "files": files}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, name, ts = self._require(args, "channel", "name", "timestamp")
        self._resolve_channel(channel)
        if not _TS_RE.match(ts):
            raise _ApiError("message_not_found")
        names = self.reactions.setdefault((channel, ts), [])
        if name in names:
            raise _ApiError("already_reacted")
        names.append(name)
        message = self._messages.get((channel, ts))
        if message is not None:
            message.setdefault("reactions", []).append(
                {"name": name, "users": [self.bot_user_id], "count": 1}
            )
        return {"ok": True}

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _require(args: dict[str, Any], *names: str) -> list[Any]:
        for name in names:
            if args.get(name) in (None, ""):
                raise _missing(name)
        return [args[name] for name in names]

    def _check_content(self, args: dict[str, Any]) -> None:
        text, blocks = args.get("text"), args.get("blocks")
        if not text and not blocks and not args.get("attachments"):
            raise _ApiError("no_text")
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        if blocks is not None:
            errors = validate_blocks(blocks, "message")
            if errors:
                raise _ApiError(
                    "invalid_blocks",
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )

    def _checked_view(self, args: dict[str, Any], kind: str | None) -> dict[str, Any]:
        (view,) = self._require(args, "view")
        errors = validate_view(view)
        if not errors and kind is not None and view.get("type") != kind:
            errors = [f"must be {kind} [json-pointer:/view/type]"]
        if errors:
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        return dict(view)

    def _check_trigger(self, args: dict[str, Any]) -> None:
        (trigger_id,) = self._require(args, "trigger_id")
        # Slack refuses a trigger_id after 3 s, so a slow path to views.open shows up here.
        if trigger_id in self.expired_trigger_ids:
            raise _ApiError("expired_trigger_id")
        issued = trigger_issued_at(trigger_id)
        if issued is not None and self.trigger_ttl is not None:
            if time.time() - issued > self.trigger_ttl:
                raise _ApiError("expired_trigger_id")

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        vid = view_id or f"V{next(self._ids):08d}"
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": _with_block_ids(view.get("blocks") or []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": (previous or {}).get("previous_view_id"),
            "root_view_id": (previous or {}).get("root_view_id", vid),
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views[vid] = stored
        return copy.deepcopy(stored)

    def _resolve_channel(self, channel: str, *, need_membership: bool = True) -> str:
        """Map a user id to the bot's DM with them and apply the declared channel failures."""
        if not channel or channel in self.missing_channels:
            raise _ApiError("channel_not_found")
        if _USER_ID_RE.match(channel):
            return dm_channel_id(channel)
        if need_membership and channel in self.not_in_channels:
            raise _ApiError("not_in_channel")
        return channel

    def _check_rate(self, channel: str) -> None:
        if self._channel_interval is None:
            return
        last = self._last_accepted.get(channel)
        now = time.monotonic()
        if last is not None and now - last < self._channel_interval:
            self.ratelimited_count += 1
            # Slack's Retry-After is whole seconds and never 0.
            raise _RateLimited(max(1, math.ceil(last + self._channel_interval - now)))

    def _accepted(self, channel: str) -> None:
        now = time.monotonic()
        self._last_accepted[channel] = now
        self.message_times.setdefault(channel, []).append(now)

    def _next_ts(self) -> str:
        # A fixed base keeps ts predictable in assertions and ordered both as text and number.
        seq = next(self._ts_seq)
        return f"{1_700_000_000 + seq // 1_000_000}.{seq % 1_000_000:06d}"

    def _new_message(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        attachments: Any = None,
        metadata: Any = None,
    ) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "text": text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": ts,
        }
        if blocks is not None:
            message["blocks"] = _with_block_ids(blocks)
        if thread_ts:
            message["thread_ts"] = thread_ts
        if attachments is not None:
            message["attachments"] = attachments
        if metadata is not None:
            message["metadata"] = metadata
        self._messages[(channel, ts)] = message
        return message

    def _members(self, channel: str) -> list[str]:
        registered = self.channels.get(channel)
        if registered is not None:
            return list(registered["members"])
        return [] if channel in self.not_in_channels else [self.bot_user_id]

    def _channel_info(self, channel: str) -> dict[str, Any]:
        registered = self.channels.get(channel, {})
        is_im = channel.startswith("D")
        is_private = bool(registered.get("is_private")) or channel.startswith("G")
        name = registered.get("name") or channel.lower()
        info: dict[str, Any] = {
            "id": channel,
            "created": 1_600_000_000,
            "is_archived": False,
            "is_im": is_im,
            "is_org_shared": False,
            "context_team_id": self.team_id,
        }
        if is_im:
            info.update(user=channel[1:], is_user_deleted=False, is_open=True)
            return info
        info.update(
            name=name,
            name_normalized=name,
            is_channel=not is_private,
            is_group=is_private,
            is_mpim=False,
            is_private=is_private,
            is_general=False,
            is_shared=False,
            is_ext_shared=False,
            is_member=channel not in self.not_in_channels,
            creator=self.bot_user_id,
            num_members=len(self._members(channel)),
        )
        return info


def _safe(predicate: Callable[[Call], bool], call: Call) -> bool:
    try:
        return bool(predicate(call))
    except KeyError:
        return False


def _headers(request: web.Request) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(request.headers))


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str | None]:
    """Merge query string and form or JSON body; parse JSON-string fields; pop the token."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise _ApiError("invalid_json")
            args.update(body)
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            try:
                args[key] = json.loads(value)
            except ValueError:
                raise _ApiError(
                    "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
                ) from None
    auth = request.headers.get("Authorization", "")
    token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
    form_token = args.pop("token", None)
    return args, token or form_token or None


async def _read_upload(request: web.Request) -> bytes:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        for value in form.values():
            if isinstance(value, web.FileField):
                return value.file.read()
        return b""
    return await request.read()


def _with_block_ids(blocks: Any) -> Any:
    """Copy blocks, giving each a block_id as Slack does when the sender left it out."""
    if not isinstance(blocks, list):
        return blocks
    filled = copy.deepcopy(blocks)
    for index, block in enumerate(filled):
        if isinstance(block, dict) and "block_id" not in block:
            block["block_id"] = f"b{index}{secrets.token_hex(2)}"
    return filled
