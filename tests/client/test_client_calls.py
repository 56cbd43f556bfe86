"""Every method of both clients against a real server (each test runs once per client)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.client import (
    TERMINAL_STATES,
    InvalidArgumentError,
    NotFoundError,
    is_terminal,
)
from switchboard.v1 import agents_pb2, tasks_pb2

from .conftest import Calls


async def test_execute_returns_the_finished_task(calls: Calls) -> None:
    task = await calls(
        "execute",
        "hello there",
        agent="assistant",
        instructions="be brief",
        priority="high",
        task_timeout=timedelta(seconds=20),
        labels={"team": "qa"},
        request_id="req-execute-1",
    )
    assert task.state == tasks_pb2.TASK_STATE_SUCCEEDED
    assert "hello there" in task.output_text
    assert task.agent == "assistant"
    assert task.spec.priority == tasks_pb2.TASK_PRIORITY_HIGH
    assert task.spec.timeout.ToTimedelta() == timedelta(seconds=20)
    assert dict(task.spec.metadata) == {"team": "qa"}
    assert task.usage.total_tokens > 0
    again = await calls("execute", "hello there", agent="assistant", request_id="req-execute-1")
    assert again.id == task.id


async def test_execute_accepts_a_spec_with_overrides(calls: Calls) -> None:
    spec = tasks_pb2.TaskSpec(input="from a spec", agent="assistant")
    task = await calls("execute", spec, agent="echo", task_timeout=5)
    assert task.output_text == "from a spec"
    assert task.spec.agent == "echo"
    assert task.spec.timeout.ToTimedelta() == timedelta(seconds=5)


async def test_batch_execute_yields_every_index_once(calls: Calls) -> None:
    items = [
        "one",
        tasks_pb2.TaskSpec(input="two"),
        tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="three"), request_id="req-batch-3"),
    ]
    results = await calls("batch_execute", items, agent="echo")
    by_index = dict(results)
    assert sorted(by_index) == [0, 1, 2]
    assert [by_index[i].output_text for i in range(3)] == ["one", "two", "three"]
    assert by_index[2].request_id == "req-batch-3"
    assert all(task.state == tasks_pb2.TASK_STATE_SUCCEEDED for task in by_index.values())


async def test_batch_with_one_bad_item_is_rejected_whole(calls: Calls) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await calls("batch_execute", ["fine", ""])
    assert ("requests[1].task.input", "must not be empty") in caught.value.field_violations
    assert await calls("list") == []


async def test_submit_then_watch_sees_every_event_once(calls: Calls) -> None:
    task = await calls("submit", "count my words please", agent="assistant")
    assert task.state in (tasks_pb2.TASK_STATE_QUEUED, tasks_pb2.TASK_STATE_RUNNING)
    events = await calls("watch", task.id)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert is_terminal(events[-1])
    assert not any(is_terminal(event) for event in events[:-1])
    text = "".join(e.output_delta.text for e in events if e.WhichOneof("payload") == "output_delta")
    finished = await calls("get", task.id)
    assert finished.output_text == text
    assert finished.last_sequence == events[-1].sequence


async def test_watch_after_a_sequence_and_after_the_end(calls: Calls) -> None:
    task = await calls("execute", "a b c d", agent="assistant")
    tail = await calls("watch", task.id, 3)
    assert [event.sequence for event in tail] == list(range(4, task.last_sequence + 1))
    assert await calls("watch", task.id, task.last_sequence) == []


async def test_list_iterates_every_page(calls: Calls) -> None:
    created = [(await calls("submit", f"task {i}", agent="echo")).id for i in range(5)]
    for task_id in created:
        await calls("watch", task_id)
    listed = await calls("list", page_size=2)
    assert [task.id for task in listed] == created[::-1]
    first = await calls("list_page", page_size=2)
    assert len(first.tasks) == 2
    assert first.next_page_token
    second = await calls("list_page", page_size=2, page_token=first.next_page_token)
    assert [t.id for t in (*first.tasks, *second.tasks)] == created[::-1][:4]


async def test_list_filters_by_state_and_agent(calls: Calls) -> None:
    echo = await calls("execute", "echoed", agent="echo")
    await calls("execute", "assisted", agent="assistant")
    assert [t.id for t in await calls("list", agent="echo")] == [echo.id]
    assert len(await calls("list", state="succeeded", page_size=1)) == 2
    assert await calls("list", state=tasks_pb2.TASK_STATE_FAILED) == []


async def test_cancel_returns_the_final_task_and_is_idempotent(calls: Calls) -> None:
    task = await calls("submit", "cancel me " * 50, agent="assistant")
    cancelled = await calls("cancel", task.id)
    assert cancelled.state in TERMINAL_STATES
    assert (await calls("cancel", task.id)).state == cancelled.state


async def test_agents(calls: Calls) -> None:
    agents = await calls("list_agents")
    assert [agent.id for agent in agents] == ["assistant", "echo"]
    assert agents[0].default
    echo = await calls("get_agent", "echo")
    assert echo.model == "echo"
    assert echo.health == agents_pb2.AGENT_HEALTH_HEALTHY


async def test_unknown_ids_raise_not_found(calls: Calls) -> None:
    for method in ("get", "cancel", "get_agent", "watch"):
        with pytest.raises(NotFoundError) as caught:
            await calls(method, "no-such-id")
        assert caught.value.domain == "switchboard.dev"
        assert caught.value.reason.endswith("_NOT_FOUND")


async def test_bad_input_raises_invalid_argument_with_field_violations(calls: Calls) -> None:
    for method in ("execute", "submit"):
        with pytest.raises(InvalidArgumentError) as caught:
            await calls(method, "")
        assert caught.value.field_violations == [("task.input", "must not be empty")]
        assert caught.value.reason == "INVALID_ARGUMENT"
    with pytest.raises(InvalidArgumentError) as caught:
        await calls("list_page", page_token="not-a-token")
    assert [field for field, _ in caught.value.field_violations] == ["page_token"]
    assert await calls("list") == []


async def test_bad_arguments_fail_before_any_call(calls: Calls) -> None:
    with pytest.raises(TypeError, match="agnet"):
        await calls("execute", "x", agnet="echo")
    with pytest.raises(ValueError, match="low, medium, high"):
        await calls("submit", "x", priority="urgent")
    with pytest.raises(ValueError, match="succeeded"):
        await calls("list", state="done")
