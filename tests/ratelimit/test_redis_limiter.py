"""The Redis limiter against real Redis servers: keys, shared budgets, outages, recovery."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from switchboard.server.config import Settings
from switchboard.server.ratelimit import (
    Decision,
    Limit,
    LocalLimiter,
    RedisLimiter,
    build_limiter,
)
from tests.cache.support import FakeClock

from .spare_redis import SpareRedis

# Nothing listens on port 1 of loopback: every connection is refused at once.
DOWN_URL = "redis://127.0.0.1:1/0"
LOGGER = "switchboard.server.ratelimit"
THREE = Limit(rate=0.5, burst=3)


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client on the test Redis, to look behind the limiter's back."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _limiter(url: str, prefix: str, clock: FakeClock | None) -> RedisLimiter:
    local = clock if clock is not None else FakeClock()
    return RedisLimiter(Redis.from_url(url), prefix=prefix, clock=clock, local_clock=local)


async def test_a_key_holds_its_tat_and_expires_when_it_passes(
    redis_url: str, redis_prefix: str, raw: Redis
) -> None:
    # A wall-clock reading: microseconds since 1970 must survive Lua's doubles exactly.
    clock = FakeClock()
    clock.now = 1_800_000_000.123456
    limiter = _limiter(redis_url, redis_prefix, clock)
    try:
        for _ in range(2):
            await limiter.acquire("write:user:alice", THREE)
    finally:
        await limiter.aclose()
    key = f"{redis_prefix}rl:write:user:alice"
    assert limiter.redis_key("write:user:alice") == key
    assert [found async for found in raw.scan_iter(match=f"{redis_prefix}*")] == [key.encode()]
    assert await raw.get(key) == b"1800000004123456"
    assert 0 < await raw.pttl(key) <= 4000


async def test_two_replicas_share_one_budget(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    first = _limiter(redis_url, redis_prefix, clock)
    second = _limiter(redis_url, redis_prefix, clock)
    try:
        assert (await first.acquire("k", THREE, 2)).allowed
        assert await second.acquire("k", THREE) == Decision(True, timedelta(0), 0)
        refused = Decision(False, timedelta(seconds=2), 0)
        assert await first.acquire("k", THREE) == refused
        assert await second.acquire("k", THREE) == refused
    finally:
        await first.aclose()
        await second.aclose()


async def test_another_prefix_is_another_budget(
    redis_url: str, redis_prefix: str, clock: FakeClock
) -> None:
    one = Limit(rate=0.1, burst=1)
    first = _limiter(redis_url, redis_prefix, clock)
    other = _limiter(redis_url, f"{redis_prefix}other:", clock)
    try:
        assert (await first.acquire("k", one)).allowed
        assert (await other.acquire("k", one)).allowed
    finally:
        await first.aclose()
        await other.aclose()


async def test_without_a_clock_the_redis_server_keeps_time(
    redis_url: str, redis_prefix: str
) -> None:
    limit = Limit(rate=0.01, burst=2)  # one unit per 100 s
    limiter = _limiter(redis_url, redis_prefix, None)
    try:
        assert [(await limiter.acquire("k", limit)).allowed for _ in range(3)] == [
            True,
            True,
            False,
        ]
        refused = await limiter.acquire("k", limit)
    finally:
        await limiter.aclose()
    assert refused.retry_after is not None
    assert timedelta(0) < refused.retry_after <= timedelta(seconds=100)
    assert limiter.fallbacks == 0


async def test_with_redis_down_calls_are_limited_in_process(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    limiter = _limiter(DOWN_URL, "unused:", clock)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            decisions = [await limiter.acquire("k", THREE) for _ in range(4)]
            over = await limiter.acquire("k", THREE, 4)
    finally:
        await limiter.aclose()
    assert [decision.allowed for decision in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == timedelta(seconds=2)
    assert over == Decision(False, None, 0)  # decided before any store is asked
    assert (limiter.degraded, limiter.fallbacks) == (True, 4)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, messages
    assert messages[0].startswith("rate limiter: Redis failed, limiting in this process only")


async def test_outage_warnings_come_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    limiter = _limiter(DOWN_URL, "unused:", clock)
    one = Limit(rate=100, burst=100)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            for _ in range(60):  # one probe of Redis per second, each one failing
                await limiter.acquire("k", one)
                await limiter.acquire("k", one)  # between probes: straight to the fallback
                clock.advance(1)
            await limiter.acquire("k", one)
    finally:
        await limiter.aclose()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[1].endswith("(59 more failures since the last warning)")
    assert limiter.fallbacks == 121


async def test_limits_are_shared_again_once_redis_answers(
    caplog: pytest.LogCaptureFixture, clock: FakeClock, tmp_path: Path
) -> None:
    spare = SpareRedis(tmp_path)
    limiter = _limiter(spare.url, "recovery:", clock)
    one = Limit(rate=0.1, burst=1)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert (await limiter.acquire("a", one)).allowed
            assert limiter.degraded
            await spare.start()
            # Within a second of the failure Redis is not asked: still in process.
            assert not (await limiter.acquire("a", one)).allowed
            assert (limiter.degraded, limiter.fallbacks) == (True, 2)
            clock.advance(1)
            # The new server has no script loaded yet: redis-py loads it on NOSCRIPT.
            assert (await limiter.acquire("a", one)).allowed
            assert (limiter.degraded, limiter.fallbacks) == (False, 2)
            async with Redis.from_url(spare.url) as raw:
                assert await raw.exists("recovery:rl:a") == 1
            clock.advance(60)  # a minute after the last warning: the next outage warns
            await spare.stop()
            assert (await limiter.acquire("b", one)).allowed
            assert (limiter.degraded, limiter.fallbacks) == (True, 3)
            await spare.start()
            clock.advance(1)
            # A pooled connection to the stopped server is stale: one retry reconnects.
            assert (await limiter.acquire("b", one)).allowed
            assert not limiter.degraded
    finally:
        await limiter.aclose()
        await spare.stop()
    messages = [record.getMessage() for record in caplog.records]
    assert messages[1] == (
        "rate limiter: Redis answers again; budgets are shared by every replica again"
    )
    assert len(messages) == 4, messages  # failed, answers, failed, answers


async def test_settings_choose_the_limiter(redis_url: str, redis_prefix: str) -> None:
    local = build_limiter(Settings())
    assert isinstance(local, LocalLimiter)
    await local.aclose()
    shared = build_limiter(Settings(redis_url=redis_url, redis_prefix=redis_prefix))
    try:
        assert isinstance(shared, RedisLimiter)
        assert shared.redis_key("k") == f"{redis_prefix}rl:k"
        assert (await shared.acquire("k", THREE)).allowed
        assert not shared.degraded
    finally:
        await shared.aclose()
