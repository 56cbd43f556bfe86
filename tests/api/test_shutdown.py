"""A server stopped while Execute calls wait: their tasks are requeued, then run."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.conftest import ServerFactory
from tests.scripted_model import ScriptedModel, scripted_runtimes


async def test_stop_requeues_the_task_of_an_in_flight_execute(
    server_factory: ServerFactory,
) -> None:
    model = ScriptedModel()
    gate = model.hold("slow report")
    first = await server_factory(
        runtimes=scripted_runtimes(model), server={"grace_period": timedelta(seconds=0.2)}
    )
    async with grpc.aio.insecure_channel(first.address) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        call = stub.Execute(tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="slow report")))
        await model.wait_started()
        await first.app.stop()
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await call
        assert cut.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

    gate.set()
    second = await server_factory(
        runtimes=scripted_runtimes(model), database_url=first.settings.database_url
    )
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        (task,) = (await stub.ListTasks(tasks_pb2.ListTasksRequest())).tasks
        events = [
            response.event
            async for response in stub.WatchTask(tasks_pb2.WatchTaskRequest(task_id=task.id))
        ]
    states = [e.state_changed.state for e in events if e.HasField("state_changed")]
    assert states == [
        tasks_pb2.TASK_STATE_QUEUED,
        tasks_pb2.TASK_STATE_RUNNING,
        tasks_pb2.TASK_STATE_QUEUED,
        tasks_pb2.TASK_STATE_RUNNING,
        tasks_pb2.TASK_STATE_SUCCEEDED,
    ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
