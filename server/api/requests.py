"""Requests read into domain terms, rejecting what the message itself carries wrong.

Only what a message can be but must not be is checked here: enum numbers the
contract does not define, a Duration outside its own rules. The service's limits
(lengths, counts, timeout range, known agents) are the orchestrator's to check, with
the same field paths, so a request is judged in one place.
"""

from __future__ import annotations

from datetime import timedelta

from switchboard.server.api.enums import PRIORITIES, STATES, TOOL_KINDS
from switchboard.server.domain import (
    FieldViolation,
    InvalidArgument,
    Priority,
    TaskSpec,
    TaskState,
    ToolRef,
)
from switchboard.server.orchestrator.service import NewTask
from switchboard.v1 import tasks_pb2

# google.protobuf.Duration's own range: about 10,000 years.
_MAX_DURATION_SECONDS = 315_576_000_000
_NANOS_PER_SECOND = 1_000_000_000

TaskRequest = tasks_pb2.ExecuteRequest | tasks_pb2.SubmitTaskRequest


def new_task(request: TaskRequest) -> NewTask:
    """The task an Execute or SubmitTask request asks for, or InvalidArgument."""
    violations: list[FieldViolation] = []
    task = _new_task(request, "", violations)
    _reject(violations)
    return task


def new_batch(request: tasks_pb2.BatchExecuteRequest) -> list[NewTask]:
    """The tasks of a batch; one malformed item rejects the whole batch."""
    violations: list[FieldViolation] = []
    batch = [
        _new_task(item, f"requests[{index}].", violations)
        for index, item in enumerate(request.requests)
    ]
    _reject(violations)
    return batch


def state_filter(request: tasks_pb2.ListTasksRequest) -> TaskState | None:
    """The state ListTasks filters on; None for every state."""
    if request.state == tasks_pb2.TASK_STATE_UNSPECIFIED:
        return None
    state = STATES.get(request.state)
    if state is None:
        raise InvalidArgument([_unknown_enum("state", request.state, tasks_pb2.TaskState.keys())])
    return state


def _reject(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


def _new_task(request: TaskRequest, prefix: str, violations: list[FieldViolation]) -> NewTask:
    spec = _spec(request.task, f"{prefix}task", violations)
    return NewTask(spec=spec, request_id=request.request_id)


def _spec(spec: tasks_pb2.TaskSpec, path: str, violations: list[FieldViolation]) -> TaskSpec:
    tools = (
        _tool(tool, f"{path}.tools[{index}]", violations) for index, tool in enumerate(spec.tools)
    )
    return TaskSpec(
        input=spec.input,
        instructions=spec.instructions,
        agent=spec.agent,
        tools=tuple(tool for tool in tools if tool is not None),
        metadata=dict(spec.metadata),
        priority=_priority(spec.priority, f"{path}.priority", violations),
        timeout=_timeout(spec, f"{path}.timeout", violations),
        no_cache=spec.no_cache,
    )


def _priority(
    number: tasks_pb2.TaskPriority, path: str, violations: list[FieldViolation]
) -> Priority:
    if number == tasks_pb2.TASK_PRIORITY_UNSPECIFIED:
        return Priority.MEDIUM
    priority = PRIORITIES.get(number)
    if priority is None:
        violations.append(_unknown_enum(path, number, tasks_pb2.TaskPriority.keys()))
        return Priority.MEDIUM  # never used: the violation rejects the request
    return priority


def _tool(tool: tasks_pb2.Tool, path: str, violations: list[FieldViolation]) -> ToolRef | None:
    kind = TOOL_KINDS.get(tool.type)
    if kind is None:
        violations.append(_unknown_enum(f"{path}.type", tool.type, tasks_pb2.ToolType.keys()))
        return None
    return ToolRef(kind=kind, name=tool.name)


def _timeout(
    spec: tasks_pb2.TaskSpec, path: str, violations: list[FieldViolation]
) -> timedelta | None:
    if not spec.HasField("timeout"):
        return None
    seconds, nanos = spec.timeout.seconds, spec.timeout.nanos
    if seconds < 0 or nanos < 0:
        problem = "must not be negative"
    elif nanos >= _NANOS_PER_SECOND:
        problem = f"nanos must be below {_NANOS_PER_SECOND:,} (got {nanos:,})"
    elif seconds > _MAX_DURATION_SECONDS:
        problem = "is beyond the range of google.protobuf.Duration"
    else:
        return timedelta(seconds=seconds, microseconds=nanos // 1000)
    violations.append(FieldViolation(path, f"malformed duration: {problem}"))
    return None


def _unknown_enum(path: str, number: int, names: list[str]) -> FieldViolation:
    # names[0] is the UNSPECIFIED value, never a valid choice where this is used.
    choices = ", ".join(names[1:])
    problem = "must be set" if number == 0 else f"unknown value {number}"
    return FieldViolation(path, f"{problem}; use one of {choices}")
