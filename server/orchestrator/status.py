"""Live status of an agent, as the orchestrator sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from switchboard.server.domain import TaskState, TokenUsage


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
