"""Deadlines and cancellation through real gRPC calls, on a model the test steers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.conftest import ServerFactory
from tests.scripted_model import ScriptedModel, scripted_runtimes


@dataclass
class Steered:
    stub: tasks_pb2_grpc.TaskServiceStub
    model: ScriptedModel


@pytest.fixture
async def steered(server_factory: ServerFactory) -> AsyncIterator[Steered]:
    model = ScriptedModel()
    server = await server_factory(runtimes=scripted_runtimes(model))
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield Steered(tasks_pb2_grpc.TaskServiceStub(channel), model)


def _spec(text: str, **fields: object) -> tasks_pb2.TaskSpec:
    return tasks_pb2.TaskSpec(input=text, **fields)  # type: ignore[arg-type]


async def _only_task(stub: tasks_pb2_grpc.TaskServiceStub) -> tasks_pb2.Task:
    (task,) = (await stub.ListTasks(tasks_pb2.ListTasksRequest())).tasks
    return task


async def _final(stub: tasks_pb2_grpc.TaskServiceStub, task_id: str) -> list[tasks_pb2.TaskEvent]:
    request = tasks_pb2.WatchTaskRequest(task_id=task_id)
    return [response.event async for response in stub.WatchTask(request)]


async def test_a_call_deadline_shorter_than_the_timeout_returns_the_timed_out_task(
    steered: Steered,
) -> None:
    steered.model.hold("slow")
    response = await steered.stub.Execute(tasks_pb2.ExecuteRequest(task=_spec("slow")), timeout=1.0)
    assert response.task.state == tasks_pb2.TASK_STATE_TIMED_OUT
    assert response.task.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


async def test_the_task_timeout_ends_an_execute_timed_out(steered: Steered) -> None:
    steered.model.hold("slow")
    spec = _spec("slow")
    spec.timeout.FromSeconds(1)
    response = await steered.stub.Execute(tasks_pb2.ExecuteRequest(task=spec))
    assert response.task.state == tasks_pb2.TASK_STATE_TIMED_OUT
    assert await steered.model.closed.get() == "slow"


async def test_cancelling_an_execute_call_cancels_its_task(steered: Steered) -> None:
    steered.model.hold("abandoned")
    call = steered.stub.Execute(tasks_pb2.ExecuteRequest(task=_spec("abandoned")))
    await steered.model.wait_started()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    task = await _only_task(steered.stub)
    events = await _final(steered.stub, task.id)
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_CANCELLED
    assert "caller went away" in events[-1].state_changed.reason
    assert await steered.model.closed.get() == "abandoned"


async def test_cancel_task_stops_a_running_task_and_watchers_see_it_end(
    steered: Steered,
) -> None:
    steered.model.hold("long")
    submitted = await steered.stub.SubmitTask(tasks_pb2.SubmitTaskRequest(task=_spec("long")))
    await steered.model.wait_started()
    watching = asyncio.create_task(_final(steered.stub, submitted.task.id))
    cancelled = await steered.stub.CancelTask(
        tasks_pb2.CancelTaskRequest(task_id=submitted.task.id)
    )
    assert cancelled.task.state == tasks_pb2.TASK_STATE_CANCELLED
    assert cancelled.task.error.code == grpc.StatusCode.CANCELLED.value[0]
    events = await watching
    assert [e.sequence for e in events] == list(range(1, cancelled.task.last_sequence + 1))
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_CANCELLED
    again = await steered.stub.CancelTask(tasks_pb2.CancelTaskRequest(task_id=submitted.task.id))
    assert again.task == cancelled.task


async def test_cancelling_a_batch_cancels_its_unfinished_tasks(steered: Steered) -> None:
    steered.model.hold("stuck")
    request = tasks_pb2.BatchExecuteRequest(
        requests=[tasks_pb2.ExecuteRequest(task=_spec(text)) for text in ("quick", "stuck")]
    )
    call = steered.stub.BatchExecute(request)
    first = await call.read()
    assert first.index == 0
    assert first.task.state == tasks_pb2.TASK_STATE_SUCCEEDED
    call.cancel()
    stuck = next(
        task
        for task in (await steered.stub.ListTasks(tasks_pb2.ListTasksRequest())).tasks
        if task.spec.input == "stuck"
    )
    events = await _final(steered.stub, stuck.id)
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_CANCELLED
