"""A client-side rate limiter that keeps the outbox worker under Slack's limits.

Slack limits each Web API method per app and workspace by tier, and messages additionally per
channel (https://docs.slack.dev/apis/web-api/rate-limits): "chat.postMessage generally allows
posting one message per second per channel, while also maintaining a workspace-wide limit".
Running into a limit costs a 429 and a Retry-After pause, so the worker asks this limiter when
a call may go and waits (or reschedules) instead.

Each bucket is a GCRA (generic cell rate algorithm): a steady interval between calls plus a
burst allowance, sized so that no 60-second window ever holds more than the per-minute limit.
A call reserves a slot in every bucket it touches (its method, and its channel for message
methods), so concurrent deliveries queue behind each other instead of racing. A 429 blocks the
bucket it hit for the Retry-After Slack sent.

Time is a parameter (`clock`, monotonic seconds): tests run the limiter on a fast clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# Per-minute limits of the methods Docket calls, from each method's page in Slack's reference.
# Where a page says "Special" or we were unsure between two tiers, the lower pace is used:
# staying under costs a little latency, going over costs a 429.
PER_MINUTE: dict[str, int] = {
    # Special: about 1 per second per channel (see CHANNEL_METHODS) and "several hundred
    # messages per minute" per workspace; 300 stays clearly under that.
    "chat.postMessage": 300,
    "chat.update": 50,  # Tier 3
    "chat.delete": 50,  # Tier 3
    "chat.postEphemeral": 100,  # Tier 4
    "chat.getPermalink": 50,  # Special; paced as Tier 3
    "views.publish": 50,  # paced as Tier 3 (App Home refreshes come in bursts)
    "views.open": 100,  # Tier 4
    "views.push": 100,  # Tier 4
    "views.update": 100,  # Tier 4
    "users.info": 100,  # Tier 4
    "users.lookupByEmail": 50,  # Tier 3
    "conversations.open": 50,  # Tier 3
    "conversations.info": 50,  # Tier 3
    "conversations.join": 50,  # Tier 3
    "conversations.members": 100,  # Tier 4
    "reactions.add": 50,  # Tier 3
    "files.getUploadURLExternal": 100,  # Tier 4
    "files.completeUploadExternal": 100,  # Tier 4
    "files.upload": 20,  # Tier 2 (legacy upload; files_upload_v2 uses the two above)
    "auth.test": 100,  # Special; paced as Tier 4
}
# Methods not in the table get Tier 2, the tier "most methods" have.
DEFAULT_PER_MINUTE = 20

# Methods that put a message into a channel: about one per second per channel. A file shared
# with completeUploadExternal appears as a message too.
CHANNEL_METHODS = frozenset(
    {"chat.postMessage", "chat.update", "chat.postEphemeral", "files.completeUploadExternal"}
)
CHANNEL_INTERVAL = 1.0
# Requests leave spaced by the interval but arrive with network jitter: keep a margin so two
# messages never land less than a second apart at Slack.
CHANNEL_MARGIN = 0.1

# A call that is not urgent leaves this share of its method's burst (1/3) to urgent calls.
URGENT_RESERVE_SHARE = 3

# (method, channel or None): one Web API call as the limiter sees it.
Call = tuple[str, str | None]


@dataclass
class Bucket:
    """One GCRA bucket: `burst` calls at once, then one per `interval` seconds."""

    interval: float
    burst: int = 1
    tat: float = float("-inf")  # theoretical arrival time of the next call at the steady pace
    blocked_until: float = float("-inf")

    @classmethod
    def per_minute(cls, limit: int) -> Bucket:
        """A bucket that never lets more than `limit` calls into any 60-second window."""
        burst = max(1, limit // 10)
        # burst at once, then (limit - burst) more within the minute.
        return cls(interval=60.0 / max(1, limit - burst + 1), burst=burst)

    def ready_at(self, keep: int = 0) -> float:
        """When a call may go; `keep` burst slots are left for urgent calls."""
        usable = max(0, self.burst - 1 - keep)
        return max(self.tat - usable * self.interval, self.blocked_until)

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + self.interval

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)


class RateLimiter:
    """Buckets per method and per channel; `reserve` says how long a call must wait."""

    def __init__(
        self,
        *,
        per_minute: Mapping[str, int] = PER_MINUTE,
        default_per_minute: int = DEFAULT_PER_MINUTE,
        channel_interval: float = CHANNEL_INTERVAL,
        channel_margin: float = CHANNEL_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_minute = dict(per_minute)
        self._default = default_per_minute
        self._channel_interval = channel_interval + channel_margin
        self._clock = clock
        self._methods: dict[str, Bucket] = {}
        self._channels: dict[str, Bucket] = {}

    @classmethod
    def unlimited(cls, *, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
        """A limiter that never waits (429s still block): for tests that measure other things."""
        return cls(
            per_minute={},
            default_per_minute=10**9,
            channel_interval=0.0,
            channel_margin=0.0,
            clock=clock,
        )

    def limit_of(self, method: str) -> int:
        """The per-minute limit used for `method`."""
        return self._per_minute.get(method, self._default)

    def _buckets(self, calls: Iterable[Call]) -> list[Bucket]:
        found: list[Bucket] = []
        for method, channel in calls:
            bucket = self._methods.get(method)
            if bucket is None:
                bucket = self._methods[method] = Bucket.per_minute(self.limit_of(method))
            found.append(bucket)
            if channel and method in CHANNEL_METHODS:
                by_channel = self._channels.get(channel)
                if by_channel is None:
                    by_channel = self._channels[channel] = Bucket(self._channel_interval)
                found.append(by_channel)
        return found

    def delay(self, calls: Iterable[Call]) -> float:
        """Seconds until `calls` could go, without reserving anything."""
        buckets = self._buckets(calls)
        now = self._clock()
        return max([0.0, *(b.ready_at() - now for b in buckets)])

    def reserve(self, calls: Iterable[Call]) -> float:
        """Reserve the earliest slot for `calls` in all their buckets; returns the wait.

        Synchronous on purpose: in one event loop, reservations cannot interleave, so two
        deliveries to one channel always get slots an interval apart.
        """
        buckets = self._buckets(calls)
        now = self._clock()
        at = max([now, *(b.ready_at() for b in buckets)])
        for bucket in buckets:
            bucket.take(at)
        return at - now

    def try_take(self, calls: Iterable[Call], *, urgent: bool = True) -> float:
        """Take `calls`' slots now if they all have room, returning 0; else the seconds to wait
        before asking again, taking nothing.

        Unlike `reserve`, nothing is booked for the future: a call waiting for a busy channel
        holds no place in its method's bucket, so a DM to someone else is never kept waiting
        behind it. A call that is not `urgent` leaves URGENT_RESERVE of each method's burst
        free, so a person's DM finds room even while card copies queue up.
        """
        method_buckets, channel_buckets = self._split(calls)
        wait = self._wait(method_buckets, channel_buckets, urgent)
        if wait > 0:
            return wait
        now = self._clock()
        for bucket in (*method_buckets, *channel_buckets):
            bucket.take(now)
        return 0.0

    def wait_for(self, calls: Iterable[Call], *, urgent: bool = True) -> float:
        """Seconds until `try_take` could take `calls` (0: now), taking nothing."""
        return self._wait(*self._split(calls), urgent)

    def _wait(self, methods: list[Bucket], channels: list[Bucket], urgent: bool) -> float:
        now = self._clock()
        ready = [b.ready_at() for b in channels]
        for bucket in methods:
            keep = 0 if urgent else max(1, bucket.burst // URGENT_RESERVE_SHARE)
            ready.append(bucket.ready_at(min(keep, bucket.burst - 1)))
        return max([0.0, *(at - now for at in ready)])

    def _split(self, calls: Iterable[Call]) -> tuple[list[Bucket], list[Bucket]]:
        methods: list[Bucket] = []
        channels: list[Bucket] = []
        for method, channel in calls:
            found = self._buckets([(method, channel)])
            methods.append(found[0])
            channels.extend(found[1:])
        return methods, channels

    def settle(self, calls: Iterable[Call]) -> None:
        """A call just came back: its channel's next message waits a full interval from now.

        A slot is taken when a call may go, but a busy event loop can hold the request back
        for a while after that; counting the interval again from the answer (which Slack sent
        after the message arrived) keeps two messages in one channel at least an interval
        apart at Slack, however late the first one left.
        """
        _methods, channels = self._split(calls)
        now = self._clock()
        for bucket in channels:
            bucket.tat = max(bucket.tat, now + bucket.interval)

    def penalise(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429: block the bucket that hit the limit for `retry_after` seconds.

        Message methods are limited per channel, so a 429 there blocks that channel; any
        other method is limited per workspace, so the whole method waits.
        """
        until = self._clock() + max(0.0, retry_after)
        if channel and method in CHANNEL_METHODS:
            self._buckets([(method, channel)])[-1].block(until)
        else:
            self._buckets([(method, None)])[0].block(until)
