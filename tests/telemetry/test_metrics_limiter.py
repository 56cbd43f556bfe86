"""The rate limiter's fallback shows in the metrics."""

from __future__ import annotations

from switchboard.server.ratelimit import Limit, LocalLimiter, RedisLimiter
from switchboard.server.telemetry import Metrics


async def test_a_limiter_on_an_unreachable_redis_shows_degraded() -> None:
    metrics = Metrics()
    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0", prefix="switchboard-test:")
    metrics.track_limiter(limiter)
    try:
        assert metrics.registry.get_sample_value("rate_limiter_degraded") == 0
        decision = await limiter.acquire("write:peer:x", Limit(rate=1, burst=5))
        assert decision.allowed
        assert metrics.registry.get_sample_value("rate_limiter_degraded") == 1
        assert metrics.registry.get_sample_value("rate_limiter_fallbacks_total") == 1
    finally:
        await limiter.aclose()


async def test_a_local_limiter_is_never_degraded() -> None:
    metrics = Metrics()
    metrics.track_limiter(LocalLimiter())
    assert metrics.registry.get_sample_value("rate_limiter_degraded") == 0
    assert metrics.registry.get_sample_value("rate_limiter_fallbacks_total") == 0
