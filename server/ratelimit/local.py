"""GCRA budgets in this process: one TAT per key, idle keys forgotten."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from switchboard.server.ratelimit.gcra import Decision, Limit, check_cost, step, to_micros

DEFAULT_MAX_KEYS = 100_000
# Expired keys dropped per call: cleaning stays O(1) per call and keeps up with traffic,
# since each call adds at most one key.
_SWEEP = 4


class LocalLimiter:
    """Per-key budgets in a dict, for one process (or as a shared limiter's fallback).

    Memory stays bounded: keys are kept in least-recently-used order; a key whose TAT
    has passed holds a full budget, so it is the same as no entry and is dropped as
    calls go by; past ``max_keys`` the least recently used key is dropped even if it
    owes time (that caller's budget is forgiven, the price of the bound).

    ``clock`` returns seconds on any steady timeline (``time.monotonic`` by default;
    tests inject one they move).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        self._clock = clock
        self._max_keys = max_keys
        self._tats: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    @property
    def degraded(self) -> bool:
        """Never: there is no shared store to lose."""
        return False

    @property
    def fallbacks(self) -> int:
        """Always 0: every call is decided here by design."""
        return 0

    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s budget (see ``Limiter.acquire``); never waits."""
        refused = check_cost(limit, cost)
        if refused is not None:
            return refused
        now = to_micros(self._clock())
        self._sweep(now)
        result = step(self._tats.get(key), now, limit, cost)
        if result.decision.allowed:
            self._tats[key] = result.tat_us
        if key in self._tats:
            # Refused calls count as use too: the cap forgets quiet callers first.
            self._tats.move_to_end(key)
        if len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)
        return result.decision

    async def aclose(self) -> None:
        """Nothing to release."""

    def _sweep(self, now_us: int) -> None:
        for _ in range(_SWEEP):
            oldest = next(iter(self._tats.items()), None)
            if oldest is None or oldest[1] > now_us:
                return
            del self._tats[oldest[0]]
