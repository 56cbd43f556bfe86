"""The seam between the orchestrator and whatever runs an agent.

The orchestrator hands an ``AgentRun`` to an ``AgentRuntime`` and receives the run's
events through ``emit`` as they happen; the runtime returns the outcome or raises
``AgentError``. Cancelling the awaiting coroutine must stop the run (including any
provider call in flight).

Before running a task, the orchestrator checks that the runtime can serve every tool
the task asks for (``tool_name(ref) in runtime.tools``) and refuses the task otherwise;
at shutdown it closes every runtime (``aclose``), releasing provider clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from switchboard.server.domain import EventPayload, ToolKind, ToolRef

Emit = Callable[[EventPayload], Awaitable[None]]


def tool_name(tool: ToolRef) -> str:
    """The name ``tool`` goes by in ``AgentRuntime.tools``.

    That is the function's name for function tools, and the kind (``web_search``,
    ``file_search``) for the others.
    """
    return tool.name if tool.kind is ToolKind.FUNCTION else tool.kind.value


@dataclass(frozen=True, slots=True)
class AgentRun:
    """One attempt at one task on one agent.

    ``tools`` narrows the agent's tools for this task to those named (all must be in
    ``AgentRuntime.tools``); when empty, the agent has all its configured tools.
    Handoffs are always available, and an agent handed the task works with its own
    configured instructions and tools.
    """

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

    @property
    def tools(self) -> frozenset[str]:
        """The tools a task may ask this agent for, by ``tool_name``."""
        ...

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        """Run ``run`` to completion, reporting progress through ``emit``."""
        ...

    async def aclose(self) -> None:
        """Release what the runtime holds (provider clients); no run may start after."""
        ...
