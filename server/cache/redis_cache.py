"""The result cache in Redis, shared by every replica: one JSON value per key, with a TTL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from switchboard.server.cache.results import (
    CachedResult,
    CacheStats,
    decode_result,
    encode_result,
)
from switchboard.server.telemetry.throttle import ThrottledWarning

_log = logging.getLogger(__name__)

DEFAULT_PREFIX = "switchboard:"
# A cache lookup sits in front of every task: a Redis that hangs may cost a task this
# much (twice: get, then put), never the redis-py default of seconds with retries.
_SOCKET_TIMEOUT_S = 0.5
# One immediate retry: a pooled connection may have gone stale (e.g. Redis restarted).
_RETRY = Retry(NoBackoff(), 1)
# While Redis fails, one warning per this many seconds (each says how many it stands for).
_WARN_INTERVAL_S = 60.0


class RedisCache:
    """A result cache in Redis under ``{prefix}result:{key}``, expiring by Redis's TTL.

    Failures never reach the caller: ``get`` misses and ``put`` drops the entry,
    both count in ``stats.errors`` and log a warning (at most one per minute).
    An entry this code cannot read (another format version, garbage) is a miss
    and an error.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = CacheStats()
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._warning = ThrottledWarning(_log, _WARN_INTERVAL_S, clock)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisCache:
        """A cache on the Redis at ``url`` (``redis://HOST:PORT/DB``); connects lazily."""
        client = Redis.from_url(
            url,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=_SOCKET_TIMEOUT_S,
            retry=_RETRY,
        )
        return cls(client, prefix=prefix)

    def redis_key(self, key: str) -> str:
        """The Redis key an entry of cache key ``key`` lives under."""
        return f"{self._prefix}result:{key}"

    async def get(self, key: str) -> CachedResult | None:
        """The entry under ``key``, or None (absent, expired, unreadable, Redis failing)."""
        result = await self._lookup(key)
        if result is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return result

    async def put(self, key: str, result: CachedResult, ttl: timedelta) -> None:
        """Store ``result`` under ``key`` for ``ttl`` (at least 1 ms); nothing for ttl <= 0."""
        if ttl <= timedelta(0):
            return
        milliseconds = max(1, round(ttl / timedelta(milliseconds=1)))
        try:
            await self._client.set(self.redis_key(key), encode_result(result), px=milliseconds)
        except (RedisError, OSError) as error:
            self._failed("Redis SET", error)

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        await self._client.aclose()

    async def _lookup(self, key: str) -> CachedResult | None:
        try:
            data = await self._client.get(self.redis_key(key))
        except (RedisError, OSError) as error:
            self._failed("Redis GET", error)
            return None
        if data is None:
            return None
        try:
            return decode_result(data)
        except ValueError as error:
            self._failed("reading a cached result", error)
            return None

    def _failed(self, action: str, error: Exception) -> None:
        self.stats.errors += 1
        self._warning.warn(
            "result cache: %s failed, tasks run without the cache: %r", action, error
        )
