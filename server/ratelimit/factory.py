"""The limiter the settings ask for."""

from __future__ import annotations

from switchboard.server.config import Settings
from switchboard.server.ratelimit.gcra import Limiter
from switchboard.server.ratelimit.local import LocalLimiter
from switchboard.server.ratelimit.redis_limiter import RedisLimiter


def build_limiter(settings: Settings) -> Limiter:
    """Redis at ``settings.redis_url`` (shared by replicas) when it is set, else in process.

    Nothing connects here: a Redis that is down shows as a degraded limiter, not as a
    server that cannot start. Close it with ``await limiter.aclose()``.
    """
    if settings.redis_url:
        return RedisLimiter.from_url(settings.redis_url, prefix=settings.redis_prefix)
    return LocalLimiter()
