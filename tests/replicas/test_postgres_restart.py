"""PostgreSQL restarted under two replicas: not ready while it is down, nothing lost after.

The database is a private cluster (the machine's shared server serves other tests and
is never restarted). Before the outage each replica runs a scripted task whose model
is held, a third task waits in the queue behind them and a few quick ones have
finished. The models answer while the database is down; once it is back every task
must end SUCCEEDED exactly once, with gap-free events and the output of one run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from switchboard.client import AsyncClient
from switchboard.server.store.migrate import migrate
from switchboard.v1 import tasks_pb2
from tests.conftest import REDIS_URL
from tests.fakes import text

from .conftest import fake_model, redis_prefix
from .harness import NOT_SERVING, SERVING, Cluster, Shared, running_cluster, write_agents_config
from .model import BOUND, Model, caller_key, until
from .private_postgres import PrivatePostgres, private_postgres
from .store import TERMINAL, Store, assert_one_life, output_of_last_attempt

pytestmark = [
    pytest.mark.asyncio(loop_scope="package"),
    pytest.mark.replicas,
    pytest.mark.timeout(120),
]

WORDS = "the database came back"


class Setup:
    """The module's cluster, its private PostgreSQL and its model."""

    def __init__(self, cluster: Cluster, postgres: PrivatePostgres, model: Model) -> None:
        self.cluster = cluster
        self.postgres = postgres
        self.model = model
        self.store = Store(cluster.shared.database_url)


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    workdir = tmp_path_factory.mktemp("postgres-restart")
    async with private_postgres() as postgres, fake_model() as model, redis_prefix() as prefix:
        database_url = await postgres.create_database("switchboard")
        await migrate(database_url)
        shared = Shared(
            database_url=database_url,
            config_file=write_agents_config(workdir / "agents.yaml", model.base_url),
            redis_url=REDIS_URL,
            redis_prefix=prefix,
        )
        async with running_cluster(workdir, shared, 2) as cluster:
            yield Setup(cluster, postgres, model)


async def test_a_postgres_restart_loses_no_task(setup: Setup) -> None:
    cluster, model, store = setup.cluster, setup.model, setup.store
    since = model.mark()
    gate = model.gate()
    model.fake.script(
        text(WORDS, parts=4).held(after=2, until=gate),
        text(WORDS, parts=4).held(after=2, until=gate),
        # The queued task's run, and runs again of tasks whose lease ran out meanwhile.
        *[text(WORDS, parts=4)] * 4,
    )
    async with AsyncClient(cluster.replicas[0].address, timeout=BOUND) as client:
        # One scripted task per replica at most: the first two fill both, the third waits.
        held = [await client.submit("held one", agent="scripted")]
        await model.requests(1, since)
        held.append(await client.submit("held two", agent="scripted"))
        requests = await model.requests(2, since)
        assert {cluster.by_key(caller_key(r)) for r in requests} == set(cluster.replicas)
        waiting = await client.submit("queued behind them", agent="scripted")
        quick = [await client.execute(f"before the outage {n}", no_cache=True) for n in range(3)]
    assert {task.state for task in quick} == {tasks_pb2.TASK_STATE_SUCCEEDED}
    assert (await store.task(waiting.id)).state == "queued"

    await setup.postgres.stop()
    await cluster.wait_all(NOT_SERVING, BOUND)
    assert [await r.ready_over_http() for r in cluster.replicas] == [503] * len(cluster.replicas)
    gate.set()  # the held models finish while nothing can be stored
    await setup.postgres.start()
    await cluster.wait_all(SERVING, BOUND)
    assert [await r.ready_over_http() for r in cluster.replicas] == [200] * len(cluster.replicas)

    scripted = [task.id for task in (*held, waiting)]

    async def all_ended() -> bool:
        return all(row.state in TERMINAL for row in await store.tasks(scripted))

    await until(all_ended, bound=2 * BOUND, what="every scripted task ended in the store")
    for row in await store.tasks(scripted):
        steps = await store.steps(row.id)
        assert (row.state, row.output_text) == ("succeeded", WORDS), row
        assert_one_life(steps, "succeeded")
        assert row.last_sequence == len(steps)
        assert output_of_last_attempt(steps) == WORDS
    for row in await store.tasks(task.id for task in quick):
        assert row.state == "succeeded"
        assert_one_life(await store.steps(row.id), "succeeded")
