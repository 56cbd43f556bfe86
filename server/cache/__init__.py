"""The result cache: finished results by what was asked, in memory or in Redis."""

from switchboard.server.cache.factory import open_cache
from switchboard.server.cache.keys import cache_key
from switchboard.server.cache.memory import MemoryCache
from switchboard.server.cache.redis_cache import RedisCache
from switchboard.server.cache.results import (
    CachedResult,
    CacheStats,
    ResultCache,
    replayable,
)

__all__ = [
    "CacheStats",
    "CachedResult",
    "MemoryCache",
    "RedisCache",
    "ResultCache",
    "cache_key",
    "open_cache",
    "replayable",
]
