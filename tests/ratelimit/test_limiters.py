"""Exact GCRA counts, the same to the microsecond in process and in Redis (injected clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from switchboard.server.ratelimit import Decision, Limit, Limiter, LocalLimiter, RedisLimiter
from tests.cache.support import FakeClock

ALLOWED = timedelta(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "redis"])
def store(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the in-process limiter, the Redis URL and a fresh key prefix for Redis."""
    if request.param == "local":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


@pytest.fixture
async def limiter(store: tuple[str, str] | None, clock: FakeClock) -> AsyncIterator[Limiter]:
    """Each limiter on the same injected clock.

    Redis expires keys in real time, after the (fake) time they owe: the limits below
    owe seconds, far more than a test takes, so no key vanishes under a test.
    """
    if store is None:
        yield LocalLimiter(clock=clock)
        return
    url, prefix = store
    shared = RedisLimiter(Redis.from_url(url), prefix=prefix, clock=clock, local_clock=clock)
    yield shared
    await shared.aclose()
    assert shared.fallbacks == 0, "Redis failed during the test"


async def test_a_burst_then_one_unit_per_interval(limiter: Limiter, clock: FakeClock) -> None:
    limit = Limit(rate=0.5, burst=3)
    assert [await limiter.acquire("k", limit) for _ in range(4)] == [
        Decision(True, ALLOWED, 2),
        Decision(True, ALLOWED, 1),
        Decision(True, ALLOWED, 0),
        Decision(False, timedelta(seconds=2), 0),
    ]
    clock.advance(1.5)
    assert await limiter.acquire("k", limit) == Decision(False, timedelta(seconds=0.5), 0)
    clock.advance(0.5)
    assert await limiter.acquire("k", limit) == Decision(True, ALLOWED, 0)
    assert await limiter.acquire("k", limit) == Decision(False, timedelta(seconds=2), 0)
    clock.advance(2 * 3)  # the whole burst is back, and no more
    decisions = [await limiter.acquire("k", limit) for _ in range(4)]
    assert [decision.allowed for decision in decisions] == [True, True, True, False]


async def test_partly_refilled_budgets_count_whole_units(
    limiter: Limiter, clock: FakeClock
) -> None:
    limit = Limit(rate=1, burst=4)
    assert (await limiter.acquire("k", limit, 4)).remaining == 0
    clock.advance(2.5)
    assert await limiter.acquire("k", limit) == Decision(True, ALLOWED, 1)
    assert await limiter.acquire("k", limit, 2) == Decision(False, timedelta(seconds=0.5), 1)


async def test_a_call_may_cost_several_units(limiter: Limiter, clock: FakeClock) -> None:
    limit = Limit(rate=1, burst=5)
    assert await limiter.acquire("k", limit, 3) == Decision(True, ALLOWED, 2)
    # Refused whole, not in part: the two units left stay there.
    assert await limiter.acquire("k", limit, 3) == Decision(False, timedelta(seconds=1), 2)
    assert await limiter.acquire("k", limit, 2) == Decision(True, ALLOWED, 0)
    clock.advance(3)
    assert await limiter.acquire("k", limit, 3) == Decision(True, ALLOWED, 0)


async def test_a_cost_above_the_burst_is_never_allowed(limiter: Limiter, clock: FakeClock) -> None:
    limit = Limit(rate=1, burst=5)
    never = Decision(False, None, 0)
    assert await limiter.acquire("k", limit, 6) == never
    clock.advance(3600)
    assert await limiter.acquire("k", limit, 6) == never
    assert await limiter.acquire("k", limit, 5) == Decision(True, ALLOWED, 0)


async def test_intervals_that_are_not_whole_milliseconds_stay_exact(
    limiter: Limiter, clock: FakeClock
) -> None:
    limit = Limit(rate=3, burst=1)
    assert (await limiter.acquire("k", limit)).allowed
    clock.advance(0.000_001)
    assert await limiter.acquire("k", limit) == Decision(False, timedelta(microseconds=333_332), 0)


async def test_each_key_has_its_own_budget(limiter: Limiter) -> None:
    limit = Limit(rate=0.1, burst=1)
    assert (await limiter.acquire("write:user:alice", limit)).allowed
    assert not (await limiter.acquire("write:user:alice", limit)).allowed
    assert (await limiter.acquire("write:user:bob", limit)).allowed
    assert (await limiter.acquire("read:user:alice", limit)).allowed


async def test_a_bad_cost_is_refused_before_any_work(limiter: Limiter) -> None:
    with pytest.raises(ValueError, match="cost must be at least 1"):
        await limiter.acquire("k", Limit(rate=1, burst=1), 0)
