"""The durable half of the ingress: store a state-changing request, then acknowledge it.

Called by `bot.server` for every verified form-encoded request (slash commands and
interactivity) and every event, and by `bot.socket_mode` for the same requests arriving as
Socket Mode envelopes. `handlers.intake.classify` says whether the request writes; if it
does, its verified body is stored in one short transaction and the ack goes out only after
the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.db import direct_sqlite_engine, ingress_postgres_engine, is_sqlite
from bot.services import Services
from handlers.ack import ACK_BUDGET_SECONDS
from handlers.blocks.intake import form_not_saved_text
from handlers.intake import classify, request_kind, request_name
from jobs.intake import Deliver, IntakeWorker, Runner, StoredRequest
from models.intake import (
    LEASE_SECONDS,
    IntakeRequest,
    intake_key,
    store_requests_now,
)
from models.slack_events import store_event

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


def read_form(text: str) -> tuple[dict[str, Any] | None, bool]:
    """(a slash command's fields or an interactivity request's `payload` JSON, or None if
    neither; whether the body is malformed: a `payload` that is not a JSON object)."""
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" not in fields:
        return (fields if "command" in fields else None), False
    try:
        payload = json.loads(fields["payload"])
    except ValueError:
        return None, True
    return (payload, False) if isinstance(payload, dict) else (None, True)


def parse_form_payload(text: str) -> dict[str, Any] | None:
    """A slash command's fields, or an interactivity request's `payload` JSON; None if neither."""
    return read_form(text)[0]


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


# While another process holds SQLite's write lock, the ingress tries again this often.
SQLITE_LOCKED_PAUSE_SECONDS = 0.005
# A form stored late still gets this long to answer in its response (else it is told later).
MIN_RUN_SECONDS = 0.1
BUSY = "Docket is busy right now and nothing was saved. Please try again in a moment."


async def accept(
    services: Services,
    text: str,
    content_type: str,
    worker: IntakeWorker | None,
    store: IntakeStore,
    *,
    payload: dict[str, Any] | None = None,
) -> web.Response | None:
    """Store-then-ack a request that writes; None hands the request to Bolt (inline).

    A form submission is stored leased to this process and run at once by `worker`, so
    errors found while saving still go back into the modal; if this process dies, the row's
    lease runs out and any replica's worker runs it.
    """
    if content_type != FORM:
        return None
    # One deadline from arrival for storing and (a form) running: Slack gives up at 3 s.
    deadline = time.monotonic() + ACK_BUDGET_SECONDS
    if payload is None:
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
    services.bursts.note_ingress()
    pending = _Pending(
        request,
        intake_key(kind, payload, text),
        worker.owner if run_now and worker else None,
        worker.lease_seconds if worker else LEASE_SECONDS,
    )
    if not await store.store(pending, budget=ACK_BUDGET_SECONDS):
        logger.warning("refused a %s %s: the database did not take it in time", kind, name)
        return busy_response(payload)
    stored = pending.done.result()
    if stored is None:
        logger.info("repeated delivery of a %s %s ignored", kind, name)
    elif run_now:
        assert worker is not None
        left = max(MIN_RUN_SECONDS, deadline - time.monotonic())
        answer = await worker.run_now(StoredRequest.of_request(stored, request), budget=left)
        if answer is not None:  # finished in time: its own answer ("" for a plain ack)
            return web.Response(body=answer.encode(), content_type="application/json")
    return _ack(decision.ack)


async def accept_event(services: Services, data: dict[str, Any]) -> web.Response:
    """Store an `event_callback` body (once per event id), then answer 200; the event worker
    processes it from the database. A failed store raises: nothing is acknowledged."""
    if not data.get("event_id") or not isinstance(data.get("event"), dict):
        return web.json_response({"error": "malformed event"}, status=400)
    if data.get("team_id") and data.get("team_id") != services.team_id:
        logger.warning("refused an event for another workspace")
        return web.json_response({"error": "unknown workspace"}, status=403)
    async with services.transaction() as session:
        stored = await store_event(session=session, body=data, at=services.now())
    if stored is None:
        logger.info("duplicate event delivery ignored")
    return web.Response(status=200)


def busy_response(payload: dict[str, Any]) -> web.Response:
    """The answer to a request that could not be stored: nothing was saved, try again."""
    if request_kind(payload) == "view_submission":
        errors = {_first_block(payload): BUSY}
        return web.json_response({"response_action": "errors", "errors": errors})
    return web.json_response({"response_type": "ephemeral", "text": BUSY})


def _ack(ack: dict[str, Any] | None) -> web.Response:
    return web.Response(status=200) if ack is None else web.json_response(ack)


def _first_block(payload: dict[str, Any]) -> str:
    values = ((payload.get("view") or {}).get("state") or {}).get("values") or {}
    return str(next(iter(values), "") or "")


@dataclass
class _Pending:
    request: IntakeRequest
    key: str
    owner: str | None
    lease_seconds: int
    # Answered "busy" after this (time.monotonic()) unless its write has begun.
    deadline: float = 0.0
    done: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    abandoned: bool = False  # answered "busy": must not be written
    committing: bool = False  # its write has begun: wait for it


class IntakeStore:
    """Stores requests before their ack, many per transaction (group commit).

    Requests arriving while a batch is written go into the next one, so a burst costs a few
    commits instead of one each. A batch is one statement, sent in one hand-over: on SQLite
    on the event loop itself through a connection of its own (about a millisecond for 200
    rows; the write lock taken once per batch, ahead of background writers, and never waited
    for there), on PostgreSQL on a connection of its own in autocommit (one round trip).
    A request whose write has not begun within its budget is answered "busy" and is never
    written later; one timer checks the waiting requests' budgets, not one per request.
    """

    MAX_BATCH = 200
    CHECK_EVERY_SECONDS = 0.05

    def __init__(self, services: Services) -> None:
        self.services = services
        self._queue: list[_Pending] = []
        # Requests whose write has not begun (in the queue or in a batch awaiting the lock).
        self._waiting: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._checking: asyncio.TimerHandle | None = None
        self._sqlite = is_sqlite(services.engine)
        self._direct: sa.Engine | None = None
        self._postgres_engine: AsyncEngine | None = None
        self._postgres: AsyncConnection | None = None

    async def store(self, pending: _Pending, *, budget: float) -> bool:
        """True once `pending` is committed (its id, or None for a repeat, is in `done`);
        False when it was answered "busy" (nothing of it is written)."""
        pending.deadline = time.monotonic() + budget
        self._queue.append(pending)
        self._waiting.append(pending)
        self._start_writer()
        if self._checking is None:
            loop = asyncio.get_running_loop()
            self._checking = loop.call_later(self.CHECK_EVERY_SECONDS, self._check_budgets)
        await pending.done
        return not pending.abandoned

    async def close(self) -> None:
        """Let the batches being written finish, then close the ingress's connections."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._checking is not None:
            self._checking.cancel()
            self._checking = None
        direct, postgres = self._direct, self._postgres
        self._direct = self._postgres = None
        if postgres is not None:
            with suppress(Exception):
                await postgres.close()
        if self._postgres_engine is not None:
            await self._postgres_engine.dispose()
            self._postgres_engine = None
        if direct is not None:
            direct.dispose()

    def _start_writer(self) -> None:
        # done(), not a done-callback: a writer that just found the queue empty is done at
        # once, while its callbacks run only later.
        if self._queue and (self._writer is None or self._writer.done()):
            self._writer = asyncio.ensure_future(self._write_batches())

    def _check_budgets(self) -> None:
        """Answer "busy" to every waiting request whose budget ran out before its write."""
        self._checking = None
        now = time.monotonic()
        waiting = []
        for p in self._waiting:
            if p.committing or p.done.done():
                continue
            if p.deadline <= now:
                p.abandoned = True
                p.done.set_result(None)
            else:
                waiting.append(p)
        self._waiting = waiting
        self._queue[:] = [p for p in self._queue if not p.abandoned]
        if waiting:
            loop = asyncio.get_running_loop()
            self._checking = loop.call_later(self.CHECK_EVERY_SECONDS, self._check_budgets)

    async def _write_batches(self) -> None:
        while self._queue:
            batch = [p for p in self._queue[: self.MAX_BATCH] if not p.abandoned]
            del self._queue[: self.MAX_BATCH]
            if not batch:
                continue
            try:
                ids = await self._write(batch)
            except Exception:
                # Its one statement failed as a whole: nothing of the batch was written.
                logger.exception("storing %d requests failed; they are answered busy", len(batch))
                for p in batch:
                    p.abandoned = True
                    if not p.done.done():
                        p.done.set_result(None)
                continue
            for p, new_id in zip(batch, ids, strict=True):
                if not p.done.done():
                    p.done.set_result(new_id)

    async def _write(self, batch: list[_Pending]) -> list[int | None]:
        """Each request's new id (None: a repeat, or answered "busy" meanwhile)."""
        services = self.services
        at = services.now()
        if self._sqlite:
            async with services.sqlite_writer.hold(urgent=True):
                kept, ids = await self._write_sqlite(batch, at)
        else:
            kept = self._committing(batch)
            ids = await self._write_postgres(partial(_write_now, services.workspace_id, kept, at))
        services.wake.intake.set()
        new = dict(zip(map(id, kept), ids, strict=True))
        return [new.get(id(p)) for p in batch]

    @staticmethod
    def _committing(batch: list[_Pending]) -> list[_Pending]:
        """The requests not answered "busy" meanwhile; from here on they wait for their
        write, which commits or fails as a whole."""
        kept = [p for p in batch if not p.abandoned]
        for p in kept:
            p.committing = True
        return kept

    async def _write_sqlite(
        self, batch: list[_Pending], at: datetime
    ) -> tuple[list[_Pending], list[int | None]]:
        """Write on the event loop itself, never waiting there: while another process holds
        the write lock, try again after a pause (requests past their budget drop out)."""
        if self._direct is None:
            self._direct = direct_sqlite_engine(self.services.engine)
        while True:
            connection = self._direct.connect()
            try:
                transaction = connection.begin()  # BEGIN IMMEDIATE
            except sa.exc.OperationalError as exc:
                connection.close()
                if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                    raise
                if all(p.abandoned for p in batch):
                    return [], []
                await asyncio.sleep(SQLITE_LOCKED_PAUSE_SECONDS)
                continue
            with connection:
                kept = self._committing(batch)
                if not kept:
                    transaction.rollback()
                    return [], []
                try:
                    ids = _write_now(self.services.workspace_id, kept, at, connection)
                    transaction.commit()
                except BaseException:
                    transaction.rollback()
                    raise
                return kept, ids

    async def _write_postgres(self, write: Write) -> list[int | None]:
        if self._postgres_engine is None:
            self._postgres_engine = ingress_postgres_engine(self.services.engine)
        for attempt in (1, 2):
            reused = self._postgres is not None
            if self._postgres is None:
                self._postgres = await self._postgres_engine.connect()
            try:
                return await self._postgres.run_sync(write)
            except Exception as exc:
                # The connection may have broken since its last batch (a server restart):
                # it is replaced, and a batch it lost is tried once more on a new one.
                postgres, self._postgres = self._postgres, None
                with suppress(Exception):
                    await postgres.close()
                lost = getattr(exc, "connection_invalidated", False) or isinstance(
                    exc, (OSError, sa.exc.InterfaceError)
                )
                if not (reused and lost) or attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _items(batch: list[_Pending]) -> list[tuple[IntakeRequest, str, str | None, int]]:
    return [(p.request, p.key, p.owner, p.lease_seconds) for p in batch]


Write = Callable[[sa.Connection], list[int | None]]


def _write_now(
    workspace_id: int, batch: list[_Pending], at: datetime, connection: sa.Connection
) -> list[int | None]:
    return store_requests_now(
        connection=connection, workspace_id=workspace_id, items=_items(batch), at=at
    )


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
