"""Domain <-> row/JSON codec: every payload kind survives a JSON round trip."""

from __future__ import annotations

import json
import typing

import pytest

from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    StateChanged,
    TaskError,
    TaskState,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from switchboard.server.store.codec import payload_from_json, payload_to_json

EVERY_PAYLOAD: list[EventPayload] = [
    StateChanged(TaskState.QUEUED),
    StateChanged(TaskState.RUNNING, previous=TaskState.QUEUED, reason="picked up"),
    StateChanged(
        TaskState.FAILED,
        previous=TaskState.RUNNING,
        reason="agent failed",
        error=TaskError(code="UNAVAILABLE", message="model down", reason="AGENT_UNAVAILABLE"),
    ),
    AgentChanged(agent="offline"),
    AgentChanged(agent="writer", previous="triage", handoff=True),
    OutputDelta(text='héllo, wörld 👋\nsecond line\t"quoted"'),
    OutputDelta(text=""),
    ToolCalled(call_id="call-1", name="get_weather", arguments_json='{"city": "Zürich"}'),
    ToolReturned(call_id="call-1", output="sunny"),
    ToolReturned(call_id="call-2", output="boom", is_error=True),
    UsageReported(TokenUsage(input_tokens=12, output_tokens=34, total_tokens=46)),
    LogRecord(level="WARNING", message="retrying"),
]


def test_every_payload_type_is_covered() -> None:
    assert {type(p) for p in EVERY_PAYLOAD} == set(typing.get_args(EventPayload))


@pytest.mark.parametrize("payload", EVERY_PAYLOAD, ids=lambda p: type(p).__name__)
def test_payload_round_trips_through_json(payload: EventPayload) -> None:
    kind, body = payload_to_json(payload)
    assert payload_from_json(kind, json.loads(json.dumps(body))) == payload


def test_kinds_are_distinct_stable_names() -> None:
    kinds = {payload_to_json(p)[0] for p in EVERY_PAYLOAD}
    assert kinds == {
        "state_changed",
        "agent_changed",
        "output_delta",
        "tool_called",
        "tool_returned",
        "usage_reported",
        "log",
    }


def test_enums_are_stored_as_their_values() -> None:
    _, body = payload_to_json(StateChanged(TaskState.TIMED_OUT, previous=TaskState.RUNNING))
    assert body["state"] == "timed_out"
    assert body["previous"] == "running"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'teleported'"):
        payload_from_json("teleported", {})


def test_body_missing_a_key_is_refused() -> None:
    with pytest.raises(KeyError):
        payload_from_json("output_delta", {})


def test_non_payload_is_refused() -> None:
    with pytest.raises(TypeError, match="not an event payload"):
        payload_to_json("text")  # type: ignore[arg-type]
