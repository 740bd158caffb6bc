"""Run stored Slack requests (commands, actions, submissions) from the database, once each.

The worker leases pending rows of its workspace, at most `capacity` in flight per process,
so a burst is absorbed by the table rather than by memory: the ingress keeps storing and
acknowledging, and the worker catches up. A run that fails is retried with back-off; after
the last attempt the person is told once what failed and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.services import Services
from handlers.blocks.intake import failure_text
from jobs.loop import run_worker
from models.intake import (
    LEASE_SECONDS,
    IntakeClaim,
    IntakeRequest,
    claim_requests,
    current_claims,
    release_claim,
    settle_failure,
)
from models.tables import SlackIntake

logger = logging.getLogger(__name__)

# Batches whose follow-up work (answers) may still run while the next batch is created.
MAX_FOLLOW_UPS = 2


@dataclass(frozen=True)
class StoredRequest:
    """A leased row, detached from its session."""

    intake_id: int
    kind: str
    name: str
    user_id: str
    response_url: str | None
    content_type: str
    body: str

    @classmethod
    def of_request(cls, intake_id: int, request: IntakeRequest) -> StoredRequest:
        return cls(
            intake_id,
            request.kind,
            request.name,
            request.user_id,
            request.response_url,
            request.content_type,
            request.body,
        )

    @classmethod
    def of(cls, row: SlackIntake) -> StoredRequest:
        assert row.id is not None
        return cls(
            row.id, row.kind, row.name, row.user_id, row.response_url, row.content_type, row.body
        )


# Runs a request through the listeners; returns what they answered (a JSON body or None).
Runner = Callable[[StoredRequest], Awaitable[str | None]]
# Delivers an answer nobody waited for (a form's new view, or its errors).
Deliver = Callable[[StoredRequest, str], Awaitable[None]]


@dataclass(frozen=True)
class Batch:
    """Stored requests of one kind and name that `run` does together in one transaction.

    `run` gets the stored bodies; it raises when nothing was done, and then every request
    of the batch runs on its own through the listeners. What it returns (answering the
    people, say) runs after the batch has committed, beside the next batch.
    """

    kind: str
    name: str
    run: Callable[[list[str]], Awaitable[Callable[[], Awaitable[None]] | None]]
    size: int = 200
    # While requests keep arriving, a smaller batch keeps SQLite's write lock short.
    size_when_busy: int = 20
    # Whether a stored body may join a batch; one that would be refused runs on its own, so
    # its person gets their own answer and the rest of the batch is not undone with it.
    accepts: Callable[[str], bool] = lambda _body: True


def describe(kind: str, name: str) -> str:
    """How the failure message names the request."""
    if kind == "slash_command":
        return f"your `{name}` command"
    if kind == "view_submission":
        return "the form you submitted"
    return "what you clicked"


class IntakeWorker:
    """Claims stored requests for one workspace and runs each through `run_request`."""

    def __init__(
        self,
        services: Services,
        run_request: Runner,
        *,
        owner: str,
        deliver: Deliver | None = None,
        capacity: int = 8,
        lease_seconds: int = LEASE_SECONDS,
        batch: Batch | None = None,
    ) -> None:
        self.services = services
        self.run_request = run_request
        self.deliver = deliver
        self.batch = batch
        self.owner = owner
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._batching: asyncio.Task[Any] | None = None
        self._follow_ups: set[asyncio.Task[Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run stored requests until `stop` is set."""
        await run_worker("intake", self.step, self.services.wake.intake, stop)

    async def step(self) -> float | None:
        """Claim as many rows as there are free slots and start them; 0 when more may wait.

        A backlog of the batch's kind runs as one batch at a time (a batch is one slot).
        """
        burst = self.services.bursts.remaining()
        busy = burst > 0
        # One batch at a time; its answers may still be going out while the next is created.
        ready = self._batching is None and len(self._follow_ups) < MAX_FOLLOW_UPS
        batch = self.batch if ready else None
        free = (1 if busy else self.capacity) - len(self.in_flight)
        if free <= 0 and batch is None:
            # A finishing run sets the wake event; a burst's end is checked for.
            return burst if busy else None
        batched: list[StoredRequest] = []
        lone: list[StoredRequest] = []
        size = claimed = 0
        async with self.services.transaction() as session:
            claim = partial(
                claim_requests,
                session=session,
                workspace_id=self.services.workspace_id,
                owner=self.owner,
                now=self.services.now(),
                lease_seconds=self.lease_seconds,
            )
            if batch is not None:
                size = batch.size_when_busy if busy else batch.size
                rows = await claim(limit=size, only=(batch.kind, batch.name))
                claimed = len(rows)
                for request in map(StoredRequest.of, rows):
                    (batched if batch.accepts(request.body) else lone).append(request)
                free -= 1 if batched else 0
            kinds = self.batch
            others = (kinds.kind, kinds.name) if kinds is not None else None
            rows = await claim(limit=free, excluding=others)
            stored = [StoredRequest.of(row) for row in rows]
        if batch is not None and len(batched) > 1:
            self._batching = self._track(self._paced(self._process_batch(batch, batched)))
            stored = lone + stored
        else:
            stored = batched + lone + stored
        for request in stored:
            self._track(self._paced(self._process(request, deliver_answer=True)))
        more = (free > 0 and len(stored) >= free) or (size > 0 and claimed >= size)
        if not more:
            return None
        return burst if busy else 0

    def _track(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self.in_flight.add(task)
        task.add_done_callback(self._done)
        return task

    async def _paced(self, work: Awaitable[Any]) -> None:
        """Run `work`; during a burst of requests, then rest, keeping its slot."""
        started = time.monotonic()
        await work
        await self.services.bursts.rest_after(time.monotonic() - started)

    async def _process_batch(self, batch: Batch, requests: list[StoredRequest]) -> None:
        """Run a batch in one transaction; if it fails, run each request on its own."""
        claims = tuple(IntakeClaim(r.intake_id, self.owner) for r in requests)
        token = current_claims.set(claims)
        follow_up = None
        try:
            follow_up = await batch.run([r.body for r in requests])
            failed = False
        except Exception:
            logger.warning(
                "running %d stored %s together failed; running them one by one",
                len(requests),
                batch.name,
                exc_info=True,
            )
            failed = True
        finally:
            current_claims.reset(token)
        if follow_up is not None:
            self._follow_ups.add(self._track(follow_up()))
        for request, claim in zip(requests, claims, strict=True):
            if failed and not claim.finished:
                await self._process(request, deliver_answer=True)
            elif not claim.finished:
                try:
                    await self._settle(request, claim, None)
                except Exception:
                    logger.exception("settling stored request %s failed", request.intake_id)

    def _start(self, request: StoredRequest, *, deliver_answer: bool) -> asyncio.Task[str | None]:
        return self._track(self._process(request, deliver_answer=deliver_answer))

    async def run_now(self, request: StoredRequest, *, budget: float) -> str | None:
        """Run a row this process stored and leased itself, waiting up to `budget` seconds.

        Returns the listeners' answer ("" for a plain ack) when they finished in time;
        otherwise None, and the answer is delivered when they finish. A crash meanwhile
        leaves the row to a worker once its lease has run out.
        """
        task = self._start(request, deliver_answer=False)
        done, _ = await asyncio.wait({task}, timeout=budget)
        if done:
            return task.result()
        task.add_done_callback(lambda t: self._deliver_late(request, t))
        return None

    def _deliver_late(self, request: StoredRequest, task: asyncio.Task[str | None]) -> None:
        answer = None if task.cancelled() else task.result()
        if answer and self.deliver is not None:
            late = asyncio.ensure_future(self.deliver(request, answer))
            self.in_flight.add(late)
            late.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.in_flight.discard(task)
        if task is self._batching:
            self._batching = None
        self._follow_ups.discard(task)
        self.services.wake.intake.set()

    async def drain(self) -> None:
        """Wait for the runs in flight (on stop)."""
        if self.in_flight:
            await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def _process(self, request: StoredRequest, *, deliver_answer: bool) -> str | None:
        claim = IntakeClaim(request.intake_id, self.owner)
        token = current_claims.set((claim,))  # this task's context only
        error: str | None = None
        answer: str | None = None
        try:
            answer = await self.run_request(request)
        except Exception as exc:
            logger.exception("running a stored %s %s failed", request.kind, request.name)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            current_claims.reset(token)
        try:
            await self._settle(request, claim, error)
        except Exception:
            logger.exception("settling stored request %s failed", request.intake_id)
        if deliver_answer and answer and self.deliver is not None:
            await self.deliver(request, answer)
        return answer

    async def _settle(self, request: StoredRequest, claim: IntakeClaim, error: str | None) -> None:
        if error is None:
            if not claim.finished:
                async with self.services.transaction() as session:
                    await release_claim(session=session, claim=claim, at=self.services.now())
            return
        if claim.finished:
            return  # its work committed; what failed came after (it is logged)
        async with self.services.transaction() as session:
            failed = await settle_failure(
                session=session, claim=claim, at=self.services.now(), error=error
            )
            tell = failed is not None
        if tell:
            await self._tell_failure(request)

    async def _tell_failure(self, request: StoredRequest) -> None:
        text = failure_text(describe(request.kind, request.name))
        try:
            if request.response_url:
                await AsyncWebhookClient(request.response_url).send(
                    text=text, response_type="ephemeral", replace_original=True
                )
            elif request.user_id:
                await self.services.slack.chat_postMessage(channel=request.user_id, text=text)
        except Exception:
            logger.exception("telling a member that their request failed did not work")
