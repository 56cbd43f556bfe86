"""Live status of an agent, as the orchestrator sees it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from switchboard.server.domain import Task, TaskState, TokenUsage
from switchboard.server.orchestrator.breaker import CircuitState

if TYPE_CHECKING:
    from switchboard.server.orchestrator.runner import Worker


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A configured agent and its counters since the server started."""

    name: str
    description: str
    model: str
    tools: tuple[str, ...]
    handoffs: tuple[str, ...]
    max_concurrency: int
    default: bool
    healthy: bool
    circuit_state: str  # "closed", "open" or "half_open"
    in_flight: int
    queued: int
    outcomes: dict[TaskState, int] = field(default_factory=dict)
    usage: TokenUsage = field(default_factory=TokenUsage)
    last_error: str = ""
    last_error_time: datetime | None = None
    circuit_opened: int = 0
    """How many times the agent's circuit breaker opened."""


@dataclass(slots=True)
class AgentCounters:
    """What an agent's finished tasks add up to since the server started."""

    outcomes: Counter[TaskState] = field(default_factory=Counter)
    usage: TokenUsage = field(default_factory=TokenUsage)
    last_error: str = ""
    last_error_time: datetime | None = None

    def record(self, task: Task) -> None:
        """Count a task that reached its terminal state."""
        self.outcomes[task.state] += 1
        self.usage += task.usage
        if task.error is not None and task.state is not TaskState.CANCELLED:
            self.last_error, self.last_error_time = task.error.message, task.end_time


def agent_status(worker: Worker, *, default: bool, in_flight: int, queued: int) -> AgentStatus:
    """The status of ``worker``'s agent, with the scheduler's counts."""
    config, breaker, counters = worker.config, worker.breaker, worker.counters
    state = breaker.state
    return AgentStatus(
        name=config.name,
        description=config.description,
        model=config.model,
        tools=tuple(sorted(worker.runtime.tools)),
        handoffs=tuple(config.handoffs),
        max_concurrency=config.max_concurrency,
        default=default,
        healthy=state is not CircuitState.OPEN,
        circuit_state=state.value,
        circuit_opened=breaker.opened_total,
        in_flight=in_flight,
        queued=queued,
        outcomes=dict(counters.outcomes),
        usage=counters.usage,
        last_error=counters.last_error,
        last_error_time=counters.last_error_time,
    )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counters of the durable queue and the event writer, since the start."""

    store_write_errors: int
    """Commits the database refused (each retried)."""
    leases_lost: int
    """Tasks lost to another replica (this one had stopped renewing their leases)."""
    reclaims: int
    """Tasks taken over from a replica that stopped renewing their leases."""
