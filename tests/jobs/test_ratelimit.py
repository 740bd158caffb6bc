"""The client-side rate limiter: pure, on a fake clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.ratelimit import (
    CHANNEL_INTERVAL,
    CHANNEL_MARGIN,
    DEFAULT_PER_MINUTE,
    PER_MINUTE,
    Bucket,
    RateLimiter,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def send_all(
    limiter: RateLimiter, clock: FakeClock, calls: list[tuple[str, str | None]]
) -> list[float]:
    """Reserve each call in turn and 'send' it when told; returns the send times."""
    times = []
    for call in calls:
        wait = limiter.reserve([call])
        times.append(clock.t + wait)
    return times


def most_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        # Half-open window [at - window, at]; a hair of slack absorbs float rounding.
        while at - ordered[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_messages_to_one_channel_are_spaced_over_a_second_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    times = send_all(limiter, clock, [("chat.postMessage", "C1")] * 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == clock.t
    assert all(gap == pytest.approx(CHANNEL_INTERVAL + CHANNEL_MARGIN) for gap in gaps)


def test_other_channels_are_not_held_up_by_a_busy_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    send_all(limiter, clock, [("chat.postMessage", "C1")] * 5)
    assert limiter.delay([("chat.postMessage", "C2")]) == 0
    assert limiter.delay([("chat.postMessage", "C1")]) > 4


def test_chat_update_and_ephemeral_share_the_channel_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.reserve([("chat.postMessage", "C1")])
    assert limiter.delay([("chat.update", "C1")]) == pytest.approx(1.1)
    assert limiter.delay([("chat.postEphemeral", "C1")]) == pytest.approx(1.1)
    # Other methods are not channel-limited.
    assert limiter.delay([("reactions.add", "C1")]) == 0


def test_delay_does_not_reserve() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        assert limiter.delay([("chat.postMessage", "C1")]) == 0


@pytest.mark.parametrize("method", ["chat.update", "users.info", "views.publish", "unknown.method"])
def test_a_method_never_exceeds_its_per_minute_limit(method: str) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limit = limiter.limit_of(method)
    # Different channels, so only the method's own bucket applies.
    times = send_all(limiter, clock, [(method, None)] * (limit * 3))
    assert most_in_window(times, 60.0) <= limit
    # ... while still using most of it (not uselessly slow).
    assert most_in_window(times, 60.0) >= limit * 0.9


def test_the_table_has_slacks_tiers_and_a_tier_2_default() -> None:
    assert PER_MINUTE["chat.update"] == 50
    assert PER_MINUTE["users.info"] == 100
    assert DEFAULT_PER_MINUTE == 20
    assert RateLimiter().limit_of("admin.whatever") == 20


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=400),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=300),
)
def test_any_arrival_pattern_stays_within_the_limit(limit: int, gaps: list[float]) -> None:
    clock = FakeClock()
    bucket_limiter = RateLimiter(per_minute={"m": limit}, clock=clock)
    times = []
    for gap in gaps:
        clock.t += gap
        times.append(clock.t + bucket_limiter.reserve([("m", None)]))
    assert most_in_window(times, 60.0) <= limit


def test_a_429_blocks_that_channel_for_retry_after_only() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.penalise("chat.postMessage", "C1", 7)
    assert limiter.delay([("chat.postMessage", "C1")]) == pytest.approx(7)
    assert limiter.delay([("chat.postMessage", "C2")]) == 0
    clock.t += 7
    assert limiter.delay([("chat.postMessage", "C1")]) == 0


def test_a_429_on_a_workspace_method_blocks_the_method() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.penalise("views.publish", None, 30)
    assert limiter.delay([("views.publish", None)]) == pytest.approx(30)
    assert limiter.delay([("chat.update", "C1")]) == 0


def test_unlimited_never_waits_but_still_honours_429() -> None:
    clock = FakeClock()
    limiter = RateLimiter.unlimited(clock=clock)
    assert send_all(limiter, clock, [("chat.postMessage", "C1")] * 50) == [clock.t] * 50
    limiter.penalise("chat.postMessage", "C1", 3)
    assert limiter.delay([("chat.postMessage", "C1")]) == pytest.approx(3)


def test_a_call_touching_two_buckets_waits_for_the_later() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limiter.penalise("files.getUploadURLExternal", None, 4)
    limiter.reserve([("files.completeUploadExternal", "C1")])
    calls = [("files.getUploadURLExternal", None), ("files.completeUploadExternal", "C1")]
    assert limiter.reserve(calls) == pytest.approx(4)


def test_bucket_sizes_keep_bursts_inside_the_minute() -> None:
    bucket = Bucket.per_minute(50)
    assert bucket.burst == 5
    assert bucket.interval == pytest.approx(60 / 46)
    assert Bucket.per_minute(1).burst == 1
