"""Server settings for meshes: aged connections are closed, and watchers resume."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from switchboard.client import AsyncClient, RetryPolicy
from switchboard.server.config import ServerConfig
from switchboard.v1 import tasks_pb2
from tests.conftest import ServerFactory
from tests.scripted_model import ScriptedModel, scripted_runtimes


def test_the_settings_become_grpc_options() -> None:
    options = dict(ServerConfig().grpc_options())
    assert options["grpc.so_reuseport"] == 0
    assert options["grpc.max_concurrent_streams"] == 1000
    assert options["grpc.keepalive_time_ms"] == 120_000
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 10_000
    assert "grpc.max_connection_age_ms" not in options  # off unless asked for
    aged = dict(
        ServerConfig(
            max_connection_age=timedelta(minutes=30), max_connection_age_grace=timedelta(minutes=1)
        ).grpc_options()
    )
    assert (aged["grpc.max_connection_age_ms"], aged["grpc.max_connection_age_grace_ms"]) == (
        1_800_000,
        60_000,
    )


async def test_a_watch_cut_by_connection_age_resumes_without_gap(
    server_factory: ServerFactory,
) -> None:
    model = ScriptedModel()
    gate = model.hold("outlives its connection")
    server = await server_factory(
        runtimes=scripted_runtimes(model),
        server={
            "grace_period": timedelta(seconds=2),
            "max_connection_age": timedelta(milliseconds=300),
            "max_connection_age_grace": timedelta(milliseconds=300),
        },
    )
    handled = server.app.parts.metrics.registry.get_sample_value
    labels = {"grpc_type": "server_stream", "grpc_service": "switchboard.v1.TaskService"}
    started = {**labels, "grpc_method": "WatchTask"}
    retry = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
    async with AsyncClient(server.address, watch_retry=retry) as client:
        task = await client.submit("outlives its connection")
        events: list[tasks_pb2.TaskEvent] = []

        async def watch() -> None:
            async for event in client.watch(task.id):
                events.append(event)

        watching = asyncio.create_task(watch())
        await model.wait_started()
        # Wait until the aged connection cut the stream and the client came back: the
        # server's own counter of WatchTask calls is the only witness (bounded poll).
        async with asyncio.timeout(30):
            while (handled("grpc_server_started_total", started) or 0) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        gate.set()
        await asyncio.wait_for(watching, 30)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_SUCCEEDED
