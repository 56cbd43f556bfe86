"""Two orchestrators on one database and one bus: replicas sharing the durable queue.

Each replica has its own store connection pool, workers, leases and journal, as two
server processes would; they share the database and the event bus (in process here;
across processes, Redis: see tests/replicas for real processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from switchboard.server.config import AgentConfig, QueueConfig
from switchboard.server.domain import OutputDelta, TaskSpec, TaskState
from switchboard.server.events import InProcessBus
from switchboard.server.orchestrator import NewTask
from switchboard.server.store import TaskQueue, TaskStore
from switchboard.server.store.schema import tasks
from tests.orchestrator.conftest import (
    Harness,
    assert_interrupted_once_then_done,
    make_settings,
    start_harness,
    states,
)
from tests.scripted_model import ScriptedModel, scripted_runtimes

Replica = Callable[..., Awaitable[Harness]]


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
async def replica(database_url: str, model: ScriptedModel) -> AsyncIterator[Replica]:
    """Start replicas on one fresh database, sharing one bus; stop them after."""
    bus = InProcessBus()
    started: list[Harness] = []
    stores: list[TaskStore] = []

    async def start(**queue: Any) -> Harness:
        queue.setdefault("poll_interval", timedelta(milliseconds=20))
        settings = make_settings(database_url, queue=QueueConfig(**queue))
        store = await TaskStore.open(settings.database_url, migrate=True)
        stores.append(store)
        return await start_harness(settings, store, scripted_runtimes(model), started, bus=bus)

    yield start
    for harness in started:
        await harness.stop(grace=0)
    for store in stores:
        await store.close()


async def test_execute_on_a_full_replica_returns_the_result_run_by_another(
    replica: Replica, model: ScriptedModel
) -> None:
    a = await replica(max_concurrency=1)
    gate = model.hold("blocker")
    await a.submit("blocker")
    assert await model.wait_started() == ["blocker"]
    b = await replica()
    done = await a.execute("run me elsewhere")
    assert done.state is TaskState.SUCCEEDED
    assert done.output_text
    # B ran it: A's only slot was held all along.
    assert b.orchestrator.agent("assistant").outcomes == {TaskState.SUCCEEDED: 1}
    assert a.orchestrator.agent("assistant").outcomes == {}
    gate.set()


async def test_watch_on_one_replica_streams_a_task_running_on_another(
    replica: Replica, model: ScriptedModel
) -> None:
    a, b = await replica(), await replica()
    gate = model.hold("watched")
    task = await a.submit("watched")
    await model.wait_started()
    watching = asyncio.ensure_future(b.events(task.id))
    gate.set()
    events = await watching
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert states(events)[-1] is TaskState.SUCCEEDED


async def test_cancel_on_one_replica_stops_the_run_on_another(
    replica: Replica, model: ScriptedModel
) -> None:
    a, b = await replica(), await replica()
    model.hold("long job")
    task = await a.submit("long job")
    await model.wait_started()
    cancelled = await b.orchestrator.cancel(task.id)
    assert cancelled.state is TaskState.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.reason == "TASK_CANCELLED"
    assert await model.closed.get() == "long job"  # the model stream on A was stopped
    assert a.orchestrator.agent("assistant").outcomes == {TaskState.CANCELLED: 1}


async def test_cancel_reaches_the_holder_through_the_store_when_the_signal_is_lost(
    replica: Replica, model: ScriptedModel
) -> None:
    a = await replica(lease_ttl=timedelta(seconds=1))
    model.hold("long job")
    task = await a.submit("long job")
    await model.wait_started()
    # Another replica's cancel request, its signal lost: the holder reads it at renewal.
    other = TaskQueue(a.store, "another replica", timedelta(seconds=30))
    assert await other.request_cancel(task.id, "cancelled by request")
    events = await a.events(task.id)
    assert states(events)[-1] is TaskState.CANCELLED


async def test_a_graceful_stop_hands_running_tasks_to_another_replica(
    replica: Replica, model: ScriptedModel
) -> None:
    a = await replica()
    gate = model.hold("handed over")
    task = await a.submit("handed over")
    await model.wait_started()
    b = await replica()
    await a.stop(grace=0)  # interrupted: requeued with its lease given up
    assert await model.wait_started() == ["handed over"]  # B took it at once
    gate.set()
    await assert_interrupted_once_then_done(b, task.id)


async def test_an_expired_lease_moves_the_task_and_fences_the_old_holder(
    replica: Replica, model: ScriptedModel
) -> None:
    # A has room for one task only, so it does not take its own task back itself.
    a = await replica(max_concurrency=1)
    gate = model.hold("contested")
    executing = asyncio.ensure_future(a.execute("contested"))
    await model.wait_started()
    (task,) = (await a.orchestrator.list_tasks()).tasks
    # A hangs: its lease runs out without a renewal (the clock moved on, not A).
    await _expire_lease(a.store, task.id)
    b = await replica()
    assert await model.wait_started() == ["contested"]  # B reclaimed it
    gate.set()  # both runs go on; A's first write is refused
    # The Execute call on A still gets the result, B's.
    final = await executing
    events = await b.events(task.id)
    assert final == await b.orchestrator.get(task.id)
    assert final.state is TaskState.SUCCEEDED
    assert final.attempts == 2
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [s for s in states(events) if s.terminal] == [TaskState.SUCCEEDED]
    # Output of attempt 1 never reached the store: A was fenced before writing it.
    assert {e.payload.attempt for e in events if isinstance(e.payload, OutputDelta)} == {2}
    assert (a.orchestrator.leases_lost, b.orchestrator.reclaims) == (1, 1)
    assert a.orchestrator.agent("assistant").in_flight == 0


async def test_request_id_dedupes_across_replicas(replica: Replica) -> None:
    a, b = await replica(), await replica()
    first, again = await asyncio.gather(
        a.orchestrator.submit(NewTask(_spec("once"), "req-1")),
        b.orchestrator.submit(NewTask(_spec("once"), "req-1")),
    )
    assert first.id == again.id
    done = await b.orchestrator.execute(NewTask(_spec("once"), "req-1"))
    assert (done.id, done.state, done.attempts) == (first.id, TaskState.SUCCEEDED, 1)


def _spec(text: str) -> TaskSpec:
    return TaskSpec(input=text)


async def _expire_lease(store: TaskStore, task_id: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with store.engine.begin() as connection:
        await connection.execute(
            sa.update(tasks).where(tasks.c.id == task_id).values(lease_expires=past)
        )


async def test_tasks_of_an_agent_no_longer_configured_fail_at_start(
    database_url: str, model: ScriptedModel
) -> None:
    both = make_settings(database_url, AgentConfig(name="assistant"), AgentConfig(name="retired"))
    store = await TaskStore.open(database_url, migrate=True)
    started: list[Harness] = []
    try:
        old = await start_harness(
            both.model_copy(update={"queue": QueueConfig(max_concurrency=1)}),
            store,
            scripted_runtimes(model),
            started,
        )
        gate = model.hold("blocker")
        await old.submit("blocker")
        await model.wait_started()
        orphan = await old.submit("left behind", agent="retired")
        await old.stop(grace=0)
        gate.set()
        new = await start_harness(
            make_settings(database_url), store, scripted_runtimes(model), started
        )
        events = await new.events(orphan.id)
        failed = await new.orchestrator.get(orphan.id)
        assert states(events) == [TaskState.QUEUED, TaskState.FAILED]
        assert failed.error is not None
        assert failed.error.reason == "AGENT_REMOVED"
    finally:
        for harness in started:
            await harness.stop(grace=0)
        await store.close()
