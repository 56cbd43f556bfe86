"""Shared dependencies (rate limits, event bus) falling back show in the metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.server.domain import OutputDelta, TaskEvent
from switchboard.server.events import RedisBus
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


async def test_an_event_bus_on_an_unreachable_redis_shows_degraded() -> None:
    metrics = Metrics()
    bus = RedisBus.from_url("redis://127.0.0.1:1/0", prefix="switchboard-test:")
    metrics.track_bus(bus)
    try:
        assert metrics.registry.get_sample_value("event_bus_degraded") == 0
        await bus.publish([TaskEvent("t-1", 1, datetime.now(UTC), OutputDelta("x"))])
        assert metrics.registry.get_sample_value("event_bus_degraded") == 1
        assert metrics.registry.get_sample_value("event_bus_publish_errors_total") == 1
    finally:
        await bus.aclose()
