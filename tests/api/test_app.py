"""The App: binding, health, reflection, start and stop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchboard.server.app import SERVICE_NAMES, App, BindError
from switchboard.server.config import Settings
from tests.conftest import RunningServer, ServerFactory

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _check(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def test_liveness_and_readiness_are_serving(running_server: RunningServer) -> None:
    assert SERVICE_NAMES == ("switchboard.v1.TaskService", "switchboard.v1.AgentService")
    async with grpc.aio.insecure_channel(running_server.address) as channel:
        for service in ("", *SERVICE_NAMES):
            assert await _check(channel, service) == SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await _check(channel, "switchboard.v1.NoSuchService")
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_and_describes_the_services(running_server: RunningServer) -> None:
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="switchboard.v1.TaskService"),
    ]
    async with grpc.aio.insecure_channel(running_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = [response async for response in stub.ServerReflectionInfo(iter(requests))]
    listed = {service.name for service in responses[0].list_services_response.service}
    assert listed == {
        "switchboard.v1.TaskService",
        "switchboard.v1.AgentService",
        "switchboard.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in responses[1].file_descriptor_response.file_descriptor_proto
    ]
    tasks_file = next(f for f in files if f.name == "switchboard/v1/tasks.proto")
    assert "Execute" in [method.name for method in tasks_file.service[0].method]


async def test_a_taken_port_is_a_clear_error_and_touches_nothing(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    first = await server_factory()
    second_database = tmp_path / "second.db"
    with pytest.raises(
        BindError, match=r"cannot listen on 127\.0\.0\.1:\d+: Address already in use"
    ):
        await server_factory(
            address=first.address, database_url=f"sqlite+aiosqlite:///{second_database}"
        )
    assert not second_database.exists()
    # The first server is undisturbed.
    async with grpc.aio.insecure_channel(first.address) as channel:
        assert await _check(channel, "") == SERVING


async def test_an_address_that_is_not_one_is_a_clear_error(server_factory: ServerFactory) -> None:
    with pytest.raises(BindError, match=r"cannot listen on no-such-host\.invalid:1"):
        await server_factory(address="no-such-host.invalid:1")


async def test_a_store_that_cannot_open_fails_the_start_and_holds_no_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = App(
        Settings(
            address=f"127.0.0.1:{port}",
            database_url=f"sqlite+aiosqlite:///{blocker / 'switchboard.db'}",
        )
    )
    with pytest.raises(FileExistsError):
        await app.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


async def test_stop_flips_readiness_then_ends_the_server(server_factory: ServerFactory) -> None:
    server = await server_factory()
    async with grpc.aio.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAMES[0])
        )
        assert (await watch.read()).status == SERVING
        stopping = asyncio.ensure_future(server.app.stop(5))
        assert (await watch.read()).status == NOT_SERVING
        watch.cancel()  # the last in-flight call: the server may now end
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            await _check(channel, "")
    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_app_starts_once_and_stops_twice_harmlessly(
    running_server: RunningServer,
) -> None:
    app = running_server.app
    assert app.port == int(running_server.address.rpartition(":")[2])
    with pytest.raises(RuntimeError, match="starts once"):
        await app.start()
    await app.stop(0)
    await app.stop(0)
    with pytest.raises(RuntimeError, match="has not started"):
        _ = app.orchestrator
