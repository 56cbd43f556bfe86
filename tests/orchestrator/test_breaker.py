"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.server.config import BreakerConfig
from switchboard.server.orchestrator.breaker import CircuitBreaker, CircuitState, Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    config = BreakerConfig(
        failure_threshold=3, reset_timeout=timedelta(seconds=60), success_threshold=2
    )
    return CircuitBreaker(config, clock)


def _call(breaker: CircuitBreaker, outcome: Outcome) -> None:
    assert breaker.allow()
    breaker.record(outcome)


def test_opens_after_consecutive_failures_only(breaker: CircuitBreaker) -> None:
    for outcome in (Outcome.FAILURE, Outcome.FAILURE, Outcome.SUCCESS, Outcome.FAILURE):
        _call(breaker, outcome)
    assert breaker.state is CircuitState.CLOSED
    _call(breaker, Outcome.FAILURE)
    _call(breaker, Outcome.NEUTRAL)  # an invalid request says nothing either way
    assert breaker.state is CircuitState.CLOSED
    _call(breaker, Outcome.FAILURE)
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_total == 1
    assert not breaker.allow()
    assert breaker.retry_after == timedelta(seconds=60)


def test_half_open_after_the_reset_period_then_closes_on_successes(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    for _ in range(3):
        _call(breaker, Outcome.FAILURE)
    clock.now += 59
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == timedelta(seconds=1)
    clock.now += 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.retry_after == timedelta(0)
    # At most success_threshold probes at once.
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record(Outcome.SUCCESS)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record(Outcome.SUCCESS)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_failed_probe_opens_it_again(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        _call(breaker, Outcome.FAILURE)
    clock.now += 60
    _call(breaker, Outcome.FAILURE)
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_total == 2
    assert breaker.retry_after == timedelta(seconds=60)


def test_a_neutral_probe_frees_its_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        _call(breaker, Outcome.FAILURE)
    clock.now += 60
    assert breaker.allow()
    assert breaker.allow()
    breaker.record(Outcome.NEUTRAL)
    assert breaker.allow()
