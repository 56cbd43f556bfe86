"""How many tasks this replica runs at once: a global cap and one per agent.

Which task runs next is the durable queue's business (store/queue.py: highest
priority, then oldest, across every replica); this only says how many more this
replica may take, per agent.
"""

from __future__ import annotations

from collections.abc import Mapping


class Slots:
    """Running-task counters that enforce the caps."""

    def __init__(self, max_running: int, agent_caps: Mapping[str, int]) -> None:
        self._max_running = max_running
        self._caps = dict(agent_caps)
        self._running: dict[str, int] = dict.fromkeys(agent_caps, 0)

    def free(self) -> int:
        """How many more tasks may run here, whatever their agent."""
        return max(0, self._max_running - sum(self._running.values()))

    def rooms(self) -> dict[str, int]:
        """How many more tasks of each agent may run here."""
        free = self.free()
        return {agent: min(free, cap - self._running[agent]) for agent, cap in self._caps.items()}

    def take(self, agent: str) -> None:
        """A task of ``agent`` starts running here."""
        self._running[agent] += 1

    def release(self, agent: str) -> None:
        """A task of ``agent`` stopped running here: its slot is free again."""
        self._running[agent] -= 1

    def running(self, agent: str) -> int:
        """Tasks of ``agent`` running here now."""
        return self._running[agent]
