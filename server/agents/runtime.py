"""The seam between the orchestrator and whatever runs an agent.

The orchestrator hands an ``AgentRun`` to an ``AgentRuntime`` and receives the run's
events through ``emit`` as they happen; the runtime returns the outcome or raises
``AgentError``. Cancelling the awaiting coroutine must stop the run (including any
provider call in flight).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from switchboard.server.domain import EventPayload, ToolRef

Emit = Callable[[EventPayload], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AgentRun:
    """One attempt at one task on one agent."""

    task_id: str
    agent: str
    input: str
    instructions: str = ""
    tools: tuple[ToolRef, ...] = ()
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """What a successful run produced; ``agent`` is the one that finished it.

    Token usage is not here: runtimes report it as ``UsageReported`` events, one per
    model call, and the orchestrator sums them (failed attempts included).
    """

    output_text: str
    agent: str


class AgentError(Exception):
    """A run failed. ``retryable`` when another attempt may succeed."""

    def __init__(self, message: str, *, reason: str = "AGENT_FAILED", retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retryable = retryable


class AgentRuntime(Protocol):
    """Runs tasks for one configured agent."""

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        """Run ``run`` to completion, reporting progress through ``emit``."""
        ...
