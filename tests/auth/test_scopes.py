"""Each method needs its scope; admin passes everywhere (through the real API)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from switchboard.server.auth.permissions import SCOPES
from switchboard.v1 import agents_pb2, tasks_pb2
from tests.api.statuses import detail
from tests.auth.api_server import AGENT_SERVICE, TASK_SERVICE, Api, As, serve_api
from tests.auth.tokens import hs_config

EVERY = {"tasks:read", "tasks:write", "agents:read"}
SPEC = tasks_pb2.TaskSpec(input="hi")

# method -> (stub attribute, request, streaming)
CALLS: dict[str, tuple[str, Callable[[], Any], bool]] = {
    "Execute": ("tasks", lambda: tasks_pb2.ExecuteRequest(task=SPEC), False),
    "BatchExecute": (
        "tasks",
        lambda: tasks_pb2.BatchExecuteRequest(requests=[tasks_pb2.ExecuteRequest(task=SPEC)]),
        True,
    ),
    "SubmitTask": ("tasks", lambda: tasks_pb2.SubmitTaskRequest(task=SPEC), False),
    "CancelTask": ("tasks", lambda: tasks_pb2.CancelTaskRequest(task_id="nope"), False),
    "GetTask": ("tasks", lambda: tasks_pb2.GetTaskRequest(task_id="nope"), False),
    "ListTasks": ("tasks", tasks_pb2.ListTasksRequest, False),
    "WatchTask": ("tasks", lambda: tasks_pb2.WatchTaskRequest(task_id="nope"), True),
    "ListAgents": ("agents", agents_pb2.ListAgentsRequest, False),
    "GetAgent": ("agents", lambda: agents_pb2.GetAgentRequest(agent_id="assistant"), False),
}


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with serve_api(sqlite_url, hs_config()) as served:
        yield served


async def _code(caller: As, method: str) -> tuple[grpc.StatusCode, Any]:
    """The call's status code, and its google.rpc.Status when it failed."""
    stub, request, streaming = CALLS[method]
    call = getattr(getattr(caller, stub), method)(request())
    try:
        if streaming:
            [_ async for _ in call]
        else:
            await call
    except grpc.aio.AioRpcError:
        return await call.code(), await rpc_status.aio.from_call(call)
    return await call.code(), None


def test_every_method_of_the_services_has_a_scope() -> None:
    served = {
        f"/{service.full_name}/{method.name}"
        for module in (tasks_pb2, agents_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if service.full_name in (TASK_SERVICE, AGENT_SERVICE)
    }
    assert set(SCOPES) == served


@pytest.mark.parametrize("method", CALLS)
async def test_each_method_needs_its_scope(api: Api, method: str) -> None:
    service = AGENT_SERVICE if CALLS[method][0] == "agents" else TASK_SERVICE
    needed = SCOPES[f"/{service}/{method}"]
    lacking = As(api, scope=" ".join(sorted(EVERY - {needed})))
    code, status = await _code(lacking, method)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    info = detail(status, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("MISSING_SCOPE", {"scope": needed})
    assert needed in status.message
    for allowed in (As(api, scope=needed), As(api, scope="admin")):
        code, _ = await _code(allowed, method)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)


async def test_no_scopes_at_all_is_permission_denied_not_unauthenticated(api: Api) -> None:
    code, _ = await _code(As(api, scope=None), "ListAgents")
    assert code == grpc.StatusCode.PERMISSION_DENIED
