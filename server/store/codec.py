"""Domain objects to and from table rows.

Enums are stored as their ``.value``; event payloads and task errors as JSON, in
the encoding of :mod:`switchboard.server.domain.serialize`. Decoding is strict: a
row this code cannot read is a bug, not data to skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from switchboard.server.domain import (
    Priority,
    Task,
    TaskEvent,
    TaskSpec,
    TaskState,
    TokenUsage,
    ToolKind,
    ToolRef,
)
from switchboard.server.domain.serialize import (
    error_from_json,
    error_to_json,
    payload_from_json,
    payload_to_json,
)

Row = Mapping[Any, Any]

_MILLISECOND = timedelta(milliseconds=1)


def task_to_row(task: Task) -> dict[str, Any]:
    """Every column of a task's row."""
    spec = task.spec
    return {
        "id": task.id,
        "owner": task.owner,
        "request_id": task.request_id or None,
        "requested_agent": spec.agent,
        "priority": int(spec.priority),
        "input": spec.input,
        "instructions": spec.instructions,
        "tools": [{"kind": tool.kind.value, "name": tool.name} for tool in spec.tools],
        "spec_metadata": dict(spec.metadata),
        "timeout_ms": None if spec.timeout is None else round(spec.timeout / _MILLISECOND),
        "no_cache": spec.no_cache,
        "create_time": task.create_time,
        "deadline": task.deadline,
        **task_progress(task),
    }


def task_progress(task: Task) -> dict[str, Any]:
    """The columns that change while a task runs (what ``commit`` updates)."""
    return {
        "state": task.state.value,
        "output_text": task.output_text,
        "error": None if task.error is None else error_to_json(task.error),
        "agent": task.agent,
        "attempts": task.attempts,
        "input_tokens": task.usage.input_tokens,
        "output_tokens": task.usage.output_tokens,
        "total_tokens": task.usage.total_tokens,
        "start_time": task.start_time,
        "end_time": task.end_time,
        "last_sequence": task.last_sequence,
        "cached": task.cached,
    }


def task_from_row(row: Row) -> Task:
    """The task a row holds."""
    timeout_ms = row["timeout_ms"]
    spec = TaskSpec(
        input=row["input"],
        instructions=row["instructions"],
        agent=row["requested_agent"],
        tools=tuple(ToolRef(ToolKind(tool["kind"]), tool["name"]) for tool in row["tools"]),
        metadata=dict(row["spec_metadata"]),
        priority=Priority(row["priority"]),
        timeout=None if timeout_ms is None else timedelta(milliseconds=timeout_ms),
        no_cache=row["no_cache"],
    )
    return Task(
        id=row["id"],
        spec=spec,
        state=TaskState(row["state"]),
        create_time=row["create_time"],
        owner=row["owner"],
        request_id=row["request_id"] or "",
        output_text=row["output_text"],
        error=None if row["error"] is None else error_from_json(row["error"]),
        agent=row["agent"],
        attempts=row["attempts"],
        usage=TokenUsage(row["input_tokens"], row["output_tokens"], row["total_tokens"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        last_sequence=row["last_sequence"],
        cached=row["cached"],
        deadline=row["deadline"],
    )


def event_to_row(event: TaskEvent) -> dict[str, Any]:
    """Every column of an event's row."""
    kind, body = payload_to_json(event.payload)
    return {
        "task_id": event.task_id,
        "sequence": event.sequence,
        "time": event.time,
        "kind": kind,
        "body": body,
    }


def event_from_row(row: Row) -> TaskEvent:
    """The event a row holds."""
    return TaskEvent(
        task_id=row["task_id"],
        sequence=row["sequence"],
        time=row["time"],
        payload=payload_from_json(row["kind"], row["body"]),
    )
