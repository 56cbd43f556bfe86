"""How many tasks wait in the queue, per agent, across every replica.

Read from the database every poll interval (store/queue.py) and adjusted between
reads by what this replica does, so admission (``queue.max_queued``), ListAgents
and the ``agent_queue_length`` metric need no query of their own.
"""

from __future__ import annotations

from typing import Protocol


class _Counter(Protocol):
    async def queued_counts(self) -> dict[str, int]: ...


class QueuedCounts:
    """Queued tasks per agent: the last count read, plus the changes made here since."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._changes = 0

    def add(self, agent: str, delta: int) -> None:
        """Count a task of ``agent`` queued (+1) or taken (-1) by this replica."""
        self._counts[agent] = max(0, self._counts.get(agent, 0) + delta)
        self._changes += 1

    def of(self, agent: str) -> int:
        """Tasks of ``agent`` waiting."""
        return self._counts.get(agent, 0)

    def total(self) -> int:
        """Tasks waiting, whatever their agent."""
        return sum(self._counts.values())

    async def refresh(self, source: _Counter) -> None:
        """Read the counts again; a read that raced a change made here is dropped."""
        changes = self._changes
        counts = await source.queued_counts()
        if changes == self._changes:
            self._counts = counts
