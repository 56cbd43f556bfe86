"""The whole interceptor chain in the real App, with auth and rate limits on."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from switchboard.v1 import agents_pb2, agents_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.auth.tokens import bearer, hs_config, mint
from tests.conftest import RunningServer, ServerFactory


@pytest.fixture
async def secured(server_factory: ServerFactory) -> RunningServer:
    return await server_factory(
        auth=hs_config(),
        rate_limit={"write": {"rate": 0.001, "burst": 3}},
    )


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_calls_pass_the_chain_only_with_credentials_and_budget(
    secured: RunningServer,
) -> None:
    alice = bearer(mint(sub="alice"))
    async with grpc.aio.insecure_channel(secured.address) as channel:
        tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="hello", agent="echo"))

        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await tasks.Execute(request)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

        for _ in range(3):
            done = await tasks.Execute(request, metadata=alice)
            assert done.task.state == tasks_pb2.TASK_STATE_SUCCEEDED
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await tasks.Execute(request, metadata=alice)
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(limited.value.trailing_metadata() or ())
        assert int(trailers["retry-after"]) > 0
        status = rpc_status.from_call(limited.value)
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)

        # Reads have their own budget; another caller cannot see alice's tasks.
        mine = await tasks.ListTasks(tasks_pb2.ListTasksRequest(), metadata=alice)
        assert len(mine.tasks) == 3
        bob = bearer(mint(sub="bob"))
        theirs = await tasks.ListTasks(tasks_pb2.ListTasksRequest(), metadata=bob)
        assert list(theirs.tasks) == []

        agents = agents_pb2_grpc.AgentServiceStub(channel)
        listed = await agents.ListAgents(agents_pb2.ListAgentsRequest(), metadata=alice)
        assert {agent.id for agent in listed.agents} == {"assistant", "echo"}

    scraped = await asyncio.to_thread(_scrape, secured.app.metrics_port)
    labels = 'grpc_method="Execute",grpc_service="switchboard.v1.TaskService",grpc_type="unary"'
    for code, count in (("UNAUTHENTICATED", 1), ("OK", 3), ("RESOURCE_EXHAUSTED", 1)):
        line = f'grpc_server_handled_total{{grpc_code="{code}",{labels}}} {count}.0'
        assert line in scraped
    assert 'rate_limited_total{method_class="write"} 1.0' in scraped
    assert 'agent_tasks_total{status="succeeded"} 3.0' in scraped


async def test_health_watch_streams_through_the_chain_without_credentials(
    secured: RunningServer,
) -> None:
    async with grpc.aio.insecure_channel(secured.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="switchboard.v1.TaskService")
        watch = health.Watch(request)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await channel.unary_unary("/switchboard.v1.TaskService/NoSuchMethod")(b"")
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
