"""Migrations: applied in-loop, idempotent, and identical to the models' schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from switchboard.server.domain import StateChanged, Task, TaskEvent, TaskSpec, TaskState
from switchboard.server.store import TaskStore, codec, migrate
from switchboard.server.store.engine import create_engine
from switchboard.server.store.migrate import alembic_config
from switchboard.server.store.schema import metadata, task_events, tasks


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
            assert await connection.run_sync(_version) == "0004"
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


def _alembic(connection: Connection, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    step(config, revision)


def _task_columns(connection: Connection) -> set[str]:
    return {column["name"] for column in sa.inspect(connection).get_columns("tasks")}


async def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.downgrade, "base")
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await migrate(database_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_0002_adds_the_cache_columns_and_drops_them_keeping_every_task(
    database_url: str, new_task
) -> None:
    old = new_task(state=TaskState.SUCCEEDED, output_text="before the cache", last_sequence=1)
    later = {"no_cache", "cached", "deadline"}  # columns of 0002 and later
    old_row = {k: v for k, v in codec.task_to_row(old).items() if k not in later}
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.upgrade, "0001")
            assert {"no_cache", "cached"}.isdisjoint(await connection.run_sync(_task_columns))
            await connection.execute(sa.insert(tasks).values(old_row))
            await connection.execute(
                sa.insert(task_events).values(codec.event_to_row(_first_event(old)))
            )
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.upgrade, "head")
        store = TaskStore(engine)
        # A task written before 0002 reads as neither opted out nor cached.
        assert await store.get_task(old.id) == old
        new = new_task(spec=TaskSpec(input="x", no_cache=True), cached=True)
        await store.create_task(new, _first_event(new))
        assert await store.get_task(new.id) == new

        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.downgrade, "0001")
            assert {"no_cache", "cached"}.isdisjoint(await connection.run_sync(_task_columns))
            assert await connection.run_sync(_version) == "0001"
            # No task and no event is lost on the way down (a copy-and-move of
            # `tasks` on SQLite would cascade-delete every event).
            for table in (tasks, task_events):
                count = sa.select(sa.func.count()).select_from(table)
                assert (await connection.execute(count)).scalar() == 2, table.name
        await migrate(database_url)
        assert await store.get_task(old.id) == old
        assert await store.get_task(new.id) == replace(new, spec=TaskSpec(input="x"), cached=False)
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
