"""Fixtures of the multi-replica tests: replicas over one database, Envoy, the fake model.

Starting replicas costs seconds, so two of them, over a fresh database on the test
PostgreSQL and a fresh key prefix on the test Redis, serve every test of the package
that takes ``cluster``; each such test starts from a cluster whose replicas all run
and which Envoy sees healthy. Tests that restart PostgreSQL or Redis make clusters
of their own over private servers. Everything here runs in one event loop per
package (``loop_scope="package"``): the fake model server and the gRPC channels
live in it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.server.store.migrate import migrate
from tests.conftest import REDIS_URL, fresh_postgres_database
from tests.fakes import FakeOpenAI
from tests.integration.envoy import Envoy, run_envoy

from .harness import Cluster, Shared, running_cluster, write_agents_config
from .model import Model
from .store import Store

SHARED_SIZE = 2


def pytest_configure(config: pytest.Config) -> None:
    """Register this package's marker (the suite runs with --strict-markers)."""
    config.addinivalue_line(
        "markers", "replicas: runs several `switchboard serve` processes (tests/replicas)"
    )


@contextlib.asynccontextmanager
async def migrated_database() -> AsyncIterator[str]:
    """A fresh database on the test PostgreSQL, migrated to head, dropped on exit.

    (Migrated once, here, as a migration job would before replicas start.)
    """
    async with fresh_postgres_database() as fresh:
        await migrate(fresh)
        yield fresh


@contextlib.asynccontextmanager
async def redis_prefix(url: str = REDIS_URL) -> AsyncIterator[str]:
    """A key prefix on the Redis at ``url`` no one else uses; its keys are deleted on exit."""
    client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        try:
            await client.ping()
        except (OSError, RedisError) as exc:
            pytest.fail(
                f"Redis is required for this test and is not reachable at {url} ({exc}). "
                "Start it (scripts/test-services.sh does) or set SWITCHBOARD_TEST_REDIS_URL.",
                pytrace=False,
            )
        prefix = f"switchboard-replicas-{uuid.uuid4().hex[:12]}:"
        yield prefix
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def fake_model() -> AsyncIterator[Model]:
    """The fake OpenAI server the scripted agent talks to; every held reply opens on exit."""
    async with FakeOpenAI() as fake:
        model = Model(fake)
        try:
            yield model
        finally:
            model.open_gates()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def shared_model() -> AsyncIterator[Model]:
    """The fake model of the shared cluster."""
    async with fake_model() as model:
        yield model


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory, shared_model: Model
) -> AsyncIterator[Cluster]:
    """Replicas over a fresh database and Redis key prefix, for the whole package."""
    workdir = tmp_path_factory.mktemp("replicas")
    async with migrated_database() as database_url, redis_prefix() as prefix:
        shared = Shared(
            database_url=database_url,
            config_file=write_agents_config(workdir / "agents.yaml", shared_model.base_url),
            redis_url=REDIS_URL,
            redis_prefix=prefix,
        )
        async with running_cluster(workdir, shared, SHARED_SIZE) as cluster:
            yield cluster


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def shared_envoy(
    tmp_path_factory: pytest.TempPathFactory, shared_cluster: Cluster
) -> AsyncIterator[Envoy]:
    """deploy/envoy/envoy.yaml in front of the shared cluster."""
    async with run_envoy(tmp_path_factory.mktemp("envoy"), shared_cluster.addresses) as envoy:
        yield envoy


@pytest_asyncio.fixture(loop_scope="package")
async def cluster(
    shared_cluster: Cluster, shared_envoy: Envoy, shared_model: Model
) -> AsyncIterator[Cluster]:
    """The shared cluster with every replica running and healthy behind Envoy.

    Replicas a test killed or stopped are started again before the next test (not
    after: a failed test's replicas keep their logs as they were).
    """
    await shared_cluster.ensure_running()
    await shared_envoy.wait_for_health(dict.fromkeys(shared_cluster.addresses, "healthy"))
    try:
        yield shared_cluster
    finally:
        shared_model.open_gates()


@pytest.fixture
def envoy(cluster: Cluster, shared_envoy: Envoy) -> Envoy:
    """Envoy in front of ``cluster``."""
    return shared_envoy


@pytest.fixture
def model(cluster: Cluster, shared_model: Model) -> Model:
    """The fake model ``cluster``'s scripted agent talks to."""
    return shared_model


@pytest.fixture
def store(cluster: Cluster) -> Store:
    """Reads ``cluster``'s database."""
    return Store(cluster.shared.database_url)
