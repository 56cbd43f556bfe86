"""Domain values into the contract's messages: tasks, every event payload, errors, agents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from switchboard.server.api.resources import (
    agent_to_proto,
    error_to_status,
    event_to_proto,
    task_to_proto,
)
from switchboard.server.domain import (
    ERROR_DOMAIN,
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskSpec,
    TaskState,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from switchboard.server.orchestrator import AgentStatus
from switchboard.v1 import agents_pb2, tasks_pb2

NOW = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


def test_a_task_error_becomes_a_status_with_error_info() -> None:
    status = error_to_status(TaskError("DEADLINE_EXCEEDED", "ran out of time", "TASK_TIMEOUT"))
    assert status.code == code_pb2.DEADLINE_EXCEEDED
    assert status.message == "ran out of time"
    info = _error_info(status)
    assert (info.reason, info.domain) == ("TASK_TIMEOUT", ERROR_DOMAIN)


def test_an_unknown_error_code_name_becomes_unknown() -> None:
    assert error_to_status(TaskError("NO_SUCH_CODE", "?", "R")).code == code_pb2.UNKNOWN


def test_a_finished_task() -> None:
    task = Task(
        id="t-1",
        spec=TaskSpec(input="hi", agent="assistant", timeout=timedelta(seconds=30), no_cache=True),
        state=TaskState.FAILED,
        create_time=NOW,
        owner="someone",
        request_id="r-1",
        output_text="partial",
        error=TaskError("UNAVAILABLE", "model down", "AGENT_FAILED"),
        agent="assistant",
        attempts=3,
        usage=TokenUsage(1, 2, 3),
        start_time=NOW + timedelta(seconds=1),
        end_time=NOW + timedelta(seconds=2),
        last_sequence=9,
        cached=True,
    )
    message = task_to_proto(task)
    assert message.id == "t-1"
    assert message.spec.input == "hi"
    assert message.spec.priority == tasks_pb2.TASK_PRIORITY_MEDIUM
    assert message.spec.timeout.ToTimedelta() == timedelta(seconds=30)
    assert message.state == tasks_pb2.TASK_STATE_FAILED
    assert message.output_text == "partial"
    assert message.error.code == code_pb2.UNAVAILABLE
    assert _error_info(message.error).reason == "AGENT_FAILED"
    assert (message.agent, message.attempts, message.last_sequence) == ("assistant", 3, 9)
    assert message.request_id == "r-1"
    assert (message.cached, message.spec.no_cache) == (True, True)
    assert message.usage == tasks_pb2.TokenUsage(input_tokens=1, output_tokens=2, total_tokens=3)
    assert message.create_time.ToDatetime(UTC) == NOW
    assert message.start_time.ToDatetime(UTC) == NOW + timedelta(seconds=1)
    assert message.end_time.ToDatetime(UTC) == NOW + timedelta(seconds=2)


def test_a_queued_task_leaves_what_has_not_happened_unset() -> None:
    message = task_to_proto(
        Task(id="t", spec=TaskSpec(input="x"), state=TaskState.QUEUED, create_time=NOW)
    )
    assert message.state == tasks_pb2.TASK_STATE_QUEUED
    assert (message.cached, message.spec.no_cache) == (False, False)
    for name in ("error", "start_time", "end_time"):
        assert not message.HasField(name), name
    assert not message.spec.HasField("timeout")


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        (
            StateChanged(TaskState.QUEUED),
            "state_changed",
            tasks_pb2.StateChanged(state=tasks_pb2.TASK_STATE_QUEUED),
        ),
        (
            StateChanged(TaskState.SUCCEEDED, TaskState.RUNNING, "done"),
            "state_changed",
            tasks_pb2.StateChanged(
                previous_state=tasks_pb2.TASK_STATE_RUNNING,
                state=tasks_pb2.TASK_STATE_SUCCEEDED,
                reason="done",
            ),
        ),
        (
            AgentChanged("b", "a", handoff=True),
            "agent_changed",
            tasks_pb2.AgentChanged(agent="b", previous_agent="a", handoff=True),
        ),
        (
            OutputDelta("more", attempt=2),
            "output_delta",
            tasks_pb2.OutputDelta(text="more", attempt=2),
        ),
        (
            ToolCalled("c1", "lookup", '{"q": 1}'),
            "tool_call",
            tasks_pb2.ToolCall(call_id="c1", name="lookup", arguments_json='{"q": 1}'),
        ),
        (
            ToolReturned("c1", "boom", is_error=True),
            "tool_result",
            tasks_pb2.ToolResult(call_id="c1", output="boom", is_error=True),
        ),
        (
            UsageReported(TokenUsage(4, 5, 9)),
            "usage",
            tasks_pb2.UsageReported(
                usage=tasks_pb2.TokenUsage(input_tokens=4, output_tokens=5, total_tokens=9)
            ),
        ),
        (LogRecord("warning", "slow"), "log", tasks_pb2.LogRecord(level="warning", message="slow")),
    ],
)
def test_every_event_payload(payload: EventPayload, field: str, expected: object) -> None:
    message = event_to_proto(TaskEvent("t-1", 7, NOW, payload))
    assert (message.task_id, message.sequence) == ("t-1", 7)
    assert message.time.ToDatetime(UTC) == NOW
    assert message.WhichOneof("payload") == field
    assert getattr(message, field) == expected


def test_a_terminal_state_change_carries_its_error() -> None:
    error = TaskError("CANCELLED", "cancelled by request", "TASK_CANCELLED")
    payload = StateChanged(TaskState.CANCELLED, TaskState.RUNNING, "cancelled", error)
    changed = event_to_proto(TaskEvent("t", 3, NOW, payload)).state_changed
    assert changed.error.code == code_pb2.CANCELLED
    assert _error_info(changed.error).reason == "TASK_CANCELLED"


def test_an_agent_status() -> None:
    status = AgentStatus(
        name="assistant",
        description="helps",
        model="offline",
        tools=("lookup",),
        handoffs=("echo",),
        max_concurrency=4,
        default=True,
        healthy=False,
        circuit_state="half_open",
        in_flight=2,
        queued=5,
        outcomes={TaskState.FAILED: 2, TaskState.SUCCEEDED: 7},
        usage=TokenUsage(1, 1, 2),
        last_error="model down",
        last_error_time=NOW,
    )
    message = agent_to_proto(status)
    assert message.id == "assistant"
    assert (message.description, message.model) == ("helps", "offline")
    assert list(message.tools) == ["lookup"]
    assert list(message.handoffs) == ["echo"]
    assert message.health == agents_pb2.AGENT_HEALTH_UNHEALTHY
    assert message.circuit_state == agents_pb2.CIRCUIT_STATE_HALF_OPEN
    assert (message.in_flight, message.queued, message.max_concurrency) == (2, 5, 4)
    assert message.default
    assert [(o.state, o.count) for o in message.outcomes] == [
        (tasks_pb2.TASK_STATE_SUCCEEDED, 7),
        (tasks_pb2.TASK_STATE_FAILED, 2),
    ]
    assert message.usage.total_tokens == 2
    assert message.last_error == "model down"
    assert message.last_error_time.ToDatetime(UTC) == NOW


def test_a_healthy_agent_without_errors() -> None:
    status = AgentStatus(
        name="echo",
        description="",
        model="echo",
        tools=(),
        handoffs=(),
        max_concurrency=10,
        default=False,
        healthy=True,
        circuit_state="closed",
        in_flight=0,
        queued=0,
    )
    message = agent_to_proto(status)
    assert message.health == agents_pb2.AGENT_HEALTH_HEALTHY
    assert message.circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED
    assert not message.HasField("last_error_time")
    assert not message.outcomes
