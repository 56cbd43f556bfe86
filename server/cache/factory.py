"""The result cache the settings ask for."""

from __future__ import annotations

from switchboard.server.cache.memory import MemoryCache
from switchboard.server.cache.redis_cache import RedisCache
from switchboard.server.cache.results import ResultCache
from switchboard.server.config import Settings


def open_cache(settings: Settings) -> ResultCache:
    """Redis at ``settings.redis_url`` when it is set, else an in-process LRU cache.

    Nothing connects here: a Redis that is down shows as cache errors, not as a
    server that cannot start.
    """
    if settings.redis_url:
        return RedisCache.from_url(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryCache()
