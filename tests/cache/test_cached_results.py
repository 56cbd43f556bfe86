"""Cached results: what they may hold, and their JSON form (shared with Redis)."""

from __future__ import annotations

import json

import pytest

from switchboard.server.cache import CachedResult, replayable
from switchboard.server.cache.results import decode_result, encode_result
from switchboard.server.domain import (
    OutputDelta,
    StateChanged,
    TaskState,
    TokenUsage,
    UsageReported,
)

from .support import REPLAYED


def test_only_state_changes_and_usage_are_not_replayed() -> None:
    kinds = {type(payload).__name__ for payload in REPLAYED}
    assert kinds == {"AgentChanged", "OutputDelta", "ToolCalled", "ToolReturned", "LogRecord"}
    assert not replayable(StateChanged(TaskState.SUCCEEDED))
    assert not replayable(UsageReported(TokenUsage(1, 2, 3)))


@pytest.mark.parametrize(
    "payload", [StateChanged(TaskState.RUNNING), UsageReported(TokenUsage(1, 2, 3))]
)
def test_a_result_refuses_payloads_it_must_not_replay(
    payload: StateChanged | UsageReported,
) -> None:
    with pytest.raises(ValueError, match=f"replays no {type(payload).__name__}"):
        CachedResult(output_text="x", agent="a", payloads=(OutputDelta("x"), payload))


def test_a_result_round_trips_through_its_encoding() -> None:
    full = CachedResult(output_text="Grüße 🌍", agent="writer", payloads=REPLAYED)
    assert decode_result(encode_result(full)) == full
    assert decode_result(encode_result(full).decode()) == full
    empty = CachedResult(output_text="", agent="")
    assert decode_result(encode_result(empty)) == empty


def _encoded(**changes: object) -> bytes:
    document = json.loads(encode_result(CachedResult("x", "a", (OutputDelta("x"),))))
    return json.dumps(document | changes).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        _encoded(version=2),
        _encoded(output_text=None),
        _encoded(agent=7),
        _encoded(events=[{"kind": "teleported", "body": {}}]),
        _encoded(events=[{"kind": "output_delta", "body": {}}]),
        _encoded(events=[{"kind": "output_delta"}]),
        _encoded(events=[{"kind": "output_delta", "body": "text"}]),
        _encoded(
            events=[
                {
                    "kind": "state_changed",
                    "body": {"state": "queued", "previous": None, "reason": "", "error": None},
                }
            ]
        ),
    ],
)
def test_anything_else_is_refused_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a cached result"):
        decode_result(data)
