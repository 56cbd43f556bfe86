"""Which queued task runs next: priority order, a global cap and per-agent caps.

High before medium before low, first come first served within a priority. A task
whose agent is at its cap does not hold back tasks of other agents.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from switchboard.server.domain import Priority


@dataclass(order=True, slots=True)
class _Entry:
    rank: tuple[int, int]
    task_id: str = field(compare=False)
    agent: str = field(compare=False)
    removed: bool = field(default=False, compare=False)


class Scheduler:
    """A priority queue per agent and the counters that enforce the caps."""

    def __init__(self, max_running: int, agent_caps: Mapping[str, int]) -> None:
        self._max_running = max_running
        self._caps = dict(agent_caps)
        self._heaps: dict[str, list[_Entry]] = {agent: [] for agent in agent_caps}
        self._entries: dict[str, _Entry] = {}
        self._running: dict[str, int] = dict.fromkeys(agent_caps, 0)
        self._arrivals = itertools.count()
        self._changed = asyncio.Event()

    def push(self, task_id: str, agent: str, priority: Priority) -> None:
        """Queue ``task_id`` for ``agent``."""
        entry = _Entry((-priority, next(self._arrivals)), task_id, agent)
        self._entries[task_id] = entry
        heapq.heappush(self._heaps[agent], entry)
        self._changed.set()

    def remove(self, task_id: str) -> bool:
        """Take ``task_id`` out of the queue; False when it was not queued."""
        entry = self._entries.pop(task_id, None)
        if entry is None:
            return False
        entry.removed = True
        return True

    async def take(self) -> tuple[str, str]:
        """Wait for the next task allowed to run; count it as running.

        Returns the task id and its agent. The caller must ``release`` the agent
        when the task stops running.
        """
        while True:
            entry = self._next_runnable()
            if entry is not None:
                heapq.heappop(self._heaps[entry.agent])
                del self._entries[entry.task_id]
                self._running[entry.agent] += 1
                return entry.task_id, entry.agent
            self._changed.clear()
            await self._changed.wait()

    def release(self, agent: str) -> None:
        """A task of ``agent`` stopped running: its slot is free again."""
        self._running[agent] -= 1
        self._changed.set()

    def queued(self, agent: str) -> int:
        """Tasks of ``agent`` waiting to run."""
        return sum(1 for entry in self._entries.values() if entry.agent == agent)

    def running(self, agent: str) -> int:
        """Tasks of ``agent`` running now."""
        return self._running[agent]

    def __len__(self) -> int:
        return len(self._entries)

    def _next_runnable(self) -> _Entry | None:
        if sum(self._running.values()) >= self._max_running:
            return None
        best: _Entry | None = None
        for agent, heap in self._heaps.items():
            while heap and heap[0].removed:
                heapq.heappop(heap)
            if not heap or self._running[agent] >= self._caps[agent]:
                continue
            if best is None or heap[0] < best:
                best = heap[0]
        return best
