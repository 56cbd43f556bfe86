"""A server with redis_url streams task events through Redis."""

from __future__ import annotations

import grpc

from switchboard.server.events import RedisBus
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.conftest import ServerFactory


async def test_watch_through_the_redis_bus(
    server_factory: ServerFactory, redis_url: str, redis_prefix: str
) -> None:
    server = await server_factory(redis_url=redis_url, redis_prefix=redis_prefix)
    assert isinstance(server.app.parts.bus, RedisBus)
    async with grpc.aio.insecure_channel(server.address) as channel:
        tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        spec = tasks_pb2.TaskSpec(input="over redis " * 20, no_cache=True)
        submitted = await tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=spec))
        request = tasks_pb2.WatchTaskRequest(task_id=submitted.task.id)
        events = [response.event async for response in tasks.WatchTask(request)]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_SUCCEEDED
    registry = server.app.parts.metrics.registry
    assert registry.get_sample_value("event_bus_degraded") == 0
