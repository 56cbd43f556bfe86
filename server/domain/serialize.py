"""Event payloads and task errors to and from JSON-ready dicts.

Shared by everything that keeps domain values outside the process: the store's
JSON columns, the result cache's entries. Enums are written as their ``.value``;
a payload is a ``kind`` and a body whose keys are the dataclass field names.
Decoding is strict: an unknown kind or a missing key raises, because data this
code cannot read is a bug, not something to skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from switchboard.server.domain.events import (
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    StateChanged,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from switchboard.server.domain.tasks import TaskError, TaskState, TokenUsage

Json = dict[str, Any]


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


def error_to_json(error: TaskError) -> Json:
    """A task error as a JSON object."""
    return {"code": error.code, "message": error.message, "reason": error.reason}


def error_from_json(body: Json) -> TaskError:
    """The task error written by :func:`error_to_json`."""
    return TaskError(code=body["code"], message=body["message"], reason=body["reason"])


def _state_changed_to_json(p: StateChanged) -> Json:
    return {
        "state": p.state.value,
        "previous": None if p.previous is None else p.previous.value,
        "reason": p.reason,
        "error": None if p.error is None else error_to_json(p.error),
    }


def _state_changed_from_json(body: Json) -> StateChanged:
    previous, error = body["previous"], body["error"]
    return StateChanged(
        state=TaskState(body["state"]),
        previous=None if previous is None else TaskState(previous),
        reason=body["reason"],
        error=None if error is None else error_from_json(error),
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
        lambda p: {"text": p.text, "attempt": p.attempt},
        # Rows written before deltas carried their attempt are all of attempt 1.
        lambda b: OutputDelta(text=b["text"], attempt=b.get("attempt", 1)),
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
