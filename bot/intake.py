"""The durable half of the HTTP ingress: store a state-changing request, then acknowledge it.

Called by `bot.server` for every verified form-encoded request (slash commands and
interactivity). `handlers.intake.classify` says whether the request writes; if it does, its
verified body is stored in one short transaction and the ack goes out only after the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError

from bot.services import Services
from handlers.blocks.intake import form_not_saved_text
from handlers.intake import classify, request_kind, request_name
from jobs.intake import Deliver, IntakeWorker, Runner, StoredRequest
from models.intake import LEASE_SECONDS, IntakeRequest, intake_key, store_request

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


def parse_form_payload(text: str) -> dict[str, Any] | None:
    """A slash command's fields, or an interactivity request's `payload` JSON; None if neither."""
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" not in fields:
        return fields if "command" in fields else None
    try:
        payload = json.loads(fields["payload"])
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def team_of(payload: dict[str, Any]) -> str:
    team = payload.get("team")
    if isinstance(team, dict):
        return str(team.get("id") or "")
    return str(payload.get("team_id") or "")


def user_of(payload: dict[str, Any]) -> str:
    user = payload.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(payload.get("user_id") or "")


def response_url_of(payload: dict[str, Any]) -> str | None:
    url = payload.get("response_url")
    if isinstance(url, str) and url:
        return url
    urls = payload.get("response_urls")
    if isinstance(urls, list) and urls and isinstance(urls[0], dict):
        first = urls[0].get("response_url")
        return first if isinstance(first, str) else None
    return None


BUSY = "Docket is busy right now and nothing was saved. Please try again in a moment."
# Slack waits 3 s for the answer: a store that cannot commit in time is refused instead.
STORE_BUDGET_SECONDS = 2.0
# A form's work runs at once for up to this long, so its answer can go back in the response.
SUBMISSION_BUDGET_SECONDS = 2.0


async def accept(
    services: Services, text: str, content_type: str, worker: IntakeWorker | None = None
) -> web.Response | None:
    """Store-then-ack a request that writes; None hands the request to Bolt (inline).

    A form submission is stored leased to this process and run at once by `worker`, so
    errors found while saving still go back into the modal; if this process dies, the row's
    lease runs out and any replica's worker runs it.
    """
    if content_type != FORM:
        return None
    payload = parse_form_payload(text)
    if payload is None:
        return None
    kind = request_kind(payload)
    name = request_name(kind, payload)
    decision = classify(kind, name, payload)
    if decision is None:
        return None
    team = team_of(payload)
    if team != services.team_id:
        logger.warning("refused a %s for another workspace", kind)
        return web.json_response({"error": "unknown workspace"}, status=403)
    if not decision.store:
        return _ack(decision.ack)
    request = IntakeRequest(
        team_id=team,
        kind=kind,
        name=name,
        user_id=user_of(payload),
        response_url=response_url_of(payload),
        trigger_id=str(payload.get("trigger_id") or "") or None,
        content_type=content_type,
        body=text,
    )
    run_now = worker is not None and kind == "view_submission"
    abandoned: list[bool] = []
    store = asyncio.ensure_future(
        _store(
            services,
            request,
            intake_key(kind, payload, text),
            worker if run_now else None,
            abandoned,
        )
    )
    done, _ = await asyncio.wait({store}, timeout=STORE_BUDGET_SECONDS)
    if not done:
        # Answer now; the store rolls back whenever the database lets it get that far.
        abandoned.append(True)
        store.add_done_callback(_log_abandoned)
        logger.warning("refused a %s %s: the database did not take it in time", kind, name)
        if kind == "view_submission":
            errors = {_first_block(payload): BUSY}
            return web.json_response({"response_action": "errors", "errors": errors})
        return web.json_response({"response_type": "ephemeral", "text": BUSY})
    stored = store.result()
    if stored is None:
        logger.info("repeated delivery of a %s %s ignored", kind, name)
    elif run_now:
        assert worker is not None
        answer = await worker.run_now(
            StoredRequest.of_request(stored, request), budget=SUBMISSION_BUDGET_SECONDS
        )
        if answer is not None:  # finished in time: its own answer ("" for a plain ack)
            return web.Response(body=answer.encode(), content_type="application/json")
    return _ack(decision.ack)


class _Abandoned(Exception):
    """The request was refused as busy before its store could commit: roll it back."""


def _log_abandoned(task: asyncio.Task[int | None]) -> None:
    if not task.cancelled() and not isinstance(task.exception(), _Abandoned | None):
        logger.warning("a refused request's store failed: %r", task.exception())


def _ack(ack: dict[str, Any] | None) -> web.Response:
    return web.Response(status=200) if ack is None else web.json_response(ack)


def _first_block(payload: dict[str, Any]) -> str:
    values = ((payload.get("view") or {}).get("state") or {}).get("values") or {}
    return str(next(iter(values), "") or "")


async def _store(
    services: Services,
    request: IntakeRequest,
    key: str,
    worker: IntakeWorker | None,
    abandoned: list[bool],
) -> int | None:
    async with services.transaction(urgent=True) as session:
        stored = await store_request(
            session=session,
            workspace_id=services.workspace_id,
            request=request,
            key=key,
            at=services.now(),
            owner=worker.owner if worker else None,
            lease_seconds=worker.lease_seconds if worker else LEASE_SECONDS,
        )
        if abandoned:
            raise _Abandoned
    return stored


def make_runner(worker_app: AsyncApp, services: Services) -> Runner:
    """Run a stored request through the worker app's listeners; return what they answered.

    A listener that fails outright (Bolt answers 500) raises here, so the row is retried.
    """

    async def run(request: StoredRequest) -> str | None:
        bolt_request = AsyncBoltRequest(
            body=request.body,
            headers={"content-type": request.content_type},
            context={"intake_id": request.intake_id},
        )
        response = await worker_app.async_dispatch(bolt_request)
        if response.status >= 500:
            raise RuntimeError(f"the {request.kind} listener for {request.name} failed")
        return response.body or ""

    return run


def make_deliver(services: Services) -> Deliver:
    """Deliver a form's answer that could not go back in its HTTP response."""

    async def deliver(request: StoredRequest, answer: str) -> None:
        if request.kind != "view_submission":
            return
        payload = parse_form_payload(request.body) or {}
        await _deliver_view_answer(services, payload, answer)

    return deliver


async def _deliver_view_answer(services: Services, payload: dict[str, Any], answer: str) -> None:
    # A new view replaces the "Saving…" modal through views.update; errors go by DM.
    try:
        data = json.loads(answer)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    action = data.get("response_action")
    view_id = str((payload.get("view") or {}).get("id") or "")
    try:
        if action == "update" and isinstance(data.get("view"), dict) and view_id:
            await services.slack.views_update(view_id=view_id, view=data["view"])
        elif action == "errors" and isinstance(data.get("errors"), dict):
            user = user_of(payload)
            if user:
                await services.slack.chat_postMessage(
                    channel=user, text=form_not_saved_text(data["errors"])
                )
    except SlackApiError as exc:
        # The person may have closed the modal; the work itself is done.
        logger.info("answering a stored form failed: %s", exc.response.get("error"))
