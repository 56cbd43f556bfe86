"""Fixtures shared by the whole suite: fresh databases on SQLite and PostgreSQL, Redis keys."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from switchboard.server.agents import build_runtimes
from switchboard.server.app import App
from switchboard.server.config import Settings

POSTGRES_URL = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(asyncpg_dsn(POSTGRES_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required for this test and is not reachable at {POSTGRES_URL} "
            f"({exc}). Start it (scripts/test-services.sh does) or set "
            "SWITCHBOARD_TEST_POSTGRES_URL.",
            pytrace=False,
        )


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a new, empty PostgreSQL database; drop it (and its sessions) on exit."""
    name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a new SQLite file in the test's temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database of each kind the service supports: the test runs once per kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@dataclass(frozen=True)
class RunningServer:
    """A started server: the App itself, its settings, and ``address`` to dial."""

    app: App
    settings: Settings
    address: str


ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start servers with settings overrides (``Settings`` keywords); stop them after the test.

    ``runtimes`` replaces the agents' runtime factory (e.g. a scripted model).
    Defaults: ``127.0.0.1:0``, a new SQLite file per server in ``tmp_path``, a grace
    period of 2 s. Stopping an App twice is harmless, so tests may stop their own.
    """
    started: list[App] = []

    async def start(runtimes: Any = build_runtimes, **overrides: Any) -> RunningServer:
        values: dict[str, Any] = {
            "address": "127.0.0.1:0",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / f'server-{len(started)}.db'}",
            "server": {"grace_period": timedelta(seconds=2)},
            "metrics_address": "127.0.0.1:0",
        }
        settings = Settings(**(values | overrides))
        app = App(settings, runtimes)
        port = await app.start()
        started.append(app)
        return RunningServer(app, settings, f"127.0.0.1:{port}")

    yield start
    for app in reversed(started):
        await app.stop(1)


@pytest.fixture
async def running_server(server_factory: ServerFactory) -> RunningServer:
    """A server with the default agents on a fresh SQLite file, stopped after the test."""
    return await server_factory()


REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_url() -> str:
    """The URL of the test Redis (``SWITCHBOARD_TEST_REDIS_URL``), checked to answer."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        pytest.fail(
            f"Redis is required for this test and is not reachable at {REDIS_URL} ({exc}). "
            "Start it (scripts/test-services.sh does) or set SWITCHBOARD_TEST_REDIS_URL.",
            pytrace=False,
        )
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses; every key under it is deleted after the test."""
    prefix = f"switchboard-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
