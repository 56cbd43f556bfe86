"""Every replica restarted in turn under steady load through Envoy: nothing fails or is lost.

A few clients call Envoy without pause, each alternating Execute (with a request_id)
and SubmitTask followed by a resuming WatchTask, while each replica in turn gets
SIGTERM, exits, starts again on its port and turns healthy in Envoy. The clients
retry nothing themselves beyond what the SDK's watch does: every call that fails
counts. Afterwards the database must hold exactly the accepted tasks, each SUCCEEDED
once, run once, with the offline model's answer once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest

from switchboard.client import AsyncClient, RetryPolicy, SwitchboardError
from switchboard.v1 import tasks_pb2
from tests.integration.envoy import Envoy

from .harness import Cluster
from .model import BOUND, until
from .store import Store, assert_one_life, output_of_last_attempt, states, wire_step

pytestmark = [
    pytest.mark.asyncio(loop_scope="package"),
    pytest.mark.replicas,
    pytest.mark.postgres,
    pytest.mark.timeout(120),
]

CLIENTS = 4
# Calls that must complete after each restart before the next one starts.
CALLS_BETWEEN_RESTARTS = 12
PATIENT = RetryPolicy(max_attempts=30, initial_backoff=0.05, max_backoff=0.5)


def offline_answer(message: str) -> str:
    """What the offline model answers (server/agents/offline.py)."""
    return f"Offline model (no network). You said: {message}"


@dataclass
class Load:
    """What the clients did: accepted tasks, the events they watched, failed calls."""

    prefix: str
    accepted: dict[str, str] = field(default_factory=dict)  # task id -> input
    watched: dict[str, list[tasks_pb2.TaskEvent]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    completed: int = 0
    phase: str = "warming up"  # what the restarts are doing, for the failure messages


async def _client(address: str, load: Load, worker: int, stop: asyncio.Event) -> None:
    async with AsyncClient(address, timeout=BOUND, watch_retry=PATIENT) as client:
        number = 0
        while not stop.is_set():
            number += 1
            message = f"{load.prefix} {worker}-{number}"
            kind = "Execute" if number % 2 else "SubmitTask+WatchTask"
            try:
                if kind == "Execute":
                    task = await client.execute(
                        message, request_id=f"{load.prefix}-{worker}-{number}", no_cache=True
                    )
                    load.accepted[task.id] = message
                    if task.state != tasks_pb2.TASK_STATE_SUCCEEDED:
                        state = tasks_pb2.TaskState.Name(task.state)
                        load.failures.append(
                            f"{kind} {message!r} ({load.phase}): the task ended {state}"
                        )
                else:
                    task = await client.submit(message, no_cache=True)
                    load.accepted[task.id] = message
                    load.watched[task.id] = [event async for event in client.watch(task.id)]
            except SwitchboardError as error:
                load.failures.append(f"{kind} {message!r} ({load.phase}): {error}")
            else:
                load.completed += 1


async def test_rolling_restart_under_load_loses_and_fails_nothing(
    cluster: Cluster, envoy: Envoy, store: Store
) -> None:
    load = Load(prefix=f"rolling-{uuid.uuid4().hex[:12]}")
    stop = asyncio.Event()
    healthy = dict.fromkeys(cluster.addresses, "healthy")
    clients = [
        asyncio.create_task(_client(envoy.address, load, worker, stop)) for worker in range(CLIENTS)
    ]
    try:
        await until(
            lambda: load.completed >= CALLS_BETWEEN_RESTARTS,
            what=lambda: f"calls completing; failures so far: {load.failures}",
        )
        for replica in cluster.replicas:
            load.phase = f"stopping {replica.name}"
            status = await replica.terminate()
            assert status == 0, replica.log_tail()
            load.phase = f"starting {replica.name}"
            await replica.start()
            load.phase = f"{replica.name} is SERVING"
            await envoy.wait_for_health(healthy)
            load.phase = f"{replica.name} is healthy in Envoy"
            mark = load.completed
            await until(
                lambda: load.completed >= mark + CALLS_BETWEEN_RESTARTS,  # noqa: B023
                what=lambda: f"calls completing after the restart; failures: {load.failures}",
            )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), BOUND)

    calls = load.completed + len(load.failures)
    assert load.failures == [], f"{len(load.failures)} of {calls} calls failed"
    rows = await store.tasks_with_input_prefix(load.prefix)
    assert {row.id for row in rows} == set(load.accepted), "tasks lost or unknown to clients"
    steps_of = await store.steps_of(load.accepted)
    for row in rows:
        answer = offline_answer(load.accepted[row.id])
        steps = steps_of[row.id]
        assert (row.state, row.attempts, row.output_text) == ("succeeded", 1, answer), row
        assert_one_life(steps, "succeeded")
        assert states(steps) == ["queued", "running", "succeeded"], (row.id, steps)
        assert output_of_last_attempt(steps) == answer
    for task_id, events in load.watched.items():
        assert [wire_step(event) for event in events] == steps_of[task_id]
