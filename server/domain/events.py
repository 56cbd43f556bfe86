"""Task events: every step of a task's life, numbered 1, 2, 3, ... per task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from switchboard.server.domain.tasks import TaskError, TaskState, TokenUsage


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The task moved from ``previous`` (None for the first event) to ``state``."""

    state: TaskState
    previous: TaskState | None = None
    reason: str = ""
    error: TaskError | None = None


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """``agent`` now works on the task; ``handoff`` when ``previous`` handed it off."""

    agent: str
    previous: str = ""
    handoff: bool = False


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """More output text, to append to what ``attempt`` produced so far.

    A task that is retried starts its output over: text of earlier attempts is not
    part of the output of a later one.
    """

    text: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """The agent called a tool."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class ToolReturned:
    """A tool returned (``is_error`` when it failed)."""

    call_id: str
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Token usage of one model call."""

    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A log line about the task."""

    level: str
    message: str


EventPayload = (
    StateChanged
    | AgentChanged
    | OutputDelta
    | ToolCalled
    | ToolReturned
    | UsageReported
    | LogRecord
)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One numbered event of one task."""

    task_id: str
    sequence: int
    time: datetime
    payload: EventPayload

    @property
    def terminal(self) -> bool:
        """True for the event that ends the task's stream."""
        return isinstance(self.payload, StateChanged) and self.payload.state.terminal
