"""The Redis cache against the real Redis: round trips, TTLs, bad entries, Redis down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from switchboard.server.cache import (
    CachedResult,
    CacheStats,
    MemoryCache,
    RedisCache,
    open_cache,
)
from switchboard.server.config import Settings

from .support import REPLAYED, FakeClock, result

HOUR = timedelta(hours=1)
# Nothing listens on port 1 of loopback: every connection is refused at once.
DOWN_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client on the test Redis, to look behind the cache's back."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def cache(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisCache]:
    opened = RedisCache.from_url(redis_url, prefix=redis_prefix)
    yield opened
    await opened.aclose()


async def test_a_result_with_every_replayed_payload_round_trips(cache: RedisCache) -> None:
    full = CachedResult(output_text="Grüße 🌍\n" * 50, agent="writer", payloads=REPLAYED)
    await cache.put("k1", full, HOUR)
    assert await cache.get("k1") == full
    assert await cache.get("k2") is None
    assert cache.stats == CacheStats(hits=1, misses=1, errors=0)


async def test_entries_live_under_the_prefix_with_a_ttl(
    cache: RedisCache, raw: Redis, redis_prefix: str
) -> None:
    await cache.put("abc", result(), timedelta(seconds=90))
    assert cache.redis_key("abc") == f"{redis_prefix}result:abc"
    assert [key async for key in raw.scan_iter(match=f"{redis_prefix}*")] == [
        f"{redis_prefix}result:abc".encode()
    ]
    assert 0 < await raw.pttl(f"{redis_prefix}result:abc") <= 90_000


async def test_a_ttl_below_a_millisecond_is_rounded_up(cache: RedisCache) -> None:
    await cache.put("k", result(), timedelta(microseconds=10))
    assert cache.stats.errors == 0  # Redis refuses "SET ... PX 0"


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-5)])
async def test_a_ttl_of_zero_stores_nothing(cache: RedisCache, raw: Redis, ttl: timedelta) -> None:
    await cache.put("k", result(), ttl)
    assert await raw.exists(cache.redis_key("k")) == 0


async def test_another_prefix_does_not_see_the_entry(
    cache: RedisCache, redis_url: str, redis_prefix: str
) -> None:
    await cache.put("k", result(), HOUR)
    other = RedisCache.from_url(redis_url, prefix=f"{redis_prefix}other:")
    try:
        assert await other.get("k") is None
    finally:
        await other.aclose()


async def test_an_unreadable_entry_is_a_miss_and_an_error(cache: RedisCache, raw: Redis) -> None:
    await raw.set(cache.redis_key("garbage"), b"\x00 not json", px=60_000)
    await raw.set(cache.redis_key("future"), b'{"version": 99}', px=60_000)
    assert await cache.get("garbage") is None
    assert await cache.get("future") is None
    assert cache.stats == CacheStats(hits=0, misses=2, errors=2)


async def test_redis_down_never_fails_and_is_counted() -> None:
    cache = RedisCache.from_url(DOWN_URL, prefix="unused:")
    try:
        assert await cache.get("k") is None
        await cache.put("k", result(), HOUR)
        assert await cache.get("k") is None
    finally:
        await cache.aclose()
    assert cache.stats == CacheStats(hits=0, misses=2, errors=3)


async def test_failures_are_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    cache = RedisCache(Redis.from_url(DOWN_URL), prefix="unused:", clock=clock)
    try:
        with caplog.at_level(logging.WARNING, logger="switchboard.server.cache"):
            for _ in range(3):
                await cache.get("k")
            clock.advance(59)
            await cache.put("k", result(), HOUR)
            clock.advance(1)
            await cache.get("k")
    finally:
        await cache.aclose()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("result cache: Redis GET failed, tasks run without the cache")
    assert "(0 more failures" in messages[0]
    assert "(3 more failures since the last warning)" in messages[1]
    assert cache.stats.errors == 5


async def test_open_cache_follows_the_settings(redis_url: str) -> None:
    memory = open_cache(Settings())
    assert isinstance(memory, MemoryCache)
    shared = open_cache(Settings(redis_url=redis_url))
    try:
        assert isinstance(shared, RedisCache)
        assert shared.redis_key("k") == "switchboard:result:k"
    finally:
        await shared.aclose()
        await memory.aclose()
