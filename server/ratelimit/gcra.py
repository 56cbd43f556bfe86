"""The generic cell rate algorithm (GCRA), in whole microseconds, and what a limiter is.

GCRA keeps one number per key: the theoretical arrival time (TAT), when the key's
budget is full again. A call costing ``n`` units moves it ``n`` emission intervals
(``1/rate``) later, and is allowed while the TAT stays within ``burst`` intervals of
now. So a fresh key spends ``burst`` units at once, then one per ``1/rate`` seconds.

Time is whole microseconds so that the in-process limiter and the Redis script
(Lua numbers are doubles: exact up to 2**53, far beyond microseconds since 1970)
compute the same decisions to the microsecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Limit:
    """A budget: ``rate`` units per second on average, up to ``burst`` units at once.

    Rates above a million per second are treated as a million (one microsecond apart).
    """

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, not {self.rate!r}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst!r}")

    @property
    def interval_us(self) -> int:
        """Microseconds between two units at the sustained rate (at least 1)."""
        return max(1, round(MICROS / self.rate))


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one ``acquire``.

    ``retry_after`` is how long until the same call would be allowed: zero when it is
    allowed, None when it never will be (its cost exceeds the burst). ``remaining`` is
    how many units could be spent right now after this call.
    """

    allowed: bool
    retry_after: timedelta | None
    remaining: int


@dataclass(frozen=True, slots=True)
class Step:
    """One GCRA step: the decision and, when it allows the call, the TAT to store."""

    decision: Decision
    tat_us: int


class Limiter(Protocol):
    """Per-key GCRA budgets, in process or shared (see ``LocalLimiter``, ``RedisLimiter``)."""

    @property
    def degraded(self) -> bool:
        """True while the shared store fails and this process limits on its own."""
        ...

    @property
    def fallbacks(self) -> int:
        """Calls decided in process because the shared store failed (a counter)."""
        ...

    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s budget under ``limit``, if they are there."""
        ...

    async def aclose(self) -> None:
        """Release connections (nothing for the in-process limiter)."""
        ...


def check_cost(limit: Limit, cost: int) -> Decision | None:
    """Refuse a bad cost: ValueError below 1, a final refusal above the burst, else None."""
    if cost < 1:
        raise ValueError(f"cost must be at least 1, not {cost!r}")
    if cost > limit.burst:
        return Decision(allowed=False, retry_after=None, remaining=0)
    return None


def step(tat_us: int | None, now_us: int, limit: Limit, cost: int) -> Step:
    """Spend ``cost`` units (1..burst) of a key whose TAT is ``tat_us`` (None: a new key).

    The Lua script in ``redis_limiter`` is this function, line for line.
    """
    interval = limit.interval_us
    tolerance = interval * limit.burst
    tat = now_us if tat_us is None else max(tat_us, now_us)
    new_tat = tat + cost * interval
    allowed_at = new_tat - tolerance
    if allowed_at > now_us:
        remaining = (now_us + tolerance - tat) // interval
        return Step(Decision(False, timedelta(microseconds=allowed_at - now_us), remaining), tat)
    remaining = (now_us + tolerance - new_tat) // interval
    return Step(Decision(True, timedelta(0), remaining), new_tat)


def to_micros(seconds: float) -> int:
    """A clock reading in seconds as whole microseconds."""
    return round(seconds * MICROS)
