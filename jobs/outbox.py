"""The outbox worker: delivers queued Slack calls, file uploads and emails.

Flow. A handler commits a change and its outbox rows in one transaction, and the commit sets
`services.wake.outbox`; the worker wakes at once (the idle poll, 5 s, only catches rows other
processes queued). It leases due rows that head their ordering key's line (models.outbox),
up to `max_inflight`, and delivers each in its own task: rows of different tickets go out
side by side, at most `concurrency` Slack or SMTP calls at a time, each after the rate limiter
(jobs.ratelimit) says its method and channel have room. A row's lease is renewed while it is
in hand, so a long wait for a busy channel never lets another worker take it.

Lanes. A person's DM (an assignee's reply notice, an alert) is claimed first and waits only
behind that person's earlier DMs (models.outbox), never behind a card update or a copy in a
busy channel. The limiter books nothing ahead: a row waiting for a paced channel or method
holds no place that a DM to someone else would have to wait behind, and a row that is not a DM
leaves a third of each method's burst to DMs. Card updates superseded by a newer state of the
same card and thread copies folded into one message were settled when they were queued.

Outcomes. Success is recorded at once, in its own short transaction (with the ticket's card
location when the row posted the card). A 429 blocks that method or channel for the
Retry-After Slack sent and puts the row back for then. 5xx answers, timeouts, connection
errors, a mail relay that is down, and Slack's transient errors are retried with exponential
back-off and jitter until `docket_outbox_retry_hours` (24 h) after the row was queued; then the
row is parked dead with its last error. Permanent errors (channel_not_found, not_in_channel,
invalid_auth, is_archived, invalid_blocks, msg_too_long, user_not_found: everything not known
to be transient) are tried once and parked dead with the reason. Each dead row queues one DM
to each admin (idempotency key per dead row and admin); a dead alert raises no alert.

Duplicates. A row is delivered again only if the worker dies (or loses the database) after
Slack or the relay accepted it and before the delivered mark commits: the mark is the next
thing the task does, in a transaction of its own, retried briefly on database errors, so the
window is that one commit. The delivery slot is held until the mark is written, so however
slow the database, at most `concurrency` (8) accepted calls are ever in the window at once.
A request that times out after Slack took it is the same window seen from the other side (we
cannot know, so it is retried), and so is a database unreachable for longer than the lease
(another replica may then take the row). Everything else is exactly once: idempotency keys
stop doubled enqueues, leases stop doubled claims.

Replicas. On PostgreSQL several `docket serve` replicas run a worker each; `FOR UPDATE SKIP
LOCKED` and the lease keep them off each other's rows. On SQLite one process delivers (claims
are serialised by the write lock, so a second would be harmless, but there is no gain).

Client. The worker calls Slack through its own AsyncWebClient built with no retry handlers.
slack_sdk's handlers retry inside the call by sleeping there (AsyncRateLimitErrorRetryHandler
sleeps Retry-After, AsyncServerErrorRetryHandler backs off briefly); here a retry must instead
survive a restart, be visible to other replicas, keep the ticket's order and free the delivery
slot while it waits, so every retry is a rescheduled row and the worker owns all timing.
Handlers keep `services.slack`, whose retry handlers suit a person waiting on a modal.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import smtplib
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from handlers.blocks.common import escape
from jobs.ratelimit import Call, RateLimiter
from models.notify import admin_slack_ids
from models.outbox import (
    EMAIL,
    LANE_BULK,
    LANE_DM,
    EmailSend,
    FileUpload,
    PayloadError,
    SlackCall,
    claim_due,
    describe,
    enqueue,
    extend_leases,
    mark_dead,
    mark_delivered,
    mark_retry,
    next_due_at,
    parse_payload,
    release,
    slack_call,
)
from models.routing import ThreadTarget
from models.tables import OutboxMessage
from models.tickets import card_location, card_thread_target, store_card_location

logger = logging.getLogger(__name__)

# Slack errors worth retrying; any other error is permanent (tried once, parked dead).
TRANSIENT_SLACK_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
    }
)


_UPLOAD_STATUS = re.compile(r"status: (\d{3})")


@dataclass(frozen=True)
class TimeSource:
    """The worker's clock and sleep. Tests run both faster together (simulated minutes)."""

    now: Callable[[], datetime]
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


# During a burst of incoming requests the worker claims at most this often.
BURST_CLAIM_EVERY_SECONDS = 0.25


@dataclass(frozen=True)
class WorkerConfig:
    """Tuning; the defaults suit production."""

    concurrency: int = 8  # Slack and SMTP calls in flight at once
    max_inflight: int = 100  # rows in hand at once (most of them waiting on the limiter)
    per_target: int = 10  # rows in hand per channel: a paced channel leaves room for others
    lease_seconds: float = 120.0
    idle_poll: float = 5.0  # safety net for rows queued by other processes
    retry_hours: float = 24.0
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    stop_grace: float = 5.0  # how long a stopping worker lets calls in flight finish
    request_timeout: float = 15.0
    smtp_timeout: float = 30.0


# -- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    result: dict[str, Any]
    card: tuple[int, str, str] | None = None  # (ticket id, channel, ts) to store


@dataclass(frozen=True)
class Retry:
    error: str
    retry_after: float | None = None  # Slack's Retry-After; None means back off


@dataclass(frozen=True)
class Dead:
    error: str


Outcome = Delivered | Retry | Dead


@dataclass(frozen=True)
class Claimed:
    """What a delivery task needs from its row (a plain copy, free of the session)."""

    id: int
    workspace_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    target: str | None = None
    last_error: str | None = None
    lane: int = LANE_BULK

    @classmethod
    def of(cls, row: OutboxMessage) -> Claimed:
        assert row.id is not None
        payload = dict(row.payload or {})
        return cls(
            row.id,
            row.workspace_id,
            row.kind,
            payload,
            row.attempts,
            row.created_at,
            row.target,
            row.last_error,
            row.lane,
        )


@dataclass
class _Prepared:
    calls: list[Call] = field(default_factory=list)  # what the rate limiter must allow
    send: Callable[[], Awaitable[Outcome]] | None = None
    outcome: Outcome | None = None  # decided without sending (e.g. a card never posted)


# -- email -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relay:
    """Where mail goes: smtp://host:port, smtp+starttls://..., smtps://user:pass@host:port."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None


def parse_relay(url: str) -> Relay:
    """Read DOCKET_SMTP_RELAY; ValueError names what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtp+starttls", "smtps"):
        raise ValueError(f"unsupported SMTP relay scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("the SMTP relay URL has no host")
    implicit = scheme == "smtps"
    return Relay(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587 if scheme == "smtp+starttls" else 25),
        implicit_tls=implicit,
        starttls=scheme == "smtp+starttls",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def smtp_send(
    relay: Relay, sender: str, recipients: list[str], data: bytes, timeout: float
) -> dict[str, Any]:
    """Hand one message to the relay (blocking: run it in a thread)."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if relay.implicit_tls:
        smtp = smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if relay.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if relay.username:
            smtp.login(relay.username, relay.password or "")
        refused = smtp.sendmail(sender, recipients, data)
    return {"refused": {addr: code for addr, (code, _msg) in refused.items()}}


def classify_smtp_error(exc: BaseException) -> Outcome:
    """4xx and connection trouble are retried; 5xx (and bad configuration) are permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        text = ", ".join(f"{addr}: {code}" for addr, (code, _m) in exc.recipients.items())
        if any(400 <= code < 500 for code in codes):
            return Retry(f"recipients refused for now ({text})")
        return Dead(f"recipients refused ({text})")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Dead(f"the relay refused our login ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        text = f"SMTP {exc.smtp_code} {message}"[:500]
        return Dead(text) if 500 <= exc.smtp_code < 600 else Retry(text)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Dead(f"the relay does not support what we need: {exc}")
    return Retry(f"mail relay unreachable: {type(exc).__name__}: {exc}"[:500])


# -- Slack -----------------------------------------------------------------------------------


def delivery_client(
    slack: AsyncWebClient, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """A client like `slack` (token, base URL) without retry handlers: the worker retries."""
    return AsyncWebClient(
        token=slack.token,
        base_url=slack.base_url,
        timeout=slack.timeout,
        session=session,
        retry_handlers=[],
    )


# How a Retry after a request that went out but got no answer begins.
NO_ANSWER = "Slack unreachable (no answer)"
# The metadata event type that marks a message as an outbox row's (its id in the payload).
OUTBOX_EVENT = "docket_outbox"

# Slack's Retry-After is honoured up to this; a larger value (a broken proxy, a hostile answer)
# would block a channel in memory until restart.
MAX_RETRY_AFTER_SECONDS = 15 * 60


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        seconds = max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
    if not seconds <= MAX_RETRY_AFTER_SECONDS:  # also catches nan and inf
        logger.warning(
            "Slack asked to wait %.0f s (Retry-After); waiting %d s instead",
            seconds if seconds == seconds else -1,
            MAX_RETRY_AFTER_SECONDS,
        )
        return float(MAX_RETRY_AFTER_SECONDS)
    return seconds


def classify_slack_error(exc: SlackApiError) -> Outcome:
    """429 -> wait as told (capped); 5xx, a 200 whose body is not Slack's JSON (empty, cut
    short, an HTML page) and transient errors -> back off; anything else is permanent."""
    response = exc.response
    # slack_sdk hands over its own response, or (for a body it cannot parse) aiohttp's.
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    data = getattr(response, "data", None)
    error = str(data.get("error") or "") if isinstance(data, Mapping) else ""
    if status == 429:
        return Retry(error or "ratelimited", retry_after=_retry_after(exc))
    if status >= 500:
        return Retry(f"HTTP {status} from Slack")
    if status < 300 and (not isinstance(data, Mapping) or "ok" not in data):
        # The answer was cut or mangled on its way: Slack may not have acted, try again.
        return Retry(f"HTTP {status} from Slack with a body that is not Slack's JSON")
    if error in TRANSIENT_SLACK_ERRORS:
        return Retry(error)
    return Dead(error or f"HTTP {status} from Slack")


def classify_request_error(exc: SlackRequestError) -> Outcome:
    """slack_sdk's own errors: bad arguments are permanent, but a file upload step that got
    a 5xx or 429 (reported as "Failed to upload a file (status: 503, ...") is retried."""
    found = _UPLOAD_STATUS.search(str(exc))
    status = int(found.group(1)) if found else 0
    if status >= 500 or status == 429:
        return Retry(f"file upload answered HTTP {status}")
    return Dead(f"Slack request not sent: {exc}"[:500])


def _small_result(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {}
    keep = ("channel", "ts", "message_ts", "permalink")
    result = {k: data[k] for k in keep if k in data}
    files = data.get("files")
    if isinstance(files, list):
        result["files"] = [f.get("id") for f in files if isinstance(f, Mapping)]
    return result


# -- the worker ------------------------------------------------------------------------------


class OutboxWorker:
    """Delivers outbox rows until stopped. One per process; `run` is the loop."""

    def __init__(
        self,
        services: Services,
        *,
        owner: str,
        client: AsyncWebClient | None = None,
        limiter: RateLimiter | None = None,
        clock: TimeSource | None = None,
        config: WorkerConfig | None = None,
        rng: random.Random | None = None,
        send_mail: Callable[[Relay, str, list[str], bytes, float], dict[str, Any]] = smtp_send,
    ) -> None:
        self.services = services
        self.owner = owner[:64]
        self.time = clock or TimeSource(now=services.now)
        self.config = config or WorkerConfig(
            retry_hours=services.settings.docket_outbox_retry_hours
        )
        self.limiter = limiter or RateLimiter(clock=self.time.monotonic)
        self._client = client
        self._session: aiohttp.ClientSession | None = None
        self._rng = rng or random.Random()
        self._send_mail = send_mail
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._targets: dict[int, str | None] = {}
        # Rows waiting their turn (limiter or a free slot): the only ones safe to cancel.
        self._waiting: set[int] = set()
        self._hand_back: set[int] = set()
        self._stopping = False
        # SQLite takes its write lock at BEGIN, and waiting connections sleep in growing steps:
        # the worker's own lanes take turns here instead (PostgreSQL locks rows, no gate).
        sqlite = services.engine.dialect.name == "sqlite"
        self._gate: AbstractAsyncContextManager[Any] = asyncio.Lock() if sqlite else nullcontext()
        # Outcomes recorded by this worker: "delivered", "retried", "dead".
        self.counts: Counter[str] = Counter()
        self._lane_done = asyncio.Event()
        self._finished = asyncio.Event()
        self._stop: asyncio.Event | None = None

    # -- loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then hand back what is still in hand."""
        self._stop = stop
        if self._client is None:
            timeout = aiohttp.ClientTimeout(total=self.config.request_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._client = delivery_client(self.services.slack, self._session)
        heartbeat_stop = asyncio.Event()
        heartbeat = asyncio.ensure_future(self._heartbeat(heartbeat_stop))
        wake = self.services.wake.outbox
        try:
            while not stop.is_set():
                # Cleared before looking, so a commit made while we look is never missed.
                wake.clear()
                self._lane_done.clear()
                try:
                    delay = await self._fill()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("outbox: claiming failed; trying again shortly")
                    delay = 1.0
                if self.services.bursts.remaining() > 0:
                    # Requests are arriving in a burst: their acks go first. Rows claimed
                    # now are delivered meanwhile; the next claim waits a moment.
                    await asyncio.sleep(BURST_CLAIM_EVERY_SECONDS)
                await self._wait(delay, stop)
        finally:
            try:
                await self._shutdown()
            finally:
                # Stopped, not cancelled: a cancelled SQLite transaction would hold the lock.
                heartbeat_stop.set()
                await asyncio.gather(heartbeat, return_exceptions=True)
                self._finished.set()

    async def close(self) -> None:
        """Stop (if not already) and wait until rows in hand are recorded or handed back."""
        if self._stop is not None:
            self._stop.set()
            await asyncio.wait_for(self._finished.wait(), self.config.stop_grace + 5.0)

    def _now(self) -> datetime:
        return self.time.now()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._gate, self.services.transaction() as session:
            yield session

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._gate, self.services.read() as session:
            yield session

    async def _fill(self) -> float | None:
        """Claim what is due; returns how long until more could be, None when unknown."""
        free = self.config.max_inflight - len(self._lanes)
        if free <= 0:
            return None  # a finishing delivery wakes us
        now = self._now()
        async with self._transaction() as session:
            rows = await claim_due(
                session=session,
                workspace_id=self.services.workspace_id,
                now=now,
                owner=self.owner,
                limit=free,
                lease_seconds=self.config.lease_seconds,
                exclude=list(self._lanes),
                per_target=self.config.per_target,
                in_hand_targets=Counter(t for t in self._targets.values() if t is not None),
            )
            claimed = [Claimed.of(row) for row in rows]
            due = None
            if len(claimed) < free:
                # In the same transaction: one round trip fewer per wake-up.
                in_hand = [*self._lanes, *(item.id for item in claimed)]
                due = await next_due_at(
                    session=session, workspace_id=self.services.workspace_id, exclude=in_hand
                )
        for item in claimed:
            task = asyncio.ensure_future(self._deliver(item))
            self._lanes[item.id] = task
            self._targets[item.id] = item.target
            task.add_done_callback(self._lane_finished)
        if len(claimed) == free:
            return 0.0
        if due is None:
            return None
        delay = (due - self._now()).total_seconds()
        # A row due "now" that we could not claim (clock edge): look again very soon.
        return max(delay, 0.0 if claimed else 0.01)

    def _lane_finished(self, task: asyncio.Task[None]) -> None:
        for row_id, lane in list(self._lanes.items()):
            if lane is task:
                del self._lanes[row_id]
                self._targets.pop(row_id, None)
        self._lane_done.set()

    async def _wait(self, delay: float | None, stop: asyncio.Event) -> None:
        if delay is not None and delay <= 0:
            await asyncio.sleep(0)
            return
        timeout = self.config.idle_poll if delay is None else min(delay, self.config.idle_poll)
        waiters = [
            asyncio.ensure_future(self.services.wake.outbox.wait()),
            asyncio.ensure_future(self._lane_done.wait()),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.time.sleep(timeout)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Renew the leases of rows in hand, so a slow delivery is never claimed twice."""
        every = self.config.lease_seconds / 3
        while not stop.is_set():
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.time.sleep(every)),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if stop.is_set() or not self._lanes:
                continue
            until = self._now() + timedelta(seconds=self.config.lease_seconds)
            try:
                async with self._transaction() as session:
                    await extend_leases(
                        session=session, row_ids=list(self._lanes), owner=self.owner, until=until
                    )
            except Exception:
                logger.exception("outbox: renewing leases failed")

    async def _shutdown(self) -> None:
        """Hand back rows still waiting their turn; let calls under way finish and be recorded.

        Only a row waiting (for the limiter or a free slot) is cancelled: nothing was sent for
        it. A row being prepared, sent or recorded is given `stop_grace` seconds; one still
        under way after that is cancelled and its lease left to expire (the duplicate window).
        """
        self._stopping = True
        for row_id in list(self._waiting):
            self._hand_back.add(row_id)
            self._lanes[row_id].cancel()
        lanes = list(self._lanes.values())
        busy = [task for row_id, task in self._lanes.items() if row_id not in self._hand_back]
        if busy:
            _done, late = await asyncio.wait(busy, timeout=self.config.stop_grace)
            for task in late:
                logger.warning("outbox: a delivery was still under way at shutdown")
                task.cancel()
        await asyncio.gather(*lanes, return_exceptions=True)
        if self._hand_back:
            try:
                async with self._transaction() as session:
                    for row_id in self._hand_back:
                        await release(
                            session=session, row_id=row_id, owner=self.owner, retry_at=self._now()
                        )
            except Exception:
                logger.exception("outbox: handing rows back failed; their leases will expire")
        if self._session is not None:
            await self._session.close()

    # -- one row ----------------------------------------------------------------------------

    async def _deliver(self, item: Claimed) -> None:
        """Prepare, wait for the limiter and a slot, send, record.

        The slot is held until the outcome is recorded: if the database stalls, at most
        `concurrency` accepted calls can be waiting for their delivered mark (the window in
        which a crash would send them again).
        """
        try:
            prepared = await self._prepare(item)
        except Exception as exc:
            prepared = _Prepared(outcome=self._unexpected(item, exc))
        if prepared.outcome is not None or prepared.send is None:
            await self._record(item, prepared.outcome or Dead("nothing to send"))
            return
        if self._stopping:
            # Prepared after shutdown began: nothing was sent, so hand it back.
            self._hand_back.add(item.id)
            raise asyncio.CancelledError
        self._waiting.add(item.id)
        try:
            await self._take_turn(prepared.calls, urgent=item.lane == LANE_DM)
        finally:
            self._waiting.discard(item.id)
        try:
            try:
                outcome = await prepared.send()
            except Exception as exc:
                outcome = self._unexpected(item, exc)
            self.limiter.settle(prepared.calls)
            await self._record(item, outcome)
        finally:
            self._slots.release()

    async def _take_turn(self, calls: list[Call], *, urgent: bool) -> None:
        """Wait until the limiter has room for `calls` and a delivery slot is free; return
        holding the slot, with the limiter's slots taken at this moment (so the call leaves
        at once and never lands closer to its channel's previous message than allowed).

        Nothing is booked ahead: a row waiting for a busy channel keeps no one else waiting.
        """
        while True:
            wait = self.limiter.wait_for(calls, urgent=urgent)
            if wait > 0:
                await self.time.sleep(wait)
                continue
            await self._slots.acquire()
            wait = self.limiter.try_take(calls, urgent=urgent)
            if wait <= 0:
                return
            self._slots.release()
            await self.time.sleep(wait)

    @staticmethod
    def _unexpected(item: Claimed, exc: Exception) -> Outcome:
        # A bug or an unexpected failure: back off like a transient error, never spin.
        logger.error("outbox: row %s failed unexpectedly", item.id, exc_info=exc)
        return Retry(f"{type(exc).__name__}: {exc}"[:500])

    async def _prepare(self, item: Claimed) -> _Prepared:
        try:
            payload = parse_payload(item.kind, item.payload)
        except PayloadError as exc:
            return _Prepared(outcome=Dead(str(exc)))
        if isinstance(payload, SlackCall):
            return await self._prepare_slack(item, payload)
        if isinstance(payload, FileUpload):
            return await self._prepare_upload(item, payload)
        return self._prepare_email(payload)

    async def _thread_target(self, workspace_id: int, ticket_id: int) -> ThreadTarget | Dead:
        """The card's channel and ts, or the triage channel (no thread) when never posted."""
        async with self._read() as session:
            target = await card_thread_target(
                session=session, workspace_id=workspace_id, ticket_id=ticket_id
            )
        if target is None:
            return Dead(f"ticket {ticket_id} has no card and no triage channel is set")
        return target

    async def _prepare_slack(self, item: Claimed, call: SlackCall) -> _Prepared:
        method = call.method
        args = dict(call.args)
        if call.updates_card_of:
            async with self._read() as session:
                card = await card_location(
                    session=session, workspace_id=item.workspace_id, ticket_id=call.updates_card_of
                )
            if card is None:
                return _Prepared(outcome=Dead(f"ticket {call.updates_card_of} is gone"))
            if not card.posted:
                # Nothing to update; the card post's own row reports why it is missing.
                return _Prepared(outcome=Delivered({"skipped": "the card was never posted"}))
            args["channel"], args["ts"] = card.channel, card.ts
        if call.in_thread_of:
            target = await self._thread_target(item.workspace_id, call.in_thread_of)
            if isinstance(target, Dead):
                return _Prepared(outcome=target)
            args["channel"] = target.channel
            args.pop("reply_broadcast", None)
            if target.thread_ts is None:
                args.pop("thread_ts", None)
            else:
                args["thread_ts"] = target.thread_ts
        store_for = call.posts_card_of
        channel = args.get("channel") or args.get("user_id")
        if method == "chat.postMessage":
            # Marks the message as this row's, so a post whose answer was lost is found again.
            args.setdefault(
                "metadata", {"event_type": OUTBOX_EVENT, "event_payload": {"outbox_id": item.id}}
            )

        async def send() -> Outcome:
            outcome: Outcome | None = None
            posting = method == "chat.postMessage"
            if posting and (item.last_error or "").startswith(NO_ANSWER):
                outcome = await self._find_posted(item, args)  # the earlier try may have landed
            if outcome is None:
                outcome = await self._slack(method, args)
            if posting and isinstance(outcome, Retry) and outcome.error.startswith(NO_ANSWER):
                # Slack may have posted and answered too late: adopt it, do not post twice.
                outcome = await self._find_posted(item, args) or outcome
            if isinstance(outcome, Delivered) and store_for and method == "chat.postMessage":
                result = outcome.result
                if result.get("channel") and result.get("ts"):
                    card = (store_for, str(result["channel"]), str(result["ts"]))
                    return Delivered(result, card=card)
            return outcome

        return _Prepared(calls=[(method, channel)], send=send)

    async def _find_posted(self, item: Claimed, args: dict[str, Any]) -> Delivered | None:
        """This row's message, when Slack already has it (found by its metadata)."""
        assert self._client is not None
        channel = str(args.get("channel") or "")
        if channel[:1] not in ("C", "G", "D"):
            return None  # a user id: the DM's channel is only known from Slack's answer
        try:
            if args.get("thread_ts"):
                found = await self._client.conversations_replies(
                    channel=channel,
                    ts=str(args["thread_ts"]),
                    include_all_metadata=True,
                    limit=200,
                )
            else:
                # The newest 200: a lost answer is retried within minutes.
                found = await self._client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=200
                )
        except Exception as exc:
            logger.info("outbox: row %s: could not look for an earlier post (%s)", item.id, exc)
            return None
        for message in found.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == OUTBOX_EVENT and payload.get("outbox_id") == item.id:
                logger.info("outbox: row %s was posted already; adopting it", item.id)
                return Delivered({"ok": True, "channel": channel, "ts": message.get("ts")})
        return None

    async def _slack(self, method: str, args: dict[str, Any]) -> Outcome:
        assert self._client is not None
        channel = args.get("channel")
        try:
            # slack_sdk's named method knows each method's encoding (JSON or form).
            named = getattr(self._client, method.replace(".", "_"), None)
            if callable(named):
                response = await named(**args)
            else:
                response = await self._client.api_call(method, json=args)
        except SlackApiError as exc:
            outcome = classify_slack_error(exc)
            if isinstance(outcome, Retry) and outcome.retry_after is not None:
                self.limiter.penalise(method, channel, outcome.retry_after)
            return outcome
        except SlackRequestError as exc:
            return classify_request_error(exc)
        except (TimeoutError, aiohttp.ServerDisconnectedError) as exc:
            # Sent, but no answer: Slack may have acted (see _find_posted).
            return Retry(f"{NO_ANSWER}: {type(exc).__name__}: {exc}"[:500])
        except (aiohttp.ClientError, OSError) as exc:
            return Retry(f"Slack unreachable: {type(exc).__name__}: {exc}"[:500])
        return Delivered(_small_result(response.data))

    async def _prepare_upload(self, item: Claimed, upload: FileUpload) -> _Prepared:
        channel = upload.channel
        thread_ts = upload.thread_ts
        if upload.in_thread_of:
            target = await self._thread_target(item.workspace_id, upload.in_thread_of)
            if isinstance(target, Dead):
                return _Prepared(outcome=target)
            channel, thread_ts = target.channel, target.thread_ts
        if not channel:
            return _Prepared(outcome=Dead("an upload needs a channel"))
        try:
            content = base64.b64decode(upload.content_b64, validate=True)
        except ValueError:
            return _Prepared(outcome=Dead("the upload's content is not valid base64"))
        args: dict[str, Any] = {
            "channel": channel,
            "content": content,
            "filename": upload.filename or "file",
            "title": upload.title or upload.filename or "file",
        }
        if upload.initial_comment:
            args["initial_comment"] = upload.initial_comment
        if thread_ts:
            args["thread_ts"] = thread_ts
        calls: list[Call] = [
            ("files.getUploadURLExternal", None),
            ("files.completeUploadExternal", str(channel)),
        ]
        return _Prepared(calls=calls, send=lambda: self._slack("files.upload_v2", args))

    def _prepare_email(self, email: EmailSend) -> _Prepared:
        relay_url = self.services.settings.docket_smtp_relay
        if not relay_url:
            return _Prepared(outcome=Dead("no mail relay is set (DOCKET_SMTP_RELAY)"))
        try:
            relay = parse_relay(relay_url)
        except ValueError as exc:
            return _Prepared(outcome=Dead(f"DOCKET_SMTP_RELAY: {exc}"))
        recipients = list(email.to)
        if not recipients:
            return _Prepared(outcome=Dead("the email has no recipients"))
        sender = email.sender or self.services.settings.docket_support_address
        try:
            if email.raw_b64:
                data = base64.b64decode(email.raw_b64, validate=True)
            else:
                data = (email.raw or "").encode("utf-8")
        except ValueError:
            return _Prepared(outcome=Dead("the email's raw_b64 is not valid base64"))
        if not data:
            return _Prepared(outcome=Dead("the email has no message"))
        timeout = self.config.smtp_timeout

        async def send() -> Outcome:
            try:
                result = await asyncio.to_thread(
                    self._send_mail, relay, sender, recipients, data, timeout
                )
            except (smtplib.SMTPException, OSError) as exc:
                return classify_smtp_error(exc)
            return Delivered(result)

        return _Prepared(send=send)

    # -- recording --------------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** min(attempts, 30))
        # "Equal jitter": at least half the delay, so retries after an outage spread out.
        return delay / 2 + self._rng.uniform(0, delay / 2)

    async def _record(self, item: Claimed, outcome: Outcome) -> None:
        """Write the outcome in its own short transaction, retrying briefly on database errors."""
        for attempt in range(4):
            try:
                recorded = await self._write_outcome(item, outcome)
            except asyncio.CancelledError:
                raise
            except (OperationalError, DBAPIError):
                if attempt == 3:
                    logger.exception("outbox: could not record row %s (lease expires)", item.id)
                    return
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if recorded is None:
                logger.warning("outbox: row %s went to another worker meanwhile", item.id)
            else:
                self.counts[recorded] += 1
            return

    async def _write_outcome(self, item: Claimed, outcome: Outcome) -> str | None:
        """Record `outcome`; returns what was recorded, None when the row is no longer ours."""
        now = self._now()
        async with self._transaction() as session:
            if isinstance(outcome, Delivered):
                row = await mark_delivered(
                    session=session, row_id=item.id, owner=self.owner, at=now, result=outcome.result
                )
                if row is not None and outcome.card is not None:
                    ticket_id, channel, ts = outcome.card
                    await store_card_location(
                        session=session,
                        workspace_id=item.workspace_id,
                        ticket_id=ticket_id,
                        channel=channel,
                        ts=ts,
                    )
                return None if row is None else "delivered"
            if isinstance(outcome, Retry):
                deadline = item.created_at + timedelta(hours=self.config.retry_hours)
                wait = outcome.retry_after
                if wait is None:
                    wait = self._backoff(item.attempts)
                if now < deadline:
                    # One last try at the deadline rather than giving up early.
                    retry_at = min(now + timedelta(seconds=wait), deadline)
                    retried = await mark_retry(
                        session=session,
                        row_id=item.id,
                        owner=self.owner,
                        error=outcome.error,
                        retry_at=retry_at,
                    )
                    return None if retried is None else "retried"
                error = f"gave up after {self.config.retry_hours:g} h: {outcome.error}"
            else:
                error = outcome.error
            dead = await mark_dead(session=session, row_id=item.id, owner=self.owner, error=error)
            if dead is None:
                return None
            # A relay's refusal echoes the customer's address: the reason stays on the row.
            reason = error if item.kind != EMAIL else "the mail relay refused it"
            logger.warning("outbox: row %s (%s) is dead: %s", item.id, item.kind, reason)
            if not item.payload.get("alert_for"):
                await self._alert_admins(session, dead, error, now)
            return "dead"

    async def _alert_admins(
        self, session: AsyncSession, row: OutboxMessage, error: str, now: datetime
    ) -> None:
        """Tell each admin once per dead row; the alert itself is marked so it never alerts."""
        assert row.id is not None
        admins = await admin_slack_ids(
            session=session,
            workspace_id=row.workspace_id,
            extra=self.services.settings.docket_admins,
        )
        text = (
            f":warning: Docket could not deliver outbox message {row.id} "
            f"({escape(describe(row))}): {escape(error)}\n"
            "Admins can see it and retry it with `/docket outbox`."
        )
        for admin in admins:
            await enqueue(
                session=session,
                workspace_id=row.workspace_id,
                key=f"outbox-dead:{row.id}:{admin}",
                payload=replace(
                    slack_call("chat.postMessage", channel=admin, text=text), alert_for=row.id
                ),
                at=now,
            )
