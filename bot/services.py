"""The services object handed to every handler (through Bolt context) and every job."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.db import readonly_engine
from bot.writelock import WriterLock
from models.intake import IntakeClaim, current_claims, finish_claims, has_effect
from models.tables import utcnow

# A burst: at least BURST_REQUESTS stored within QUIET_SECONDS. A person's lone command is
# no burst.
BURST_REQUESTS = 4
QUIET_SECONDS = 0.5
# During a burst, background work rests this many times as long as it last worked (at most
# REST_MAX_SECONDS), so the acknowledgements get about nine tenths of the event loop and
# the work still goes on at a tenth.
REST_FACTOR = 9.0
REST_MAX_SECONDS = 0.5


@dataclass
class Bursts:
    """Whether requests are arriving in a burst: acknowledgements and background work share
    one event loop, and during a burst the acks go first (Slack gives up after 3 s) while the
    stored work waits in the database and is worked off when the burst ends."""

    busy_until: float = 0.0
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=BURST_REQUESTS))

    def note_ingress(self) -> None:
        """A request was just taken in."""
        now = time.monotonic()
        recent = self._recent
        recent.append(now)
        while recent[0] < now - QUIET_SECONDS:
            recent.popleft()
        if len(recent) >= BURST_REQUESTS:
            self.busy_until = now + QUIET_SECONDS

    def remaining(self) -> float:
        """Seconds until the current burst counts as over (0: no burst)."""
        return max(0.0, self.busy_until - time.monotonic())

    async def rest_after(self, worked_seconds: float) -> None:
        """During a burst, rest in proportion to the work just done; otherwise return."""
        if self.remaining() > 0:
            await asyncio.sleep(min(REST_MAX_SECONDS, REST_FACTOR * worked_seconds))


@dataclass
class Wakeups:
    """Events that wake the background workers as soon as there is work for them."""

    outbox: asyncio.Event = field(default_factory=asyncio.Event)
    events: asyncio.Event = field(default_factory=asyncio.Event)
    mail: asyncio.Event = field(default_factory=asyncio.Event)
    profit: asyncio.Event = field(default_factory=asyncio.Event)
    intake: asyncio.Event = field(default_factory=asyncio.Event)
    alerts: asyncio.Event = field(default_factory=asyncio.Event)
    sla: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Services:
    """Everything a handler or job needs; built once by the app factory."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    slack: AsyncWebClient
    workspace_id: int
    team_id: str
    bot_user_id: str
    timezone: ZoneInfo
    wake: Wakeups = field(default_factory=Wakeups)
    bursts: Bursts = field(default_factory=Bursts)
    clock: Callable[[], datetime] = utcnow
    # Called with a workspace id after its report settings change, to reschedule its posts.
    on_reschedule: Callable[[int], None] | None = None
    # SQLite has one writer at a time: this process's writers queue here, in order, rather
    # than in SQLite's busy handler (which polls with sleeps and lets a request starve).
    sqlite_writer: WriterLock = field(default_factory=WriterLock)

    def now(self) -> datetime:
        return self.clock()

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error, then wake workers.

        Persistence functions flag the session (`session.info`) when they queue outbox rows,
        mark profit periods stale or store mail, so the workers start at once after commit.
        """
        async with self._writer(urgent), self.sessions() as session:
            finishing: list[IntakeClaim] = []
            async with session.begin():
                yield session
                finishing = [c for c in current_claims.get() if not c.finished]
                if finishing and has_effect(session.info):
                    # The first state change of a stored request commits with its "done" mark.
                    await finish_claims(session=session, claims=finishing, at=self.now())
                else:
                    finishing = []
            for claim in finishing:
                claim.finished = True
            info = session.info
            if info.pop("outbox_dirty", False):
                self.wake.outbox.set()
            if info.pop("profit_dirty", False):
                self.wake.profit.set()
            if info.pop("events_dirty", False):
                self.wake.events.set()
            if info.pop("mail_dirty", False):
                self.wake.mail.set()
            if info.pop("intake_dirty", False):
                self.wake.intake.set()
            if info.pop("alerts_dirty", False):
                self.wake.alerts.set()

    def _writer(self, urgent: bool) -> AbstractAsyncContextManager[Any]:
        if self.engine.dialect.name != "sqlite":
            return nullcontext()
        return self.sqlite_writer.hold(urgent=urgent)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session: nothing is committed, and on SQLite no write lock is taken."""
        async with self.sessions(bind=self.read_engine) as session:
            yield session

    @cached_property
    def read_engine(self) -> AsyncEngine:
        return readonly_engine(self.engine)
