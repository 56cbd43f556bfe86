"""Execute, WatchTask and request_id mean the same with several replicas as with one.

A call may land on any replica and the task may run on any other: Execute still
returns the final task, a watcher on a replica that does not run the task still gets
every event once and live, and a request_id still names one task whichever replicas
the retries reach.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from switchboard.client import AsyncClient
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.fakes import text
from tests.integration.envoy import Envoy

from .harness import Cluster
from .model import BOUND, Model, caller_key, until
from .store import Store, assert_one_life, output_of_last_attempt, wire_step

pytestmark = [
    pytest.mark.asyncio(loop_scope="package"),
    pytest.mark.replicas,
    pytest.mark.postgres,
    pytest.mark.timeout(90),
]

SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED


def offline_answer(message: str) -> str:
    """What the offline model answers (server/agents/offline.py)."""
    return f"Offline model (no network). You said: {message}"


async def test_execute_through_envoy_returns_each_result(
    cluster: Cluster, envoy: Envoy, store: Store
) -> None:
    inputs = [f"through envoy {n} {uuid.uuid4().hex[:8]}" for n in range(2 * len(cluster.replicas))]
    async with AsyncClient(envoy.address, timeout=BOUND) as client:
        results = [await client.execute(message, no_cache=True) for message in inputs]
    for message, task in zip(inputs, results, strict=True):
        assert task.state == SUCCEEDED
        assert task.output_text == offline_answer(message)
        row = await store.task(task.id)
        assert (row.state, row.output_text, row.attempts) == ("succeeded", task.output_text, 1)
        steps = await store.steps(task.id)
        assert_one_life(steps, "succeeded")
        assert output_of_last_attempt(steps) == task.output_text


async def test_execute_returns_a_task_that_ran_on_another_replica(
    cluster: Cluster, model: Model, store: Store
) -> None:
    since = model.mark()
    # The scripted agent runs one task per replica: the first, held, fills its replica,
    # so a second task sent to that same replica must run on another one.
    model.fake.script(
        text("first answer", parts=2).held(after=2, until=(first_gate := model.gate())),
        text("second answer", parts=3),
    )
    async with AsyncClient(cluster.replicas[0].address, timeout=BOUND) as client:
        first = await client.submit("hold a slot", agent="scripted")
    (request,) = await model.requests(1, since)
    busy = cluster.by_key(caller_key(request))

    async with AsyncClient(busy.address, timeout=BOUND) as client:
        executing = asyncio.create_task(client.execute("run elsewhere", agent="scripted"))
        _, second_request = await model.requests(2, since)
        assert cluster.by_key(caller_key(second_request)) is not busy
        second = await asyncio.wait_for(executing, BOUND)
    assert second.state == SUCCEEDED
    assert second.output_text == "second answer"
    row = await store.task(second.id)
    assert (row.state, row.output_text, row.attempts) == ("succeeded", "second answer", 1)
    assert_one_life(await store.steps(second.id), "succeeded")

    first_gate.set()

    async def first_done() -> bool:
        return (await store.task(first.id)).state == "succeeded"

    await until(first_done, what="the first task SUCCEEDED in the store")
    assert_one_life(await store.steps(first.id), "succeeded")


async def test_watch_on_a_replica_that_does_not_run_the_task(
    cluster: Cluster, model: Model, store: Store
) -> None:
    since = model.mark()
    words = "one two three four five six"
    model.fake.script(text(words, parts=6).held(after=3, until=(gate := model.gate())))
    async with AsyncClient(cluster.replicas[0].address, timeout=BOUND) as client:
        task = await client.submit("watch me from elsewhere", agent="scripted")
    (request,) = await model.requests(1, since)
    watched_on = cluster.others(cluster.by_key(caller_key(request)))[0]

    # The bare stub, no resuming client: this one stream must carry each event once.
    received: list[tasks_pb2.TaskEvent] = []
    async with grpc.aio.insecure_channel(watched_on.address) as channel:
        call = tasks_pb2_grpc.TaskServiceStub(channel).WatchTask(
            tasks_pb2.WatchTaskRequest(task_id=task.id), timeout=BOUND
        )

        async def read() -> None:
            async for response in call:
                received.append(response.event)

        reader = asyncio.create_task(read())
        try:
            # Two deltas while the model is held: they came live, not from a replay at the end.
            await until(
                lambda: sum(e.HasField("output_delta") for e in received) >= 2,
                what=lambda: f"2 live deltas; the stream carried {received}",
            )
            gate.set()
            await asyncio.wait_for(reader, BOUND)
        finally:
            reader.cancel()
        assert await call.code() == grpc.StatusCode.OK

    steps = await store.steps(task.id)
    assert_one_life(steps, "succeeded")
    assert [wire_step(event) for event in received] == steps
    assert output_of_last_attempt(steps) == words


async def test_a_request_id_names_one_task_across_replicas(cluster: Cluster, store: Store) -> None:
    request_id = f"replicas-{uuid.uuid4()}"
    message = f"once only {uuid.uuid4().hex[:8]}"
    clients = [AsyncClient(replica.address, timeout=BOUND) for replica in cluster.replicas]
    try:
        # The same request to every replica at once, then Execute of it on each.
        submitted = await asyncio.gather(
            *(c.submit(message, request_id=request_id, no_cache=True) for c in clients)
        )
        executed = await asyncio.gather(
            *(c.execute(message, request_id=request_id, no_cache=True) for c in clients)
        )
    finally:
        for c in clients:
            await c.close()
    assert len({task.id for task in (*submitted, *executed)}) == 1
    assert {task.state for task in executed} == {SUCCEEDED}
    assert {task.output_text for task in executed} == {offline_answer(message)}

    rows = await store.tasks_with_request_id(request_id)
    assert [row.id for row in rows] == [submitted[0].id]
    assert (rows[0].state, rows[0].attempts) == ("succeeded", 1)
    assert_one_life(await store.steps(rows[0].id), "succeeded")
