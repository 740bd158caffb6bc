"""The Slack emulator and request signer behave like Slack, proven through real slack_sdk."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.slack_emulator import SlackEmulator, validate_blocks, validate_view
from tests.slack_signing import (
    SlackRequests,
    make_trigger_id,
    post,
    sign,
    text_value,
    trigger_issued_at,
)

SECRET = "test-signing-secret"


def section(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def modal(blocks: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "ticket_create",
        "title": {"type": "plain_text", "text": "New ticket"},
        "submit": {"type": "plain_text", "text": "Create"},
        "blocks": blocks if blocks is not None else [section()],
        **extra,
    }


def button(text: str = "Assign", action_id: str = "assign") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def emu():
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.token, base_url=emu.api_url)


async def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# -- block validation (pure) ---------------------------------------------------------------


def test_block_limits_accept_the_maximum_and_reject_one_more() -> None:
    assert validate_blocks([section()] * 50) == []
    assert validate_blocks([section()] * 51) != []
    assert validate_blocks([section()] * 100, "modal") == []
    assert validate_blocks([section()] * 101, "home") != []


@pytest.mark.parametrize(
    ("block", "pointer"),
    [
        (section("x" * 3001), "/blocks/0/text/text"),
        ({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}, "/blocks/0/text"),
        ({"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}, "/blocks/0/text/type"),
        ({"type": "actions", "elements": [button("b" * 76)]}, "/blocks/0/elements/0/text/text"),
        ({"type": "carousel"}, "/blocks/0/type"),
        (section(""), "/blocks/0/text/text"),
        (
            section(
                accessory={
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [
                        {"text": {"type": "plain_text", "text": str(i)}, "value": str(i)}
                        for i in range(101)
                    ],
                }
            ),
            "/blocks/0/accessory/options",
        ),
    ],
)
def test_block_violations_name_the_offending_field(block: dict[str, Any], pointer: str) -> None:
    errors = validate_blocks([block])
    assert any(f"[json-pointer:{pointer}" in e for e in errors), errors


def test_limits_are_inclusive() -> None:
    blocks = [
        section("x" * 3000),
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        {"type": "actions", "elements": [button("b" * 75)]},
    ]
    assert validate_blocks(blocks) == []


def test_duplicate_block_ids_are_rejected() -> None:
    errors = validate_blocks([section(block_id="a"), section(block_id="a")])
    assert errors == ["duplicate block_id: a [json-pointer:/blocks/1/block_id]"]


def test_view_limits() -> None:
    assert validate_view(modal()) == []
    title = {"type": "plain_text", "text": "t" * 25}
    assert any("/view/title/text" in e for e in validate_view(modal(title=title)))
    long_metadata = modal(private_metadata="m" * 3001)
    assert any("/view/private_metadata" in e for e in validate_view(long_metadata))
    assert validate_view(modal(private_metadata="m" * 3000)) == []
    no_submit = modal(
        [{"type": "input", "label": {"type": "plain_text", "text": "T"}, "element": {}}]
    )
    no_submit.pop("submit")
    assert validate_view(no_submit) != []


# -- Web API through slack_sdk -------------------------------------------------------------


async def test_auth_test_answers_the_workspace_and_bot(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    response = await client.auth_test()
    assert response.status_code == 200
    assert response.data == {
        "ok": True,
        "url": "https://acme.slack.com/",
        "team": "Acme IT",
        "user": "docket",
        "team_id": "T0001",
        "user_id": "UBOT",
        "bot_id": "BBOT",
        "is_enterprise_install": False,
    }
    (call,) = emu.calls_to("auth.test")
    assert call.headers["Authorization"] == "Bearer xoxb-test-token"


async def test_token_is_checked(emu: SlackEmulator) -> None:
    no_token = AsyncWebClient(base_url=emu.api_url)
    assert (await api_error(no_token.auth_test())).response["error"] == "not_authed"
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url)
    assert (await api_error(wrong.auth_test())).response["error"] == "invalid_auth"


async def test_unknown_method(client: AsyncWebClient) -> None:
    error = await api_error(client.api_call("tickets.create"))
    assert error.response.status_code == 200
    assert error.response["error"] == "unknown_method"


async def test_post_message_returns_slack_shape_with_increasing_unique_ts(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="C1", text="New ticket", blocks=[section()])
    second = await client.chat_postMessage(channel="C1", text="again", thread_ts=first["ts"])
    assert first["channel"] == "C1"
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    message = first["message"]
    assert (message["type"], message["text"], message["user"], message["bot_id"]) == (
        "message",
        "New ticket",
        "UBOT",
        "BBOT",
    )
    assert message["blocks"][0]["text"] == {"type": "mrkdwn", "text": "hi"}
    assert message["blocks"][0]["block_id"]
    assert [m["text"] for m in emu.messages("C1")] == ["New ticket", "again"]
    assert emu.messages("C1")[1]["thread_ts"] == first["ts"]
    assert emu.messages("C2") == []


async def test_post_message_argument_errors(emu: SlackEmulator, client: AsyncWebClient) -> None:
    assert (await api_error(client.chat_postMessage(channel="", text="x"))).response[
        "error"
    ] == "channel_not_found"
    no_text = client.api_call("chat.postMessage", json={"channel": "C1"})
    assert (await api_error(no_text)).response["error"] == "no_text"
    too_long = client.chat_postMessage(channel="C1", text="x" * 40001)
    assert (await api_error(too_long)).response["error"] == "msg_too_long"
    emu.missing_channels.add("C404")
    emu.not_in_channels.add("CPRIV")
    missing = client.chat_postMessage(channel="C404", text="x")
    assert (await api_error(missing)).response["error"] == "channel_not_found"
    outside = client.chat_postMessage(channel="CPRIV", text="x")
    assert (await api_error(outside)).response["error"] == "not_in_channel"
    assert emu.messages() == []
    assert [c.ok for c in emu.calls] == [False] * 5


async def test_fifty_one_blocks_are_rejected_like_slack(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    error = await api_error(
        client.chat_postMessage(channel="C1", text="t", blocks=[section()] * 51)
    )
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"] == ["must provide no more than 50 items [json-pointer:/blocks]"]
    ok = await client.chat_postMessage(channel="C1", text="t", blocks=[section()] * 50)
    assert len(ok["message"]["blocks"]) == 50


async def test_form_body_with_blocks_as_json_string(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    data = {"channel": "C1", "blocks": json.dumps([section("from a form")])}
    response = await client.api_call("chat.postMessage", data=data)
    assert response["message"]["blocks"][0]["text"]["text"] == "from a form"
    assert emu.calls[-1].headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert emu.calls[-1].args["blocks"] == [section("from a form")]


async def test_posting_to_a_user_goes_to_their_dm(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="U7", text="You were assigned #12")
    opened = await client.conversations_open(users="U7")
    again = await client.conversations_open(users=["U7"])
    assert posted["channel"] == opened["channel"]["id"] == again["channel"]["id"] == "DU7"
    assert again["already_open"] is True
    assert emu.messages("DU7")[0]["text"] == "You were assigned #12"


async def test_update_delete_ephemeral_permalink(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="open")
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="closed")
    assert (updated["channel"], updated["ts"], updated["text"]) == ("C1", posted["ts"], "closed")
    assert emu.messages("C1")[0]["text"] == "closed"

    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert link["permalink"] == "https://acme.slack.com/archives/C1/p1700000000000100"

    ephemeral = await client.chat_postEphemeral(channel="C1", user="U1", text="Only you")
    assert ephemeral["message_ts"]
    assert emu.ephemerals("C1")[0]["user"] == "U1"

    await client.chat_delete(channel="C1", ts=posted["ts"])
    assert emu.messages("C1") == []
    gone = client.chat_update(channel="C1", ts=posted["ts"], text="x")
    assert (await api_error(gone)).response["error"] == "message_not_found"


async def test_views_open_update_push_publish(emu: SlackEmulator, client: AsyncWebClient) -> None:
    opened = await client.views_open(trigger_id=make_trigger_id(), view=modal())
    view = opened["view"]
    assert view["id"].startswith("V")
    assert (view["type"], view["callback_id"], view["state"]) == (
        "modal",
        "ticket_create",
        {"values": {}},
    )
    updated = await client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    assert updated["view"]["id"] == view["id"]
    stale = client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    assert (await api_error(stale)).response["error"] == "hash_conflict"
    unknown = client.views_update(view_id="V404", view=modal())
    assert (await api_error(unknown)).response["error"] == "not_found"

    pushed = await client.views_push(trigger_id=make_trigger_id(), view=modal())
    assert pushed["view"]["id"] != view["id"]

    home = {"type": "home", "blocks": [section()] * 100}
    published = await client.views_publish(user_id="U1", view=home)
    assert emu.home_views["U1"]["id"] == published["view"]["id"]


async def test_view_limits_answer_invalid_arguments(client: AsyncWebClient) -> None:
    title = {"type": "plain_text", "text": "A title that is too long!"}
    error = await api_error(
        client.views_open(trigger_id=make_trigger_id(), view=modal(title=title))
    )
    assert error.response["error"] == "invalid_arguments"
    assert "/view/title/text" in error.response["response_metadata"]["messages"][0]
    big_home = {"type": "home", "blocks": [section()] * 101}
    error = await api_error(client.views_publish(user_id="U1", view=big_home))
    assert error.response["error"] == "invalid_arguments"


async def test_stale_trigger_is_refused(emu: SlackEmulator, client: AsyncWebClient) -> None:
    old = make_trigger_id(now=time.time() - 3.5)
    error = await api_error(client.views_open(trigger_id=old, view=modal()))
    assert error.response["error"] == "expired_trigger_id"
    emu.trigger_ttl = None
    assert (await client.views_open(trigger_id=old, view=modal()))["ok"]


async def test_users_registry(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.add_user("U1", name="alice", real_name="Alice Example", email="alice@acme.test", tz="UTC")
    info = await client.users_info(user="U1")
    user = info["user"]
    assert (user["id"], user["name"], user["real_name"], user["tz"], user["tz_offset"]) == (
        "U1",
        "alice",
        "Alice Example",
        "UTC",
        0,
    )
    assert user["profile"]["email"] == "alice@acme.test"
    found = await client.users_lookupByEmail(email="ALICE@acme.test")
    assert found["user"]["id"] == "U1"
    assert (await api_error(client.users_info(user="U404"))).response["error"] == "user_not_found"
    missing = client.users_lookupByEmail(email="nobody@acme.test")
    assert (await api_error(missing)).response["error"] == "users_not_found"
    assert (await client.users_info(user="UBOT"))["user"]["is_bot"] is True


async def test_conversations_info_join_members(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.add_channel("C9", name="triage", members=["U1", "U2", "U3"])
    emu.not_in_channels.add("C9")
    info = await client.conversations_info(channel="C9")
    assert (info["channel"]["name"], info["channel"]["is_member"]) == ("triage", False)
    refused = client.chat_postMessage(channel="C9", text="x")
    assert (await api_error(refused)).response["error"] == "not_in_channel"
    joined = await client.conversations_join(channel="C9")
    assert joined["channel"]["is_member"] is True
    assert (await client.chat_postMessage(channel="C9", text="x"))["ok"]

    first = await client.conversations_members(channel="C9", limit=3)
    assert first["members"] == ["U1", "U2", "U3"]
    cursor = first["response_metadata"]["next_cursor"]
    rest = await client.conversations_members(channel="C9", limit=3, cursor=cursor)
    assert rest["members"] == ["UBOT"]
    assert rest["response_metadata"]["next_cursor"] == ""

    emu.missing_channels.add("C404")
    gone = client.conversations_info(channel="C404")
    assert (await api_error(gone)).response["error"] == "channel_not_found"


async def test_reactions(emu: SlackEmulator, client: AsyncWebClient) -> None:
    await client.reactions_add(channel="C1", name="white_check_mark", timestamp="1699999999.000001")
    twice = client.reactions_add(
        channel="C1", name="white_check_mark", timestamp="1699999999.000001"
    )
    assert (await api_error(twice)).response["error"] == "already_reacted"
    assert emu.reactions[("C1", "1699999999.000001")] == ["white_check_mark"]


async def test_files_upload_v2_end_to_end(emu: SlackEmulator, client: AsyncWebClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    response = await client.files_upload_v2(
        channel="CMGR",
        content=png,
        filename="profit-2025-W03.png",
        title="Profit, week 3",
        initial_comment="Weekly profitability",
        thread_ts="1700000000.000100",
    )
    assert response["file"]["title"] == "Profit, week 3"
    (upload,) = emu.files("CMGR")
    assert upload.data == png
    assert upload.length == len(png)
    assert (upload.channel_id, upload.initial_comment, upload.thread_ts) == (
        "CMGR",
        "Weekly profitability",
        "1700000000.000100",
    )
    methods = [c.method for c in emu.calls]
    assert methods == ["files.getUploadURLExternal", "file_upload", "files.completeUploadExternal"]


async def test_response_url_webhooks_are_recorded(emu: SlackEmulator) -> None:
    hook = AsyncWebhookClient(emu.response_url("cmd-1"))
    response = await hook.send(text="Ticket #12 created", replace_original=False)
    assert (response.status_code, response.body) == (200, "ok")
    assert emu.responses("cmd-1") == [{"text": "Ticket #12 created", "replace_original": False}]
    assert emu.responses("other") == []
    bad = await hook.send(blocks=[section()] * 51)
    assert bad.status_code == 400


# -- faults ---------------------------------------------------------------------------------


async def test_fail_next_counts_down(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.fail_next("chat.postMessage", "is_archived", count=2)
    for _ in range(2):
        error = await api_error(client.chat_postMessage(channel="C1", text="x"))
        assert error.response["error"] == "is_archived"
    assert (await client.auth_test())["ok"]
    assert (await client.chat_postMessage(channel="C1", text="x"))["ok"]


async def test_rate_limit_next_sends_retry_after(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.rate_limit_next("chat.postMessage", retry_after=7)
    error = await api_error(client.chat_postMessage(channel="C1", text="x"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response["error"] == "ratelimited"


async def test_rate_limit_retry_handler_waits_and_succeeds(emu: SlackEmulator) -> None:
    retrying = AsyncWebClient(
        token=emu.token,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    emu.rate_limit_next("chat.postMessage", retry_after=1)
    started = time.monotonic()
    response = await retrying.chat_postMessage(channel="C1", text="x")
    assert response["ok"]
    first, second = emu.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0
    assert time.monotonic() - started >= 1.0


async def test_channel_rate_is_enforced_per_channel(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.enforce_channel_rate(per_second=20)
    await client.chat_postMessage(channel="C1", text="1")
    error = await api_error(client.chat_postMessage(channel="C1", text="2"))
    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "1"
    assert (await client.chat_postMessage(channel="C2", text="other channel"))["ok"]
    await asyncio.sleep(0.06)
    assert (await client.chat_postMessage(channel="C1", text="3"))["ok"]
    assert emu.ratelimited_count == 1
    assert len(emu.message_times["C1"]) == 2
    assert emu.max_rate("C1", window=0.05) == 1
    emu.enforce_channel_rate(None)
    await client.chat_postMessage(channel="C1", text="4")
    await client.chat_postMessage(channel="C1", text="5")
    assert emu.max_rate("C1", window=0.05) >= 2


async def test_server_error_and_retry(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.server_error_next(status=503)
    error = await api_error(client.auth_test())
    assert error.response.status_code == 503
    retrying = AsyncWebClient(
        token=emu.token,
        base_url=emu.api_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1)],
    )
    emu.server_error_next("auth.test", status=500)
    assert (await retrying.auth_test())["ok"]
    assert [c.status for c in emu.calls_to("auth.test")] == [503, 500, 200]


async def test_delay_slows_every_answer(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.delay(0.2)
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.2
    emu.clear_faults()
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started < 0.2


async def test_down_refuses_connections_then_comes_back(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    api_url = emu.api_url
    await emu.set_down(True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.auth_test()
    await emu.set_down(False)
    assert emu.api_url == api_url
    assert (await client.auth_test())["ok"]


async def test_down_drops_kept_alive_connections(emu: SlackEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        keeping = AsyncWebClient(
            token=emu.token, base_url=emu.api_url, session=session, retry_handlers=[]
        )
        assert (await keeping.auth_test())["ok"]
        await emu.set_down(True)
        with pytest.raises(aiohttp.ClientConnectionError):
            await keeping.auth_test()
        await emu.set_down(False)
        assert (await keeping.auth_test())["ok"]


async def test_wait_for_returns_the_matching_call(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.auth_test()
        await client.chat_postMessage(channel="C1", text="first")
        await client.chat_postMessage(channel="C1", text="second")

    task = asyncio.create_task(later())
    call = await emu.wait_for(
        lambda c: c.method == "chat.postMessage" and c.args["channel"] == "C1", count=2
    )
    assert call.args["text"] == "second"
    await task
    with pytest.raises(TimeoutError, match=r"chat\.postMessage"):
        await emu.wait_for(lambda c: c.args["channel"] == "C2", timeout=0.05)
    emu.clear()
    assert emu.calls == [] and emu.messages() == []


# -- signing --------------------------------------------------------------------------------

SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)


def test_sign_matches_slacks_documented_example() -> None:
    signature = sign("8f742231b10e8888abcd99yyyzzz85a5", SLACK_DOC_BODY, 1531420618)
    assert signature == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slack_sdk_verifier_accepts_every_builder() -> None:
    requests = SlackRequests(SECRET)
    verifier = SignatureVerifier(SECRET)
    built = [
        requests.slash_command("/ticket", "new printer"),
        requests.interactivity(requests.block_actions("assign", "12", channel_id="C1")),
        requests.interactivity(requests.view_submission("ticket_create", {})),
        requests.interactivity(requests.message_action("create_ticket_from_message", {}, "C1")),
        requests.interactivity(requests.block_suggestion("customer", "acm")),
        requests.event(requests.app_home_opened("U1")),
        requests.url_verification("challenge-token"),
    ]
    for body, headers in built:
        assert verifier.is_valid_request(body, headers), body


def test_forged_and_stale_requests_fail_verification() -> None:
    requests = SlackRequests(SECRET)
    verifier = SignatureVerifier(SECRET)
    forged = requests.slash_command(signature="v0=" + "0" * 64)
    assert not verifier.is_valid_request(forged.body, forged.headers)
    stale = requests.slash_command(timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(stale.body, stale.headers)
    other_secret = SlackRequests("another-secret").slash_command()
    assert not verifier.is_valid_request(other_secret.body, other_secret.headers)


def test_slash_command_sends_every_field() -> None:
    requests = SlackRequests(SECRET, response_base="http://127.0.0.1:1/response/")
    body, headers = requests.slash_command("/time", "2h #12", user_id="U9", channel_id="DU9")
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert set(fields) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert (fields["command"], fields["text"], fields["channel_name"]) == (
        "/time",
        "2h #12",
        "directmessage",
    )
    assert fields["response_url"].startswith("http://127.0.0.1:1/response/cmd-")
    assert trigger_issued_at(fields["trigger_id"]) == pytest.approx(time.time(), abs=5)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_event_envelope_and_retry_headers() -> None:
    requests = SlackRequests(SECRET)
    event = requests.message_event("printer on fire", channel="C1", user="U1")
    body, headers = requests.event(event, event_id="Ev123", event_time=1700000000, retry_num=2)
    envelope = json.loads(body)
    assert (envelope["type"], envelope["event_id"], envelope["event_time"]) == (
        "event_callback",
        "Ev123",
        1700000000,
    )
    assert envelope["event"] == event
    assert envelope["authorizations"][0]["user_id"] == "UBOT"
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("2", "http_timeout")
    assert "X-Slack-Retry-Num" not in requests.event(event).headers


def test_payload_builders_find_block_ids_and_carry_state() -> None:
    requests = SlackRequests(SECRET)
    message = {
        "ts": "1700000000.000100",
        "text": "card",
        "blocks": [{"type": "actions", "block_id": "card-actions", "elements": [button()]}],
    }
    payload = requests.block_actions("assign", "12", message=message, channel_id="C1")
    (action,) = payload["actions"]
    assert (action["block_id"], action["value"], action["type"]) == ("card-actions", "12", "button")
    assert payload["container"] == {
        "type": "message",
        "channel_id": "C1",
        "message_ts": "1700000000.000100",
        "is_ephemeral": False,
    }
    view = {"id": "V1", "type": "modal", "private_metadata": "ticket=12", "blocks": []}
    submission = requests.view_submission(
        "ticket_reply", {"body": {"body": text_value("On it")}}, view=view
    )
    assert submission["view"]["id"] == "V1"
    assert submission["view"]["private_metadata"] == "ticket=12"
    assert submission["view"]["state"]["values"]["body"]["body"]["value"] == "On it"


async def test_post_delivers_a_signed_request(emu: SlackEmulator) -> None:
    requests = SlackRequests(SECRET)
    body, headers = requests.signed(b'{"text": "hi"}', "application/json")
    async with aiohttp.ClientSession() as session:
        reply = await post(session, emu.response_url("signed"), body, headers)
    assert reply.status == 200 and reply.text == "ok"
    (call,) = emu.calls_to("response_url")
    assert call.args == {"text": "hi"}
    assert call.headers["X-Slack-Signature"] == sign(
        SECRET, body, int(headers["X-Slack-Request-Timestamp"])
    )


# -- Socket Mode --------------------------------------------------------------------------


async def test_connections_open_takes_only_the_app_token(emu: SlackEmulator) -> None:
    app = AsyncWebClient(base_url=emu.api_url)
    opened = await app.apps_connections_open(app_token=emu.app_token)
    assert str(opened["url"]).startswith(f"ws://127.0.0.1:{emu.port}/link/?ticket=")

    bot = AsyncWebClient(token=emu.token, base_url=emu.api_url)
    with pytest.raises(SlackApiError) as refused:
        await bot.apps_connections_open(app_token=emu.token)
    assert refused.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as wrong_kind:
        await AsyncWebClient(token=emu.app_token, base_url=emu.api_url).auth_test()
    assert wrong_kind.value.response["error"] == "not_allowed_token_type"


async def test_a_socket_gets_hello_then_envelopes_and_its_acks_are_recorded(
    emu: SlackEmulator,
) -> None:
    opened = await AsyncWebClient(base_url=emu.api_url).apps_connections_open(
        app_token=emu.app_token
    )
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(str(opened["url"])) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            assert hello["connection_info"] == {"app_id": emu.app_id}
            await emu.wait_for_socket()

            sent = await emu.send_envelope("slash_commands", {"command": "/ticket", "text": "x"})
            envelope = await ws.receive_json(timeout=5)
            assert envelope == {
                "envelope_id": sent,
                "payload": {"command": "/ticket", "text": "x"},
                "type": "slash_commands",
                "accepts_response_payload": True,
            }
            event = await emu.send_envelope("events_api", {"type": "event_callback"})
            framed = await ws.receive_json(timeout=5)
            assert framed["accepts_response_payload"] is False
            assert (framed["retry_attempt"], framed["retry_reason"]) == (0, "")

            await ws.send_json({"envelope_id": sent, "payload": {"text": "ok"}})
            assert await emu.wait_for_ack(sent) == {"envelope_id": sent, "payload": {"text": "ok"}}
            assert emu.ack_for(event) is None
        bad = await http.get(f"{emu.base_url}/link/?ticket=forged")
        assert bad.status == 401
