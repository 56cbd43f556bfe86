"""Request building shared by both clients: what reaches the wire for each argument."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.client import TaskOptions
from switchboard.client._requests import batch_request, list_request, task_spec
from switchboard.v1 import tasks_pb2


def test_options_fill_the_spec() -> None:
    options = TaskOptions(
        instructions="be brief",
        agent="echo",
        tools=[
            "web_search",
            "file_search",
            "lookup",
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name="raw"),
        ],
        labels={"team": "qa"},
        priority="HIGH",
        task_timeout=1.5,
        no_cache=True,
    )
    spec = task_spec("hello", options)
    assert spec == tasks_pb2.TaskSpec(
        input="hello",
        instructions="be brief",
        agent="echo",
        tools=[
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_WEB_SEARCH),
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FILE_SEARCH),
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name="lookup"),
            tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name="raw"),
        ],
        metadata={"team": "qa"},
        priority=tasks_pb2.TASK_PRIORITY_HIGH,
        timeout=timedelta(seconds=1.5),
        no_cache=True,
    )


def test_options_override_a_given_spec_without_changing_it() -> None:
    given = tasks_pb2.TaskSpec(
        input="x",
        agent="assistant",
        tools=[tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_WEB_SEARCH)],
        metadata={"a": "1"},
    )
    spec = task_spec(
        given,
        TaskOptions(agent="echo", tools=[], labels={"b": "2"}, task_timeout=timedelta(seconds=3)),
    )
    assert (spec.agent, list(spec.tools), dict(spec.metadata)) == ("echo", [], {"a": "1", "b": "2"})
    assert spec.timeout.ToTimedelta() == timedelta(seconds=3)
    assert given.agent == "assistant"
    assert len(given.tools) == 1
    assert task_spec(given, TaskOptions()) == given
    cached = tasks_pb2.TaskSpec(input="x", no_cache=True)
    assert not task_spec(cached, TaskOptions(no_cache=False)).no_cache


@pytest.mark.parametrize("name", ["low", "LOW", " Low ", "TASK_PRIORITY_LOW", "task_priority_low"])
def test_priority_names(name: str) -> None:
    assert task_spec("x", TaskOptions(priority=name)).priority == tasks_pb2.TASK_PRIORITY_LOW


def test_numbers_pass_through_for_the_server_to_judge() -> None:
    assert task_spec("x", TaskOptions(priority=7)).priority == 7
    assert list_request(9, "", 0, "").state == 9


@pytest.mark.parametrize("bad", ["", "urgent", "TASK_STATE_LOW"])
def test_unknown_priority_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not one of: low, medium, high"):
        task_spec("x", TaskOptions(priority=bad))


def test_list_and_batch_requests() -> None:
    assert list_request("timed_out", "echo", 5, "tok") == tasks_pb2.ListTasksRequest(
        state=tasks_pb2.TASK_STATE_TIMED_OUT, agent="echo", page_size=5, page_token="tok"
    )
    assert list_request(None, "", 0, "") == tasks_pb2.ListTasksRequest()
    with pytest.raises(ValueError, match="queued, running, succeeded"):
        list_request("done", "", 0, "")
    request = batch_request(
        [
            "a",
            tasks_pb2.TaskSpec(input="b"),
            tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="c"), request_id="r"),
        ],
        TaskOptions(agent="echo"),
    )
    assert [(r.task.input, r.task.agent, r.request_id) for r in request.requests] == [
        ("a", "echo", ""),
        ("b", "echo", ""),
        ("c", "echo", "r"),
    ]


def test_misspelt_options_are_refused() -> None:
    with pytest.raises(TypeError, match="agnet, timeout"):
        task_spec("x", {"agnet": "echo", "timeout": 3})  # type: ignore[typeddict-unknown-key]
