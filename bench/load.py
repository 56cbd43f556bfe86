"""The one client loop every scenario uses: a fixed number of calls in flight, for a while.

Closed loop: each of ``concurrency`` workers starts its next call as soon as its last
one ends, until the duration is up. A warm-up round runs first and is thrown away
(connections, lazy imports and first-call caches on both sides).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from bench.cpu import CpuWindow

# An operation performs one unit of work and returns how many items it carried
# (1 for a unary call, the number of events for a watched stream).
Operation = Callable[[], Awaitable[int]]
CpuClock = Callable[[], float | None]


class OperationFailed(Exception):
    """The call worked but its result is wrong (e.g. a task that did not succeed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to push."""

    concurrency: int = 32
    duration: float = 10.0
    warmup: float = 1.0


@dataclass
class LoadResult:
    """What a measured round did."""

    concurrency: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls only
    items: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None  # seconds the server process spent
    client_cpu: float = 0.0  # seconds this process spent

    @property
    def ok(self) -> int:
        """Calls that succeeded."""
        return len(self.latencies)

    @property
    def calls_per_second(self) -> float:
        """Successful calls per second."""
        return self.ok / self.elapsed if self.elapsed else 0.0

    @property
    def items_per_second(self) -> float:
        """Items (events, for streams) per second."""
        return self.items / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Latency at ``fraction`` (0.5, 0.99) of the successful calls, nearest rank."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def server_cpu_ms_per_call(self) -> float | None:
        """Server CPU per successful call, when the server's clock is readable."""
        if self.server_cpu is None or not self.ok:
            return None
        return 1000 * self.server_cpu / self.ok

    @property
    def client_cpu_share(self) -> float:
        """How busy this process was (1.0 = one core): near 1 means the client is the limit."""
        return self.client_cpu / self.elapsed if self.elapsed else 0.0


async def _round(operation: Operation, concurrency: int, duration: float) -> LoadResult:
    result = LoadResult(concurrency)
    start = time.perf_counter()
    stop_at = start + duration

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                items = await operation()
            except grpc.aio.AioRpcError as error:
                result.errors[error.code().name] += 1
                continue
            except OperationFailed as failure:
                result.errors[failure.reason] += 1
                continue
            result.latencies.append(time.perf_counter() - began)
            result.items += items

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result


async def measure(
    operation: Operation,
    settings: LoadSettings,
    server_cpu: CpuClock,
    window: CpuWindow | None = None,
) -> LoadResult:
    """Warm up, then run ``operation`` closed-loop and measure it.

    ``window``, when given, also clocks its process groups over the measured round.
    """
    if settings.warmup > 0:
        await _round(operation, settings.concurrency, settings.warmup)
    if window is not None:
        window.start()
    server_before, client_before = server_cpu(), time.process_time()
    result = await _round(operation, settings.concurrency, settings.duration)
    server_after = server_cpu()
    if window is not None:
        window.stop()
    result.client_cpu = time.process_time() - client_before
    if server_before is not None and server_after is not None:
        result.server_cpu = server_after - server_before
    return result
