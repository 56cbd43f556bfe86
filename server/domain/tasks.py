"""Tasks as the service sees them: what was asked, where it stands, how it ended.

Plain dataclasses shared by every layer; no gRPC, no SQL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class TaskState(enum.Enum):
    """Lifecycle state: QUEUED, RUNNING, then exactly one terminal state."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        """True for the states a task never leaves."""
        return self not in (TaskState.QUEUED, TaskState.RUNNING)


class Priority(enum.IntEnum):
    """Queue priority; a higher value runs first."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


class ToolKind(enum.Enum):
    """The kinds of tool a task may ask for."""

    WEB_SEARCH = "web_search"
    FILE_SEARCH = "file_search"
    FUNCTION = "function"


@dataclass(frozen=True, slots=True)
class ToolRef:
    """One tool a task asks its agent to use (``name`` only for functions)."""

    kind: ToolKind
    name: str = ""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a client asked for, with defaults applied once accepted.

    ``agent`` and ``timeout`` may be empty/None in a request; the orchestrator fills
    them from the agent configuration before the task is stored. ``no_cache`` keeps
    the task out of the result cache: it is neither served from it nor stored in it.
    """

    input: str
    instructions: str = ""
    agent: str = ""
    tools: tuple[ToolRef, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    priority: Priority = Priority.MEDIUM
    timeout: timedelta | None = None
    no_cache: bool = False


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Model tokens consumed."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class TaskError:
    """Why a task did not succeed.

    ``code`` is a gRPC status code name (``"DEADLINE_EXCEEDED"``, ``"CANCELLED"``,
    ``"UNAVAILABLE"``, ...); ``reason`` is a machine-readable UPPER_SNAKE reason.
    """

    code: str
    message: str
    reason: str


@dataclass(frozen=True, slots=True)
class Task:
    """A task and everything known about its run.

    ``cached`` is True when the result came from the result cache (no model ran).
    ``deadline`` is the Execute caller's deadline, if any: whichever replica runs the
    task ends it TIMED_OUT then.
    """

    id: str
    spec: TaskSpec
    state: TaskState
    create_time: datetime
    owner: str = ""
    request_id: str = ""
    output_text: str = ""
    error: TaskError | None = None
    agent: str = ""
    attempts: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_sequence: int = 0
    cached: bool = False
    deadline: datetime | None = None
