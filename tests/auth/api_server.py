"""The real TaskService and AgentService over a real orchestrator, behind errors -> auth.

Runs use a scripted model, so a test can hold a task RUNNING while others try to
reach it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from switchboard.server.api import AgentServicer, TaskServicer
from switchboard.server.auth import TokenVerifier
from switchboard.server.config import AuthConfig
from switchboard.server.events import InProcessBus
from switchboard.server.interceptors import AuthInterceptor, ErrorsInterceptor
from switchboard.server.orchestrator import Orchestrator
from switchboard.server.store import TaskStore
from switchboard.v1 import agents_pb2, agents_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.auth.tokens import bearer, mint
from tests.orchestrator.conftest import make_settings
from tests.scripted_model import ScriptedModel, scripted_runtimes

TASK_SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name
AGENT_SERVICE = agents_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


@dataclass
class Api:
    """Stubs of a running server, and the model its tasks run on."""

    address: str
    tasks: tasks_pb2_grpc.TaskServiceStub
    agents: agents_pb2_grpc.AgentServiceStub
    model: ScriptedModel


class As:
    """Calls made by one caller: ``As(api, sub="bob", scope="tasks:read").tasks.GetTask(...)``."""

    def __init__(self, api: Api, **claims: Any) -> None:
        self.metadata = bearer(mint(**claims))
        self.tasks = _Authorized(api.tasks, self.metadata)
        self.agents = _Authorized(api.agents, self.metadata)


class _Authorized:
    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        return lambda request, **kwargs: method(request, metadata=self._metadata, **kwargs)


@asynccontextmanager
async def serve_api(database_url: str, auth: AuthConfig) -> AsyncIterator[Api]:
    """Serve the API with ``auth`` on a fresh store; tear everything down after."""
    model = ScriptedModel()
    settings = make_settings(database_url, auth=auth)
    store = await TaskStore.open(settings.database_url, migrate=True)
    orchestrator = Orchestrator(settings, store, InProcessBus(), scripted_runtimes(model)(settings))
    await orchestrator.start()
    verifier = TokenVerifier(auth) if auth.mode == "jwt" else None
    server = grpc.aio.server(interceptors=[ErrorsInterceptor(), AuthInterceptor(verifier, auth)])
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(orchestrator), server)
    agents_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(orchestrator), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    reflection.enable_server_reflection(
        (TASK_SERVICE, AGENT_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            yield Api(
                address,
                tasks_pb2_grpc.TaskServiceStub(channel),
                agents_pb2_grpc.AgentServiceStub(channel),
                model,
            )
    finally:
        for gate in model.gates.values():
            gate.set()
        await server.stop(None)
        await orchestrator.stop(0)
        await store.close()
