"""The GCRA arithmetic, limits that make no sense, and the in-process limiter's memory bound."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.server.ratelimit import Decision, Limit, LocalLimiter
from switchboard.server.ratelimit.gcra import step, to_micros
from tests.cache.support import FakeClock

SLOW = Limit(rate=1, burst=2)


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1.0, 1), (float("inf"), 1), (float("nan"), 1), (1, 0), (1, -3)],
)
def test_a_limit_that_makes_no_sense_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        Limit(rate=rate, burst=burst)


@pytest.mark.parametrize(
    ("rate", "interval_us"),
    [(1, 1_000_000), (0.2, 5_000_000), (3, 333_333), (1e6, 1), (1e9, 1)],
)
def test_the_emission_interval_is_whole_microseconds(rate: float, interval_us: int) -> None:
    assert Limit(rate=rate, burst=1).interval_us == interval_us


def test_a_new_key_may_spend_its_burst_at_once() -> None:
    limit = Limit(rate=2, burst=3)
    first = step(None, 10_000_000, limit, 3)
    assert first.decision == Decision(True, timedelta(0), 0)
    assert first.tat_us == 11_500_000
    refused = step(first.tat_us, 10_000_000, limit, 1)
    assert refused.decision == Decision(False, timedelta(milliseconds=500), 0)


def test_a_tat_in_the_past_is_a_full_budget() -> None:
    assert step(5, 10_000_000, SLOW, 1) == step(None, 10_000_000, SLOW, 1)


def test_clock_readings_round_to_the_microsecond() -> None:
    assert to_micros(1000.0000004) == 1_000_000_000
    assert to_micros(1_800_000_000.123456) == 1_800_000_000_123_456


async def test_a_cost_below_one_is_a_bug() -> None:
    limiter = LocalLimiter(clock=FakeClock())
    for cost in (0, -1):
        with pytest.raises(ValueError, match="cost must be at least 1"):
            await limiter.acquire("k", SLOW, cost)


async def test_idle_keys_are_forgotten_as_calls_go_by() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock)
    for key in "abcdef":
        await limiter.acquire(key, SLOW)
    assert len(limiter) == 6
    clock.advance(1)  # every TAT is now: a full budget, the same as no entry
    await limiter.acquire("g", SLOW)
    assert len(limiter) == 3  # four idle keys swept per call, one added
    await limiter.acquire("h", SLOW)
    assert len(limiter) == 2


async def test_a_key_that_owes_time_is_kept() -> None:
    clock = FakeClock()
    limiter = LocalLimiter(clock=clock)
    await limiter.acquire("a", SLOW)
    clock.advance(0.5)
    await limiter.acquire("b", SLOW)
    assert len(limiter) == 2
    assert await limiter.acquire("a", SLOW) == Decision(True, timedelta(0), 0)
    assert (await limiter.acquire("a", SLOW)).allowed is False


async def test_refused_calls_store_nothing() -> None:
    limiter = LocalLimiter(clock=FakeClock())
    assert (await limiter.acquire("big", SLOW, 3)).allowed is False
    assert len(limiter) == 0


async def test_past_the_cap_the_least_recently_used_key_is_forgiven() -> None:
    limiter = LocalLimiter(clock=FakeClock(), max_keys=2)
    one = Limit(rate=1, burst=1)
    for key in ("a", "b", "a", "c"):  # "a" was used again, so "b" is the oldest
        await limiter.acquire(key, one)
    assert len(limiter) == 2
    assert (await limiter.acquire("b", one)).allowed is True
    assert (await limiter.acquire("c", one)).allowed is False


def test_the_cap_must_hold_a_key() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        LocalLimiter(max_keys=0)


async def test_the_local_limiter_is_never_degraded() -> None:
    limiter = LocalLimiter()
    await limiter.acquire("k", SLOW)
    assert (limiter.degraded, limiter.fallbacks) == (False, 0)
    await limiter.aclose()
