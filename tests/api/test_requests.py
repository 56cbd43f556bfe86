"""Requests into domain terms: defaults, round trips, and what a message can carry wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf import duration_pb2

from switchboard.server.api.requests import new_batch, new_task, state_filter
from switchboard.server.api.resources import spec_to_proto
from switchboard.server.domain import (
    FieldViolation,
    InvalidArgument,
    Priority,
    TaskSpec,
    TaskState,
    ToolKind,
    ToolRef,
)
from switchboard.v1 import tasks_pb2


def _violations(excinfo: pytest.ExceptionInfo[InvalidArgument]) -> list[FieldViolation]:
    return excinfo.value.violations


def test_an_empty_spec_gets_the_defaults() -> None:
    new = new_task(tasks_pb2.ExecuteRequest())
    assert new.spec == TaskSpec(input="")
    assert new.spec.priority is Priority.MEDIUM
    assert new.spec.timeout is None
    assert new.request_id == ""


def test_every_field_is_read() -> None:
    spec = tasks_pb2.TaskSpec(
        input="hi",
        instructions="be brief",
        agent="echo",
        tools=[
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name="lookup"),
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_WEB_SEARCH),
        ],
        metadata={"team": "a"},
        priority=tasks_pb2.TASK_PRIORITY_HIGH,
        timeout=duration_pb2.Duration(seconds=12, nanos=500_000_000),
        no_cache=True,
    )
    new = new_task(tasks_pb2.SubmitTaskRequest(task=spec, request_id="r-1"))
    assert new.request_id == "r-1"
    assert new.spec == TaskSpec(
        input="hi",
        instructions="be brief",
        agent="echo",
        tools=(ToolRef(ToolKind.FUNCTION, "lookup"), ToolRef(ToolKind.WEB_SEARCH)),
        metadata={"team": "a"},
        priority=Priority.HIGH,
        timeout=timedelta(seconds=12.5),
        no_cache=True,
    )


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(input="x"),
        TaskSpec(
            input="x" * 10_000,
            instructions="é" * 5_000,
            agent="assistant",
            tools=tuple(ToolRef(kind) for kind in ToolKind),
            metadata={"k": "v", "other": ""},
            priority=Priority.LOW,
            timeout=timedelta(seconds=300),
            no_cache=True,
        ),
        TaskSpec(input="x", priority=Priority.HIGH, timeout=timedelta(milliseconds=1500)),
    ],
)
def test_a_spec_survives_the_round_trip(spec: TaskSpec) -> None:
    assert new_task(tasks_pb2.ExecuteRequest(task=spec_to_proto(spec))).spec == spec


def test_an_unknown_priority_is_a_violation() -> None:
    request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="x", priority=42))
    with pytest.raises(InvalidArgument) as excinfo:
        new_task(request)
    [violation] = _violations(excinfo)
    assert violation.field == "task.priority"
    assert "unknown value 42" in violation.description
    assert "TASK_PRIORITY_HIGH" in violation.description


@pytest.mark.parametrize(("number", "problem"), [(0, "must be set"), (9, "unknown value 9")])
def test_a_tool_without_a_known_type_is_a_violation(number: int, problem: str) -> None:
    tools = [
        tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name="f"),
        tasks_pb2.Tool(type=number),
    ]
    request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="x", tools=tools))
    with pytest.raises(InvalidArgument) as excinfo:
        new_task(request)
    [violation] = _violations(excinfo)
    assert violation.field == "task.tools[1].type"
    assert violation.description.startswith(problem)


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        (duration_pb2.Duration(seconds=-5), "must not be negative"),
        (duration_pb2.Duration(seconds=0, nanos=-1), "must not be negative"),
        (duration_pb2.Duration(seconds=1, nanos=1_000_000_000), "nanos must be below"),
        (duration_pb2.Duration(seconds=400_000_000_000), "beyond the range"),
    ],
)
def test_a_malformed_timeout_is_a_violation(duration: duration_pb2.Duration, problem: str) -> None:
    request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="x", timeout=duration))
    with pytest.raises(InvalidArgument) as excinfo:
        new_task(request)
    [violation] = _violations(excinfo)
    assert violation.field == "task.timeout"
    assert problem in violation.description


def test_a_zero_timeout_is_read_for_the_limits_to_judge() -> None:
    request = tasks_pb2.ExecuteRequest(
        task=tasks_pb2.TaskSpec(input="x", timeout=duration_pb2.Duration())
    )
    assert new_task(request).spec.timeout == timedelta(0)


def test_every_violation_of_a_request_is_reported_at_once() -> None:
    spec = tasks_pb2.TaskSpec(
        priority=7, tools=[tasks_pb2.Tool()], timeout=duration_pb2.Duration(seconds=-1)
    )
    with pytest.raises(InvalidArgument) as excinfo:
        new_task(tasks_pb2.ExecuteRequest(task=spec))
    assert [v.field for v in _violations(excinfo)] == [
        "task.tools[0].type",
        "task.priority",
        "task.timeout",
    ]


def test_a_batch_is_read_in_order() -> None:
    request = tasks_pb2.BatchExecuteRequest(
        requests=[
            tasks_pb2.ExecuteRequest(
                task=tasks_pb2.TaskSpec(input=str(index)), request_id=f"r{index}"
            )
            for index in range(3)
        ]
    )
    batch = new_batch(request)
    assert [(new.spec.input, new.request_id) for new in batch] == [
        ("0", "r0"),
        ("1", "r1"),
        ("2", "r2"),
    ]


def test_bad_batch_items_are_named_by_index() -> None:
    good = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="ok"))
    bad_timeout = tasks_pb2.ExecuteRequest(
        task=tasks_pb2.TaskSpec(input="x", timeout=duration_pb2.Duration(seconds=-1))
    )
    bad_priority = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="x", priority=5))
    request = tasks_pb2.BatchExecuteRequest(
        requests=[good, good, good, bad_timeout, good, bad_priority]
    )
    with pytest.raises(InvalidArgument) as excinfo:
        new_batch(request)
    assert [v.field for v in _violations(excinfo)] == [
        "requests[3].task.timeout",
        "requests[5].task.priority",
    ]


def test_an_empty_batch_is_left_for_the_limits_to_judge() -> None:
    assert new_batch(tasks_pb2.BatchExecuteRequest()) == []


def test_the_state_filter() -> None:
    assert state_filter(tasks_pb2.ListTasksRequest()) is None
    for number, state in [
        (tasks_pb2.TASK_STATE_QUEUED, TaskState.QUEUED),
        (tasks_pb2.TASK_STATE_TIMED_OUT, TaskState.TIMED_OUT),
    ]:
        assert state_filter(tasks_pb2.ListTasksRequest(state=number)) is state
    with pytest.raises(InvalidArgument) as excinfo:
        state_filter(tasks_pb2.ListTasksRequest(state=77))
    assert [v.field for v in _violations(excinfo)] == ["state"]
