"""Domain objects to and from table rows and JSON bodies.

Enums are stored as their ``.value``; event payloads as a ``kind`` and a JSON body
whose keys are the dataclass field names. Decoding is strict: an unknown kind or a
missing key raises, because a row this code cannot read is a bug, not data to skip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    Priority,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskSpec,
    TaskState,
    TokenUsage,
    ToolCalled,
    ToolKind,
    ToolRef,
    ToolReturned,
    UsageReported,
)

Json = dict[str, Any]
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
        "create_time": task.create_time,
        **task_progress(task),
    }


def task_progress(task: Task) -> dict[str, Any]:
    """The columns that change while a task runs (what ``commit`` updates)."""
    return {
        "state": task.state.value,
        "output_text": task.output_text,
        "error": None if task.error is None else _error_to_json(task.error),
        "agent": task.agent,
        "attempts": task.attempts,
        "input_tokens": task.usage.input_tokens,
        "output_tokens": task.usage.output_tokens,
        "total_tokens": task.usage.total_tokens,
        "start_time": task.start_time,
        "end_time": task.end_time,
        "last_sequence": task.last_sequence,
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
    )
    return Task(
        id=row["id"],
        spec=spec,
        state=TaskState(row["state"]),
        create_time=row["create_time"],
        owner=row["owner"],
        request_id=row["request_id"] or "",
        output_text=row["output_text"],
        error=None if row["error"] is None else _error_from_json(row["error"]),
        agent=row["agent"],
        attempts=row["attempts"],
        usage=TokenUsage(row["input_tokens"], row["output_tokens"], row["total_tokens"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        last_sequence=row["last_sequence"],
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


def payload_to_json(payload: EventPayload) -> tuple[str, Json]:
    """The ``kind`` and JSON body of an event payload."""
    codec = _BY_TYPE.get(type(payload))
    if codec is None:
        raise TypeError(f"not an event payload: {payload!r}")
    return codec.kind, codec.encode(payload)


def payload_from_json(kind: str, body: Json) -> EventPayload:
    """The payload stored as ``kind`` and ``body``; ValueError for an unknown kind."""
    codec = _BY_KIND.get(kind)
    if codec is None:
        raise ValueError(f"unknown event kind {kind!r}")
    return codec.decode(body)


def _error_to_json(error: TaskError) -> Json:
    return {"code": error.code, "message": error.message, "reason": error.reason}


def _error_from_json(body: Json) -> TaskError:
    return TaskError(code=body["code"], message=body["message"], reason=body["reason"])


def _state_changed_to_json(p: StateChanged) -> Json:
    return {
        "state": p.state.value,
        "previous": None if p.previous is None else p.previous.value,
        "reason": p.reason,
        "error": None if p.error is None else _error_to_json(p.error),
    }


def _state_changed_from_json(body: Json) -> StateChanged:
    previous, error = body["previous"], body["error"]
    return StateChanged(
        state=TaskState(body["state"]),
        previous=None if previous is None else TaskState(previous),
        reason=body["reason"],
        error=None if error is None else _error_from_json(error),
    )


@dataclass(frozen=True, slots=True)
class _PayloadCodec:
    kind: str
    type: type[Any]
    encode: Callable[[Any], Json]
    decode: Callable[[Json], EventPayload]


_CODECS = (
    _PayloadCodec("state_changed", StateChanged, _state_changed_to_json, _state_changed_from_json),
    _PayloadCodec(
        "agent_changed",
        AgentChanged,
        lambda p: {"agent": p.agent, "previous": p.previous, "handoff": p.handoff},
        lambda b: AgentChanged(agent=b["agent"], previous=b["previous"], handoff=b["handoff"]),
    ),
    _PayloadCodec(
        "output_delta",
        OutputDelta,
        lambda p: {"text": p.text},
        lambda b: OutputDelta(text=b["text"]),
    ),
    _PayloadCodec(
        "tool_called",
        ToolCalled,
        lambda p: {"call_id": p.call_id, "name": p.name, "arguments_json": p.arguments_json},
        lambda b: ToolCalled(
            call_id=b["call_id"], name=b["name"], arguments_json=b["arguments_json"]
        ),
    ),
    _PayloadCodec(
        "tool_returned",
        ToolReturned,
        lambda p: {"call_id": p.call_id, "output": p.output, "is_error": p.is_error},
        lambda b: ToolReturned(call_id=b["call_id"], output=b["output"], is_error=b["is_error"]),
    ),
    _PayloadCodec(
        "usage_reported",
        UsageReported,
        lambda p: {
            "input_tokens": p.usage.input_tokens,
            "output_tokens": p.usage.output_tokens,
            "total_tokens": p.usage.total_tokens,
        },
        lambda b: UsageReported(
            TokenUsage(b["input_tokens"], b["output_tokens"], b["total_tokens"])
        ),
    ),
    _PayloadCodec(
        "log",
        LogRecord,
        lambda p: {"level": p.level, "message": p.message},
        lambda b: LogRecord(level=b["level"], message=b["message"]),
    ),
)
_BY_TYPE = {codec.type: codec for codec in _CODECS}
_BY_KIND = {codec.kind: codec for codec in _CODECS}
