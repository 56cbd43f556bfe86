"""The proto enums next to their domain twins: one table each, read both ways."""

from __future__ import annotations

from switchboard.server.domain import Priority, TaskState, ToolKind
from switchboard.v1 import agents_pb2, tasks_pb2

PRIORITIES: dict[tasks_pb2.TaskPriority, Priority] = {
    tasks_pb2.TASK_PRIORITY_LOW: Priority.LOW,
    tasks_pb2.TASK_PRIORITY_MEDIUM: Priority.MEDIUM,
    tasks_pb2.TASK_PRIORITY_HIGH: Priority.HIGH,
}
PRIORITY_NUMBERS = {domain: number for number, domain in PRIORITIES.items()}

TOOL_KINDS: dict[tasks_pb2.ToolType, ToolKind] = {
    tasks_pb2.TOOL_TYPE_WEB_SEARCH: ToolKind.WEB_SEARCH,
    tasks_pb2.TOOL_TYPE_FILE_SEARCH: ToolKind.FILE_SEARCH,
    tasks_pb2.TOOL_TYPE_FUNCTION: ToolKind.FUNCTION,
}
TOOL_TYPE_NUMBERS = {domain: number for number, domain in TOOL_KINDS.items()}

STATES: dict[tasks_pb2.TaskState, TaskState] = {
    tasks_pb2.TASK_STATE_QUEUED: TaskState.QUEUED,
    tasks_pb2.TASK_STATE_RUNNING: TaskState.RUNNING,
    tasks_pb2.TASK_STATE_SUCCEEDED: TaskState.SUCCEEDED,
    tasks_pb2.TASK_STATE_FAILED: TaskState.FAILED,
    tasks_pb2.TASK_STATE_CANCELLED: TaskState.CANCELLED,
    tasks_pb2.TASK_STATE_TIMED_OUT: TaskState.TIMED_OUT,
}
STATE_NUMBERS = {domain: number for number, domain in STATES.items()}

# AgentStatus.circuit_state is a plain string so the orchestrator needs no proto enum.
CIRCUIT_STATE_NUMBERS: dict[str, agents_pb2.CircuitState] = {
    "closed": agents_pb2.CIRCUIT_STATE_CLOSED,
    "open": agents_pb2.CIRCUIT_STATE_OPEN,
    "half_open": agents_pb2.CIRCUIT_STATE_HALF_OPEN,
}
