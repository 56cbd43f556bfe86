"""Redis restarted while a task streams: watchers on another replica miss nothing.

Two replicas share a database and a private Redis (the machine's own serves other
tests and is never restarted). A task runs on one replica with its model held at
two points; watchers on the other replica, which hears of events only through Redis,
see the first part live, the middle while Redis is down (from the store), and the end
after Redis is back. Each watcher must get every stored event exactly once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import pytest_asyncio

from switchboard.client import AsyncClient, RetryPolicy
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.fakes import text, tool_call
from tests.ratelimit.spare_redis import SpareRedis

from .conftest import fake_model, migrated_database
from .harness import SERVING, Cluster, Replica, Shared, running_cluster, write_agents_config
from .model import BOUND, Model, caller_key, until
from .store import Store, assert_one_life, output_of_last_attempt, wire_step

pytestmark = [
    pytest.mark.asyncio(loop_scope="package"),
    pytest.mark.replicas,
    pytest.mark.postgres,
    pytest.mark.timeout(90),
]

WORDS = "red is down and back again"


class Setup:
    """The module's cluster, its private Redis, model and database."""

    def __init__(self, cluster: Cluster, redis: SpareRedis, model: Model) -> None:
        self.cluster = cluster
        self.redis = redis
        self.model = model
        self.store = Store(cluster.shared.database_url)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    workdir = tmp_path_factory.mktemp("redis-restart")
    redis = SpareRedis(workdir)
    await redis.start()
    try:
        async with fake_model() as model, migrated_database() as database_url:
            shared = Shared(
                database_url=database_url,
                config_file=write_agents_config(workdir / "agents.yaml", model.base_url),
                redis_url=redis.url,
            )
            async with running_cluster(workdir, shared, 2) as cluster:
                yield Setup(cluster, redis, model)
    finally:
        await redis.stop()


def bus_degraded(replica: Replica, expected: float) -> Callable[[], Awaitable[bool]]:
    """A check: is ``event_bus_degraded`` (1 while Redis fails) ``expected`` on /metrics?"""

    async def check() -> bool:
        return await replica.metric("event_bus_degraded") == expected

    return check


def count(events: list[tasks_pb2.TaskEvent], field: str) -> int:
    return sum(1 for event in events if event.HasField(field))


def both(
    one: list[tasks_pb2.TaskEvent], other: list[tasks_pb2.TaskEvent], field: str, least: int
) -> bool:
    return count(one, field) >= least and count(other, field) >= least


async def test_watchers_on_another_replica_survive_a_redis_restart(setup: Setup) -> None:
    cluster, model, redis = setup.cluster, setup.model, setup.redis
    since = model.mark()
    first, second = model.gate(), model.gate()
    # Turn 1: a calculator call, held before it is made; turn 2: the answer, held midway.
    model.fake.script(
        tool_call("calculator", {"expression": "6 * 7"}).held(after=1, until=first),
        text(WORDS, parts=6).held(after=3, until=second),
    )
    async with AsyncClient(cluster.replicas[0].address, timeout=BOUND) as client:
        task = await client.submit("keep streaming", agent="scripted")
    (request,) = await model.requests(1, since)
    watcher_replica = cluster.others(cluster.by_key(caller_key(request)))[0]

    bare: list[tasks_pb2.TaskEvent] = []
    resuming: list[tasks_pb2.TaskEvent] = []
    patient = RetryPolicy(max_attempts=30, initial_backoff=0.05, max_backoff=0.5)
    async with (
        grpc.aio.insecure_channel(watcher_replica.address) as channel,
        AsyncClient(watcher_replica.address, timeout=BOUND, watch_retry=patient) as client,
    ):
        call = tasks_pb2_grpc.TaskServiceStub(channel).WatchTask(
            tasks_pb2.WatchTaskRequest(task_id=task.id), timeout=BOUND * 2
        )

        async def read_bare() -> None:
            async for response in call:
                bare.append(response.event)

        async def read_resuming() -> None:
            async for event in client.watch(task.id):
                resuming.append(event)

        readers = [asyncio.create_task(read_bare()), asyncio.create_task(read_resuming())]
        try:
            await until(
                lambda: both(bare, resuming, "agent_changed", 1),
                what=lambda: f"the run's start for both watchers; they saw {bare}, {resuming}",
            )
            await redis.stop()
            await until(bus_degraded(watcher_replica, 1), what="event_bus_degraded 1")
            # Redis is not the source of truth: every replica stays ready without it.
            assert [await r.readiness() for r in cluster.replicas] == [SERVING, SERVING]
            # While Redis is down: the tool call, its result, the second turn's first deltas.
            first.set()
            await model.requests(2, since)
            await until(
                lambda: both(bare, resuming, "output_delta", 2),
                what=lambda: f"2 deltas for both watchers, Redis down; saw {bare}, {resuming}",
            )
            assert count(bare, "tool_call") == 1

            await redis.start()
            await until(bus_degraded(watcher_replica, 0), what="event_bus_degraded 0 again")
            second.set()
            await asyncio.wait_for(asyncio.gather(*readers), BOUND)
        finally:
            for reader in readers:
                reader.cancel()
        assert await call.code() == grpc.StatusCode.OK

    steps = await setup.store.steps(task.id)
    assert_one_life(steps, "succeeded")
    assert output_of_last_attempt(steps) == WORDS
    assert [wire_step(event) for event in bare] == steps
    assert [wire_step(event) for event in resuming] == steps
    row = await setup.store.task(task.id)
    assert (row.state, row.attempts, row.output_text) == ("succeeded", 1, WORDS)
