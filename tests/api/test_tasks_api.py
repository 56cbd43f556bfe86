"""TaskService and AgentService end to end through a real server and channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from switchboard.v1 import agents_pb2, agents_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.api.statuses import detail, failure
from tests.conftest import RunningServer

Spec = tasks_pb2.TaskSpec


@pytest.fixture
async def channel(running_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(running_server.address) as channel:
        yield channel


@pytest.fixture
def tasks(channel: grpc.aio.Channel) -> tasks_pb2_grpc.TaskServiceStub:
    return tasks_pb2_grpc.TaskServiceStub(channel)


@pytest.fixture
def agents(channel: grpc.aio.Channel) -> agents_pb2_grpc.AgentServiceStub:
    return agents_pb2_grpc.AgentServiceStub(channel)


async def _all_tasks(tasks: Any) -> list[tasks_pb2.Task]:
    return list((await tasks.ListTasks(tasks_pb2.ListTasksRequest(page_size=1000))).tasks)


async def _violations(call: Any, *, streaming: bool = False) -> list[str]:
    """The field paths an INVALID_ARGUMENT call names."""
    _, status = await failure(call, streaming=streaming)
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT, status.message
    bad_request = detail(status, error_details_pb2.BadRequest)
    return [violation.field for violation in bad_request.field_violations]


# -- happy paths -------------------------------------------------------------------------


async def test_execute_runs_a_task_to_its_end(tasks: Any) -> None:
    response = await tasks.Execute(
        tasks_pb2.ExecuteRequest(task=Spec(input="hello there")), timeout=30
    )
    task = response.task
    assert task.id
    assert task.state == tasks_pb2.TASK_STATE_SUCCEEDED
    assert "hello there" in task.output_text
    assert task.agent == task.spec.agent == "assistant"
    assert task.spec.priority == tasks_pb2.TASK_PRIORITY_MEDIUM
    assert task.spec.timeout.ToTimedelta() == timedelta(seconds=30)
    assert task.attempts == 1
    assert task.usage.total_tokens > 0
    assert task.create_time.ToDatetime() <= task.start_time.ToDatetime()
    assert task.start_time.ToDatetime() <= task.end_time.ToDatetime()
    assert task.last_sequence > 0
    assert not task.HasField("error")
    assert (await tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id))).task == task
    assert [listed.id for listed in await _all_tasks(tasks)] == [task.id]


async def test_execute_on_the_echo_agent_with_a_request_id(tasks: Any) -> None:
    request = tasks_pb2.ExecuteRequest(
        task=Spec(
            input="same again",
            agent="echo",
            priority=tasks_pb2.TASK_PRIORITY_HIGH,
            metadata={"team": "a"},
            timeout=duration_pb2.Duration(seconds=5),
        ),
        request_id="req-1",
    )
    first = (await tasks.Execute(request)).task  # a call without a deadline
    assert first.output_text == "same again"
    assert first.request_id == "req-1"
    assert first.spec.priority == tasks_pb2.TASK_PRIORITY_HIGH
    assert dict(first.spec.metadata) == {"team": "a"}
    assert first.spec.timeout.ToTimedelta() == timedelta(seconds=5)
    again = (await tasks.Execute(request, timeout=30)).task
    assert again.id == first.id
    assert len(await _all_tasks(tasks)) == 1


async def test_submit_then_watch_streams_every_event(tasks: Any) -> None:
    submitted = (
        await tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=Spec(input="watch me")))
    ).task
    assert submitted.state in (tasks_pb2.TASK_STATE_QUEUED, tasks_pb2.TASK_STATE_RUNNING)
    events = [
        response.event
        async for response in tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=submitted.id))
    ]
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert all(event.task_id == submitted.id for event in events)
    assert events[0].state_changed.state == tasks_pb2.TASK_STATE_QUEUED
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_SUCCEEDED
    kinds = {event.WhichOneof("payload") for event in events}
    assert {"state_changed", "output_delta", "usage"} <= kinds
    final = (await tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=submitted.id))).task
    streamed = "".join(e.output_delta.text for e in events if e.HasField("output_delta"))
    assert streamed == final.output_text
    assert final.last_sequence == events[-1].sequence

    resumed = [
        response.event.sequence
        async for response in tasks.WatchTask(
            tasks_pb2.WatchTaskRequest(task_id=submitted.id, after_sequence=2)
        )
    ]
    assert resumed == list(range(3, len(events) + 1))


async def test_batch_execute_streams_one_result_per_task(tasks: Any) -> None:
    request = tasks_pb2.BatchExecuteRequest(
        requests=[
            tasks_pb2.ExecuteRequest(task=Spec(input=f"item {index}", agent="echo"))
            for index in range(3)
        ]
    )
    results = [response async for response in tasks.BatchExecute(request, timeout=30)]
    assert sorted(result.index for result in results) == [0, 1, 2]
    for result in results:
        assert result.task.state == tasks_pb2.TASK_STATE_SUCCEEDED
        assert result.task.output_text == f"item {result.index}"


async def test_cancel_of_a_finished_task_returns_it_as_it_ended(tasks: Any) -> None:
    done = (await tasks.Execute(tasks_pb2.ExecuteRequest(task=Spec(input="x")), timeout=30)).task
    cancelled = (await tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=done.id))).task
    assert cancelled == done


async def test_list_tasks_pages_newest_first_and_filters(tasks: Any) -> None:
    ids = []
    for index in range(3):
        request = tasks_pb2.ExecuteRequest(task=Spec(input=str(index), agent="echo"))
        ids.append((await tasks.Execute(request, timeout=30)).task.id)
    first = await tasks.ListTasks(tasks_pb2.ListTasksRequest(page_size=2))
    assert [task.id for task in first.tasks] == ids[::-1][:2]
    second = await tasks.ListTasks(
        tasks_pb2.ListTasksRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [task.id for task in second.tasks] == ids[:1]
    assert second.next_page_token == ""
    by_state = await tasks.ListTasks(tasks_pb2.ListTasksRequest(state=tasks_pb2.TASK_STATE_FAILED))
    assert list(by_state.tasks) == []
    by_agent = await tasks.ListTasks(tasks_pb2.ListTasksRequest(agent="echo"))
    assert len(by_agent.tasks) == 3


async def test_agents_are_listed_default_first(agents: Any) -> None:
    listed = (await agents.ListAgents(agents_pb2.ListAgentsRequest())).agents
    assert [agent.id for agent in listed] == ["assistant", "echo"]
    assert [agent.default for agent in listed] == [True, False]
    echo = (await agents.GetAgent(agents_pb2.GetAgentRequest(agent_id="echo"))).agent
    assert echo.model == "echo"
    assert echo.health == agents_pb2.AGENT_HEALTH_HEALTHY
    assert echo.max_concurrency == 10


# -- bad input -------------------------------------------------------------------------


def _many(count: int) -> list[tasks_pb2.Tool]:
    return [tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_WEB_SEARCH)] * count


BAD_SPECS = {
    "empty input": (Spec(), "task.input"),
    "blank input": (Spec(input="   "), "task.input"),
    "input too long": (Spec(input="x" * 10_001), "task.input"),
    "instructions too long": (Spec(input="x", instructions="y" * 5_001), "task.instructions"),
    "too many tools": (Spec(input="x", tools=_many(11)), "task.tools"),
    "function tool without a name": (
        Spec(input="x", tools=[tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION)]),
        "task.tools[0].name",
    ),
    "unset tool type": (Spec(input="x", tools=[tasks_pb2.Tool()]), "task.tools[0].type"),
    "timeout too short": (
        Spec(input="x", timeout=duration_pb2.Duration(nanos=500_000_000)),
        "task.timeout",
    ),
    "timeout too long": (
        Spec(input="x", timeout=duration_pb2.Duration(seconds=301)),
        "task.timeout",
    ),
    "negative timeout": (
        Spec(input="x", timeout=duration_pb2.Duration(seconds=-1)),
        "task.timeout",
    ),
    "unknown priority": (Spec(input="x", priority=4), "task.priority"),
    "unknown agent": (Spec(input="x", agent="nobody"), "task.agent"),
    "too much metadata": (
        Spec(input="x", metadata={f"k{i}": "v" for i in range(33)}),
        "task.metadata",
    ),
}


@pytest.mark.parametrize(("spec", "field"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
@pytest.mark.parametrize("rpc", ["Execute", "SubmitTask"])
async def test_bad_input_is_rejected_and_nothing_stored(
    tasks: Any, rpc: str, spec: tasks_pb2.TaskSpec, field: str
) -> None:
    request_type = tasks_pb2.ExecuteRequest if rpc == "Execute" else tasks_pb2.SubmitTaskRequest
    call = getattr(tasks, rpc)(request_type(task=spec), timeout=30)
    assert field in await _violations(call)
    assert await _all_tasks(tasks) == []


async def test_an_overlong_request_id_is_rejected(tasks: Any) -> None:
    call = tasks.Execute(tasks_pb2.ExecuteRequest(task=Spec(input="x"), request_id="r" * 129))
    assert await _violations(call) == ["request_id"]
    assert await _all_tasks(tasks) == []


async def test_every_problem_of_a_request_is_listed(tasks: Any) -> None:
    # What the message itself carries wrong is judged first, then the service's limits.
    malformed = Spec(
        priority=9, tools=[tasks_pb2.Tool()], timeout=duration_pb2.Duration(seconds=-1)
    )
    fields = await _violations(tasks.Execute(tasks_pb2.ExecuteRequest(task=malformed)))
    assert set(fields) == {"task.priority", "task.tools[0].type", "task.timeout"}
    beyond_limits = Spec(instructions="y" * 5_001, agent="nobody")
    fields = await _violations(tasks.Execute(tasks_pb2.ExecuteRequest(task=beyond_limits)))
    assert set(fields) == {"task.input", "task.instructions", "task.agent"}


@pytest.mark.parametrize("size", [0, 101])
async def test_a_batch_of_the_wrong_size_is_rejected(tasks: Any, size: int) -> None:
    item = tasks_pb2.ExecuteRequest(task=Spec(input="x", agent="echo"))
    call = tasks.BatchExecute(tasks_pb2.BatchExecuteRequest(requests=[item] * size))
    assert await _violations(call, streaming=True) == ["requests"]
    assert await _all_tasks(tasks) == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Spec(input=""), "requests[2].task.input"),
        (Spec(input="x", priority=8), "requests[2].task.priority"),
        (Spec(input="x", agent="nobody"), "requests[2].task.agent"),
    ],
)
async def test_one_bad_item_rejects_the_whole_batch(
    tasks: Any, bad: tasks_pb2.TaskSpec, field: str
) -> None:
    good = tasks_pb2.ExecuteRequest(task=Spec(input="x", agent="echo"))
    items = [good, good, tasks_pb2.ExecuteRequest(task=bad), good]
    call = tasks.BatchExecute(tasks_pb2.BatchExecuteRequest(requests=items))
    assert await _violations(call, streaming=True) == [field]
    assert await _all_tasks(tasks) == []


@pytest.mark.parametrize("rpc", ["GetTask", "CancelTask", "WatchTask"])
async def test_an_unknown_task_is_not_found(tasks: Any, rpc: str) -> None:
    request_type = {
        "GetTask": tasks_pb2.GetTaskRequest,
        "CancelTask": tasks_pb2.CancelTaskRequest,
        "WatchTask": tasks_pb2.WatchTaskRequest,
    }[rpc]
    call = getattr(tasks, rpc)(request_type(task_id="no-such-task"))
    _, status = await failure(call, streaming=rpc == "WatchTask")
    assert await call.code() == grpc.StatusCode.NOT_FOUND
    info = detail(status, error_details_pb2.ErrorInfo)
    assert info.reason == "TASK_NOT_FOUND"
    assert dict(info.metadata) == {"kind": "task", "name": "no-such-task"}


async def test_an_empty_task_id_is_invalid(tasks: Any) -> None:
    assert await _violations(tasks.GetTask(tasks_pb2.GetTaskRequest())) == ["task_id"]


async def test_a_negative_after_sequence_is_invalid(tasks: Any) -> None:
    call = tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id="t", after_sequence=-1))
    assert await _violations(call, streaming=True) == ["after_sequence"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_token": "not a token"}, "page_token"),
        ({"page_token": "eyJ2IjoxfQ"}, "page_token"),  # base64 JSON of the wrong shape
        ({"page_size": -1}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"state": 99}, "state"),
    ],
)
async def test_bad_list_requests_are_invalid(
    tasks: Any, request_fields: dict[str, Any], field: str
) -> None:
    call = tasks.ListTasks(tasks_pb2.ListTasksRequest(**request_fields))
    assert await _violations(call) == [field]


async def test_a_page_token_is_bound_to_its_filter(tasks: Any) -> None:
    for index in range(2):
        request = tasks_pb2.ExecuteRequest(task=Spec(input=str(index), agent="echo"))
        await tasks.Execute(request, timeout=30)
    page = await tasks.ListTasks(tasks_pb2.ListTasksRequest(page_size=1))
    call = tasks.ListTasks(
        tasks_pb2.ListTasksRequest(page_size=1, agent="echo", page_token=page.next_page_token)
    )
    assert await _violations(call) == ["page_token"]


async def test_an_unknown_agent_is_not_found(agents: Any) -> None:
    call = agents.GetAgent(agents_pb2.GetAgentRequest(agent_id="nobody"))
    _, status = await failure(call)
    assert await call.code() == grpc.StatusCode.NOT_FOUND
    assert detail(status, error_details_pb2.ErrorInfo).reason == "AGENT_NOT_FOUND"


async def test_an_oversized_message_is_refused_by_grpc(tasks: Any) -> None:
    huge = tasks_pb2.ExecuteRequest(task=Spec(input="x" * (5 * 1024 * 1024)))
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await tasks.Execute(huge, timeout=30)
    assert excinfo.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await _all_tasks(tasks) == []
