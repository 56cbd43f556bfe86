"""The shared services replicas need: a PostgreSQL database and a Redis key prefix of their own.

Each run creates a new database (migrated once, as production does, not by every replica
at start) and a unique key prefix, and removes both afterwards, so runs leave nothing
behind and never see another run's tasks or events.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from bench.processes import ServerFailed, migrate

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Backing:
    """Where the replicas of one run keep their state."""

    database_name: str
    database_url: str  # SQLAlchemy URL of the run's own database
    redis_url: str
    redis_prefix: str

    def settings(self) -> dict[str, str]:
        """The replicas' environment for this run."""
        return {
            "SWITCHBOARD_DATABASE_URL": self.database_url,
            "SWITCHBOARD_REDIS_URL": self.redis_url,
            "SWITCHBOARD_REDIS_PREFIX": self.redis_prefix,
        }


async def _admin(postgres_url: str) -> asyncpg.Connection:
    dsn = make_url(postgres_url).set(drivername="postgresql")
    try:
        return await asyncpg.connect(
            dsn.render_as_string(hide_password=False), timeout=_CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise ServerFailed(
            f"PostgreSQL is not reachable at {dsn.render_as_string()} ({error}): start it "
            "(scripts/test-services.sh does) or pass --postgres-url"
        ) from error


async def _check_redis(redis: Redis, url: str) -> None:
    try:
        await redis.ping()
    except (RedisError, OSError) as error:
        raise ServerFailed(
            f"Redis is not reachable at {url} ({error}): start it "
            "(scripts/test-services.sh does) or pass --redis-url"
        ) from error


async def _delete_keys(redis: Redis, prefix: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await redis.delete(*batch)
            batch.clear()
    if batch:
        deleted += await redis.delete(*batch)
    return deleted


@contextlib.asynccontextmanager
async def fresh_backing(postgres_url: str, redis_url: str) -> AsyncIterator[Backing]:
    """A new migrated database beside ``postgres_url``'s and a new Redis prefix.

    ``postgres_url`` names a database to connect to for CREATE/DROP DATABASE (any will do:
    ``postgres``). On exit the database is dropped (closing what is still connected) and
    every key under the prefix deleted, whatever happened.
    """
    run = uuid.uuid4().hex[:12]
    name = f"switchboard_bench_{run}"
    redis = Redis.from_url(
        redis_url, socket_timeout=_CONNECT_TIMEOUT, socket_connect_timeout=_CONNECT_TIMEOUT
    )
    try:
        await _check_redis(redis, redis_url)
        admin = await _admin(postgres_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        try:
            url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
            await migrate(url)
            yield Backing(name, url, redis_url, f"switchboard-bench-{run}:")
        finally:
            admin = await _admin(postgres_url)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
            await _delete_keys(redis, f"switchboard-bench-{run}:")
    finally:
        await redis.aclose()
