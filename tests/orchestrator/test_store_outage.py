"""The database goes away under a running orchestrator (PostgreSQL refusing connections)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from switchboard.server.domain import TaskState
from switchboard.server.store import TaskStore
from tests.conftest import POSTGRES_URL, asyncpg_dsn
from tests.orchestrator.conftest import Harness, make_settings, start_harness
from tests.scripted_model import ScriptedModel, scripted_runtimes


@contextlib.asynccontextmanager
async def _outage(url: str) -> AsyncIterator[None]:
    """The database refuses every connection, and its open ones are cut, inside the block."""
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()


@pytest.fixture
async def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
async def on_postgres(postgres_url: str, model: ScriptedModel) -> AsyncIterator[Harness]:
    settings = make_settings(
        postgres_url,
        store={"shutdown_write_timeout": timedelta(milliseconds=300)},
        # A stable name: restarted, it takes its tasks back without waiting for the leases.
        queue={"replica_id": "the-only-replica"},
    )
    store = await TaskStore.open(postgres_url, migrate=True)
    harness = await start_harness(settings, store, scripted_runtimes(model), [])
    try:
        yield harness
    finally:
        await harness.stop(grace=0)
        await store.close()


async def test_events_written_during_an_outage_land_when_it_ends(
    on_postgres: Harness, model: ScriptedModel
) -> None:
    gate = model.hold("through the outage")
    task = await on_postgres.submit("through the outage")
    await model.wait_started()
    async with _outage(on_postgres.settings.database_url):
        assert not await on_postgres.orchestrator.ready()
        gate.set()
        assert await model.closed.get() == "through the outage"
    assert await on_postgres.orchestrator.ready()
    events = await on_postgres.events(task.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].payload.state is TaskState.SUCCEEDED
    assert (await on_postgres.store.get_task(task.id)).state is TaskState.SUCCEEDED


async def test_stopping_during_an_outage_gives_up_its_writes_instead_of_hanging(
    on_postgres: Harness, model: ScriptedModel
) -> None:
    gate = model.hold("cut off")
    task = await on_postgres.submit("cut off")
    await model.wait_started()
    async with _outage(on_postgres.settings.database_url):
        await on_postgres.stop(grace=0.05)
    assert on_postgres.orchestrator.queue_stats.store_write_errors > 0  # refused, retried
    # The requeue could not be written: the store still says RUNNING, under this
    # replica's lease, which the next start (under the same name) takes back.
    assert (await on_postgres.store.get_task(task.id)).state is TaskState.RUNNING
    gate.set()
    restarted = await on_postgres.restart()
    assert (await restarted.events(task.id))[-1].payload.state is TaskState.SUCCEEDED
