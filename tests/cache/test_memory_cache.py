"""The in-process cache: hits and misses, LRU eviction by count and by bytes, TTL expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.server.cache import CachedResult, CacheStats, MemoryCache
from switchboard.server.cache.results import encode_result

from .support import REPLAYED, FakeClock, result

HOUR = timedelta(hours=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_put_result_comes_back_and_an_unknown_key_misses(clock: FakeClock) -> None:
    cache = MemoryCache(clock=clock)
    full = CachedResult(output_text="answer", agent="writer", payloads=REPLAYED)
    await cache.put("k", full, HOUR)
    assert await cache.get("k") == full
    assert await cache.get("other") is None
    assert cache.stats == CacheStats(hits=1, misses=1, errors=0)


async def test_the_least_recently_used_entry_goes_first(clock: FakeClock) -> None:
    cache = MemoryCache(max_entries=3, clock=clock)
    for key in "abc":
        await cache.put(key, result(key), HOUR)
    assert await cache.get("a") is not None  # now b is the least recently used
    await cache.put("d", result("d"), HOUR)
    assert len(cache) == 3
    assert await cache.get("b") is None
    for key in "acd":
        assert await cache.get(key) == result(key)


async def test_replacing_an_entry_keeps_one_copy(clock: FakeClock) -> None:
    cache = MemoryCache(max_entries=2, clock=clock)
    await cache.put("a", result("old"), HOUR)
    await cache.put("a", result("new"), HOUR)
    await cache.put("b", result("b"), HOUR)
    assert len(cache) == 2
    assert cache.size_bytes == len(encode_result(result("new"))) + len(encode_result(result("b")))
    assert await cache.get("a") == result("new")


async def test_entries_are_evicted_to_stay_under_max_bytes(clock: FakeClock) -> None:
    size = len(encode_result(result("x" * 100)))
    cache = MemoryCache(max_bytes=size * 2 + size // 2, clock=clock)
    for key in "abc":
        await cache.put(key, result("x" * 100), HOUR)
    assert len(cache) == 2
    assert cache.size_bytes == size * 2
    assert await cache.get("a") is None
    assert await cache.get("c") is not None


async def test_an_entry_heavier_than_the_whole_cache_is_not_kept(clock: FakeClock) -> None:
    cache = MemoryCache(max_bytes=1000, clock=clock)
    await cache.put("small", result("x"), HOUR)
    await cache.put("huge", result("x" * 1000), HOUR)
    assert await cache.get("huge") is None
    assert await cache.get("small") is not None  # nothing was evicted for it


async def test_an_entry_expires_after_its_ttl(clock: FakeClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.put("short", result("s"), timedelta(seconds=10))
    await cache.put("long", result("l"), timedelta(seconds=60))
    clock.advance(9.999)
    assert await cache.get("short") == result("s")
    clock.advance(0.001)
    assert await cache.get("short") is None
    assert len(cache) == 1
    assert await cache.get("long") == result("l")
    clock.advance(50)
    assert await cache.get("long") is None
    assert (len(cache), cache.size_bytes) == (0, 0)
    assert cache.stats == CacheStats(hits=2, misses=2, errors=0)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
async def test_a_ttl_of_zero_keeps_nothing(clock: FakeClock, ttl: timedelta) -> None:
    cache = MemoryCache(clock=clock)
    await cache.put("k", result("old"), HOUR)
    await cache.put("k", result("new"), ttl)
    assert await cache.get("k") is None  # and the old entry is gone too


async def test_aclose_forgets_everything(clock: FakeClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.put("k", result(), HOUR)
    await cache.aclose()
    assert (len(cache), cache.size_bytes) == (0, 0)


@pytest.mark.parametrize("bounds", [{"max_entries": 0}, {"max_bytes": 0}])
def test_bounds_must_be_positive(bounds: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        MemoryCache(**bounds)
