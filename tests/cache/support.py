"""Helpers of the cache tests: results to cache and a clock the test moves."""

from __future__ import annotations

from switchboard.server.cache import CachedResult, replayable
from switchboard.server.domain import OutputDelta
from tests.payloads import EVERY_PAYLOAD

#: One of every payload kind a cached result holds (everything but state and usage).
REPLAYED = tuple(payload for payload in EVERY_PAYLOAD if replayable(payload))


def result(text: str = "four", agent: str = "assistant") -> CachedResult:
    """A cached result whose events are the output, in one delta."""
    return CachedResult(output_text=text, agent=agent, payloads=(OutputDelta(text),))


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
