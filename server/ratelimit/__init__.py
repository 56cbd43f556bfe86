"""Rate limits: GCRA budgets per key, in process or shared through Redis."""

from switchboard.server.ratelimit.factory import build_limiter
from switchboard.server.ratelimit.gcra import Decision, Limit, Limiter
from switchboard.server.ratelimit.local import LocalLimiter
from switchboard.server.ratelimit.redis_limiter import RedisLimiter

__all__ = ["Decision", "Limit", "Limiter", "LocalLimiter", "RedisLimiter", "build_limiter"]
