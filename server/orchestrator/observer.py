"""What the orchestrator tells the outside world (metrics) as tasks end.

The orchestrator knows no Prometheus: it calls a ``TaskObserver``, which the
telemetry's ``Metrics`` implements. Live state (queue, agents, breakers, cache) is
not pushed: an observer reads it from the orchestrator when it needs it.
"""

from __future__ import annotations

from typing import Protocol

from switchboard.server.domain import Task


class TaskObserver(Protocol):
    """Told about every task that ends; must not block or raise."""

    def task_ended(self, task: Task) -> None:
        """``task`` reached its terminal state (it is in ``task.state``)."""
        ...

    def batch_task_ended(self, task: Task) -> None:
        """A BatchExecute call delivered ``task``, ended."""
        ...


class NoObserver:
    """The observer of an orchestrator nobody watches: does nothing."""

    def task_ended(self, task: Task) -> None:
        """Nothing to do."""

    def batch_task_ended(self, task: Task) -> None:
        """Nothing to do."""
