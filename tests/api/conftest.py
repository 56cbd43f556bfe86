"""Fixtures of the API tests: a fake OpenAI server, servers with configured agents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.v1 import agents_pb2_grpc, tasks_pb2_grpc
from tests.api.agent_servers import KEY, KEY_ENV, Served
from tests.conftest import ServerFactory
from tests.fakes import FakeOpenAI

Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI server on loopback with nothing scripted yet."""
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def serve(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Serve]:
    """Start a server running ``agents`` (the first is the default) and dial it.

    ``serve(agent(...), agent(...), **settings)``; the provider key is in ``KEY_ENV``.
    Channels close after the test, before the servers stop.
    """
    monkeypatch.setenv(KEY_ENV, KEY)
    channels: list[grpc.aio.Channel] = []

    async def start(*agents: dict[str, Any], **overrides: Any) -> Served:
        settings = {"agents": list(agents), "default_agent": agents[0]["name"], **overrides}
        server = await server_factory(**settings)
        channel = grpc.aio.insecure_channel(server.address)
        channels.append(channel)
        return Served(
            server,
            channel,
            tasks_pb2_grpc.TaskServiceStub(channel),
            agents_pb2_grpc.AgentServiceStub(channel),
        )

    yield start
    for channel in channels:
        await channel.close()
