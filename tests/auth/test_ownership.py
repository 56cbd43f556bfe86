"""Tasks belong to their caller: through the real API, nobody else can reach them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from switchboard.v1 import tasks_pb2
from tests.api.statuses import detail, failure
from tests.auth.api_server import Api, As, serve_api
from tests.auth.tokens import hs_config

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    async with serve_api(database_url, hs_config()) as served:
        yield served


@pytest.fixture
async def tenants(sqlite_url: str) -> AsyncIterator[Api]:
    async with serve_api(sqlite_url, hs_config(tenant_claim="org")) as served:
        yield served


def _spec(text: str) -> tasks_pb2.TaskSpec:
    return tasks_pb2.TaskSpec(input=text)


async def _held_task(api: Api, owner: As, text: str) -> tasks_pb2.Task:
    """A task of ``owner`` that stays RUNNING until the test ends."""
    api.model.hold(text)
    task = (await owner.tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=_spec(text)))).task
    assert await api.model.wait_started() == [text]
    return task


async def _not_found(call: Any, task_id: str, streaming: bool = False) -> tuple[Any, ...]:
    """How a refusal looks, with the task id taken out."""
    _, status = await failure(call, streaming=streaming)
    info = detail(status, error_details_pb2.ErrorInfo)
    metadata = dict(info.metadata)
    assert metadata.pop("name") == task_id
    return (await call.code(), info.reason, metadata, status.message.replace(task_id, "<id>"))


async def _refusals(caller: As, task_id: str) -> list[tuple[Any, ...]]:
    """How Get, Cancel and Watch of ``task_id`` are refused to ``caller``."""
    return [
        await _not_found(caller.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id)), task_id),
        await _not_found(
            caller.tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=task_id)), task_id
        ),
        await _not_found(
            caller.tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=task_id)),
            task_id,
            streaming=True,
        ),
    ]


async def test_another_owner_gets_not_found_exactly_as_for_a_missing_task(api: Api) -> None:
    alice, bob = As(api, sub="alice"), As(api, sub="bob")
    task = await _held_task(api, alice, "alice's secret")
    refused = await _refusals(bob, task.id)
    expected = (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND", {"kind": "task"})
    assert [refusal[:3] for refusal in refused] == [expected] * 3
    assert refused == await _refusals(bob, MISSING)
    # Bob's cancel did nothing; alice still has her running task, bob lists nothing.
    mine = await alice.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id))
    assert mine.task.state == tasks_pb2.TASK_STATE_RUNNING
    assert not (await bob.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks
    listed = (await alice.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks
    assert [t.id for t in listed] == [task.id]


async def test_executed_tasks_belong_to_their_caller_too(api: Api) -> None:
    alice, bob = As(api, sub="alice"), As(api, sub="bob")
    done = (await alice.tasks.Execute(tasks_pb2.ExecuteRequest(task=_spec("hello")))).task
    assert done.state == tasks_pb2.TASK_STATE_SUCCEEDED
    batch = alice.tasks.BatchExecute(
        tasks_pb2.BatchExecuteRequest(requests=[tasks_pb2.ExecuteRequest(task=_spec("two"))])
    )
    (batched,) = [response.task async for response in batch]
    for task_id in (done.id, batched.id):
        call = bob.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id))
        assert (await _not_found(call, task_id))[0] == grpc.StatusCode.NOT_FOUND
    assert not (await bob.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks


async def test_an_admin_sees_and_cancels_every_owners_tasks(api: Api) -> None:
    alice, bob = As(api, sub="alice"), As(api, sub="bob")
    admin = As(api, sub="ops", scope="admin")
    alices = await _held_task(api, alice, "alice's")
    bobs = await _held_task(api, bob, "bob's")
    listed = (await admin.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks
    assert {t.id for t in listed} == {alices.id, bobs.id}
    seen = await admin.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=alices.id))
    assert seen.task.id == alices.id
    cancelled = await admin.tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=alices.id))
    assert cancelled.task.state == tasks_pb2.TASK_STATE_CANCELLED
    events = admin.tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=alices.id))
    last = [response.event async for response in events][-1]
    assert last.state_changed.state == tasks_pb2.TASK_STATE_CANCELLED


async def test_request_ids_are_per_owner(api: Api) -> None:
    alice, bob = As(api, sub="alice"), As(api, sub="bob")

    async def submit(caller: As, text: str) -> tasks_pb2.Task:
        request = tasks_pb2.SubmitTaskRequest(task=_spec(text), request_id="req-1")
        return (await caller.tasks.SubmitTask(request)).task

    first = await submit(alice, "alice's")
    other = await submit(bob, "bob's")
    assert other.id != first.id
    assert other.spec.input == "bob's"
    assert (await submit(alice, "alice's")).id == first.id
    assert (await submit(bob, "bob's")).id == other.id
    # Bob's retry never reveals alice's task, and vice versa.
    assert [t.id for t in (await bob.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks] == [
        other.id
    ]


async def test_with_a_tenant_claim_a_tenant_shares_its_tasks(tenants: Api) -> None:
    alice = As(tenants, sub="alice", org="acme")
    bob = As(tenants, sub="bob", org="acme")
    eve = As(tenants, sub="eve", org="evil")
    task = await _held_task(tenants, alice, "acme's")
    seen = await bob.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id))
    assert seen.task.id == task.id
    call = eve.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id))
    assert (await _not_found(call, task.id))[0] == grpc.StatusCode.NOT_FOUND
    assert not (await eve.tasks.ListTasks(tasks_pb2.ListTasksRequest())).tasks
    # A token without the tenant claim gets nowhere.
    orphan = As(tenants, sub="mallory")
    call = orphan.tasks.ListTasks(tasks_pb2.ListTasksRequest())
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
