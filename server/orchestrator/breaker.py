"""A circuit breaker per agent: stop calling a provider that keeps failing.

closed --(failure_threshold consecutive failures)--> open
open --(reset_timeout elapsed)--> half_open: up to success_threshold probes at once
half_open --(success_threshold successes)--> closed; --(any failure)--> open

Only failures that say something about the provider count (transient provider
errors, timeouts, crashes); a request the provider refused as invalid does not.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from datetime import timedelta

from switchboard.server.config import BreakerConfig


class CircuitState(enum.Enum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    """What a call through the breaker told about the provider."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"  # cancelled, or refused as invalid: says nothing about health


class CircuitBreaker:
    """Counts an agent's consecutive provider failures and opens on too many."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._successes = 0
        self._probes = 0
        self._opened_at = 0.0
        self.opened_total = 0
        """How many times the breaker opened (for metrics)."""

    @property
    def state(self) -> CircuitState:
        """The current state (an open breaker past its reset period is half-open)."""
        if self._state is CircuitState.OPEN and self._clock() >= self._reopens_at:
            self._state = CircuitState.HALF_OPEN
            self._successes = 0
            self._probes = 0
        return self._state

    @property
    def retry_after(self) -> timedelta:
        """How long until an open breaker lets a probe through (zero otherwise)."""
        if self.state is not CircuitState.OPEN:
            return timedelta(0)
        return timedelta(seconds=max(0.0, self._reopens_at - self._clock()))

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go to the provider now; if so, report it with ``record``."""
        state = self.state
        if state is CircuitState.OPEN:
            return False
        if state is CircuitState.HALF_OPEN:
            if self._probes >= self._config.success_threshold:
                return False
            self._probes += 1
        return True

    def record(self, outcome: Outcome) -> None:
        """The result of a call that ``allow`` let through."""
        half_open = self._state is CircuitState.HALF_OPEN
        if half_open:
            self._probes = max(0, self._probes - 1)
        if outcome is Outcome.SUCCESS:
            self._failures = 0
            if half_open:
                self._successes += 1
                if self._successes >= self._config.success_threshold:
                    self._state = CircuitState.CLOSED
        elif outcome is Outcome.FAILURE:
            self._failures += 1
            if half_open or self._failures >= self._config.failure_threshold:
                self._open()

    @property
    def _reopens_at(self) -> float:
        return self._opened_at + self._config.reset_timeout.total_seconds()

    def _open(self) -> None:
        if self._state is not CircuitState.OPEN:
            self.opened_total += 1
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._successes = 0
