"""A task outlives the replica running it, and any replica can cancel it.

The scripted agent's model is held mid-stream, so the task is certainly running on one
known replica (its API key names it) when that replica is killed or asked, through
another replica, to cancel. The verdicts come from the database: one terminal state,
events numbered 1..n, the output of one attempt.
"""

from __future__ import annotations

import asyncio

import pytest

from switchboard.client import AsyncClient, RetryPolicy
from switchboard.v1 import tasks_pb2
from tests.fakes import text
from tests.integration.envoy import Envoy

from .harness import Cluster
from .model import BOUND, Model, caller_key, until
from .store import Store, assert_one_life, output_of_last_attempt, states, wire_step

pytestmark = [
    pytest.mark.asyncio(loop_scope="package"),
    pytest.mark.replicas,
    pytest.mark.postgres,
    pytest.mark.timeout(90),
]

WORDS = "alpha beta gamma delta epsilon zeta"
# Keep reconnecting through a replica's death: Envoy needs ~0.5 s to drop it.
PATIENT = RetryPolicy(max_attempts=30, initial_backoff=0.05, max_backoff=0.5)


def deltas(events: list[tasks_pb2.TaskEvent]) -> int:
    return sum(1 for event in events if event.HasField("output_delta"))


async def test_a_killed_replica_s_task_finishes_on_another(
    cluster: Cluster, envoy: Envoy, model: Model, store: Store
) -> None:
    since = model.mark()
    # The first run stalls after two deltas (until its replica dies); the next one ends.
    model.fake.script(text(WORDS, parts=6).held(after=3, until=model.gate()), text(WORDS, parts=6))
    # Two watchers through Envoy: round robin puts their streams on different replicas,
    # so one of them is cut by the kill and resumes on a replica still alive.
    seen: tuple[list[tasks_pb2.TaskEvent], ...] = ([], [])
    async with AsyncClient(envoy.address, timeout=BOUND, watch_retry=PATIENT) as client:
        task = await client.submit("survive a crash", agent="scripted")

        async def watch(into: list[tasks_pb2.TaskEvent]) -> None:
            async for event in client.watch(task.id):
                into.append(event)

        watchers = [asyncio.create_task(watch(into)) for into in seen]
        try:
            (first,) = await model.requests(1, since)
            victim = cluster.by_key(caller_key(first))
            await until(
                lambda: all(deltas(events) >= 2 for events in seen),
                what=lambda: f"2 deltas for each watcher; they saw {seen}",
            )
            disconnects = model.fake.disconnects
            await victim.kill()
            # The model stream died with its replica...
            await model.disconnected(disconnects + 1)
            # ...and once the lease ran out another replica ran the task again.
            _, second = await model.requests(2, since)
            assert cluster.by_key(caller_key(second)) is not victim
            await asyncio.wait_for(asyncio.gather(*watchers), BOUND)
        finally:
            for watcher in watchers:
                watcher.cancel()

    row = await store.task(task.id)
    steps = await store.steps(task.id)
    assert_one_life(steps, "succeeded")
    assert (row.state, row.attempts, row.output_text) == ("succeeded", 2, WORDS)
    assert row.last_sequence == len(steps)
    assert output_of_last_attempt(steps) == WORDS
    assert states(steps).count("running") == 2
    # Across the cut and the reconnects: every event once, in order, for both watchers.
    for events in seen:
        assert [wire_step(event) for event in events] == steps


async def test_cancel_on_one_replica_stops_the_run_on_another(
    cluster: Cluster, model: Model, store: Store
) -> None:
    since = model.mark()
    model.fake.script(text(WORDS, parts=6).held(after=3, until=model.gate()))
    async with AsyncClient(cluster.replicas[0].address, timeout=BOUND) as client:
        task = await client.submit("cancel me from elsewhere", agent="scripted")
    (request,) = await model.requests(1, since)
    runner = cluster.by_key(caller_key(request))
    canceller = cluster.others(runner)[0]
    disconnects = model.fake.disconnects

    async with AsyncClient(canceller.address, timeout=BOUND) as client:
        cancelled = await client.cancel(task.id)
    assert cancelled.state == tasks_pb2.TASK_STATE_CANCELLED
    # The model stream on the running replica was closed: the run stopped there.
    await model.disconnected(disconnects + 1)
    async with AsyncClient(runner.address, timeout=BOUND) as client:
        assert (await client.get(task.id)).state == tasks_pb2.TASK_STATE_CANCELLED

    row = await store.task(task.id)
    steps = await store.steps(task.id)
    assert_one_life(steps, "cancelled")
    assert (row.state, row.attempts) == ("cancelled", 1)
    assert len(model.fake.requests) == since + 1  # not run again anywhere
