"""Event payloads and task errors to JSON and back: every kind survives the round trip."""

from __future__ import annotations

import json
import typing

import pytest

from switchboard.server.domain import EventPayload, StateChanged, TaskError, TaskState
from switchboard.server.domain.serialize import (
    error_from_json,
    error_to_json,
    payload_from_json,
    payload_to_json,
)
from tests.payloads import EVERY_PAYLOAD


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


def test_a_task_error_round_trips() -> None:
    error = TaskError(code="DEADLINE_EXCEEDED", message="too slow", reason="TASK_TIMEOUT")
    assert error_from_json(json.loads(json.dumps(error_to_json(error)))) == error


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'teleported'"):
        payload_from_json("teleported", {})


def test_body_missing_a_key_is_refused() -> None:
    with pytest.raises(KeyError):
        payload_from_json("output_delta", {})
    with pytest.raises(KeyError):
        error_from_json({"code": "INTERNAL", "message": "no reason"})


def test_non_payload_is_refused() -> None:
    with pytest.raises(TypeError, match="not an event payload"):
        payload_to_json("text")  # type: ignore[arg-type]
