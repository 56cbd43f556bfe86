"""Migrations: applied in-loop, idempotent, and identical to the models' schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from switchboard.server.domain import StateChanged, Task, TaskEvent, TaskState
from switchboard.server.store import TaskStore, migrate
from switchboard.server.store.engine import create_engine
from switchboard.server.store.migrate import alembic_config
from switchboard.server.store.schema import metadata


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def _version(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
            assert await connection.run_sync(_version) == "0001"
    finally:
        await engine.dispose()


def _first_event(task: Task) -> TaskEvent:
    return TaskEvent(task.id, 1, task.create_time, StateChanged(TaskState.QUEUED))


async def test_migrate_twice_is_a_no_op(database_url: str, new_task) -> None:
    task = new_task()
    store = await TaskStore.open(database_url, migrate=True)
    try:
        await store.create_task(task, _first_event(task))
        await migrate(database_url)
        await migrate(database_url)
        assert await store.get_task(task.id) == task
    finally:
        await store.close()


async def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    def down(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(down)
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await migrate(database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_migrate_creates_the_sqlite_file_and_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "switchboard.db"
    store = await TaskStore.open(f"sqlite+aiosqlite:///{path}", migrate=True)
    try:
        await store.ping()
        assert await store.list_tasks() == []
    finally:
        await store.close()
    assert path.is_file()


async def test_sqlite_connections_are_configured(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000}


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_keeps_one_database(url: str, new_task) -> None:
    task = new_task()
    store = await TaskStore.open(url, migrate=True)
    try:
        await store.create_task(task, _first_event(task))
        assert await store.get_task(task.id) == task
        assert len(await store.events_after(task.id, 0)) == 1
    finally:
        await store.close()


async def test_unmigrated_database_is_reported(sqlite_url: str) -> None:
    store = await TaskStore.open(sqlite_url)
    try:
        await store.ping()
        with pytest.raises(DBAPIError, match="no such table"):
            await store.get_task("x")
    finally:
        await store.close()


async def test_ping_fails_when_the_database_is_down() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    store = await TaskStore.open("postgresql+asyncpg://postgres@127.0.0.1:1/switchboard")
    try:
        with pytest.raises(ConnectionRefusedError):
            await store.ping()
    finally:
        await store.close()


async def test_migrate_fails_when_the_database_is_down() -> None:
    with pytest.raises(ConnectionRefusedError):
        await migrate("postgresql+asyncpg://postgres@127.0.0.1:1/switchboard")
