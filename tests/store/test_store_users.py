"""The user store on SQLite and PostgreSQL, and migration 0003 that makes its table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from switchboard.server.domain import StateChanged, TaskEvent, TaskState
from switchboard.server.store import TaskStore, User, UserExists, UserStore, codec, migrate
from switchboard.server.store.engine import create_engine
from switchboard.server.store.migrate import alembic_config
from switchboard.server.store.schema import task_events
from switchboard.server.store.schema import tasks as task_table

_T0 = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)


@pytest.fixture
async def users(database_url: str) -> AsyncIterator[UserStore]:
    store = await UserStore.open(database_url, migrate=True)
    try:
        yield store
    finally:
        await store.close()


def _user(name: str = "alice", **fields: object) -> User:
    values: dict[str, object] = {
        "username": name,
        "password_hash": f"$argon2id$hash-of-{name}",
        "scopes": ("tasks:read", "tasks:write"),
        "created_at": _T0,
    }
    return User(**(values | fields))  # type: ignore[arg-type]


async def test_a_user_comes_back_as_it_was_added(users: UserStore) -> None:
    alice = _user(owner="acme", scopes=("admin",))
    await users.add_user(alice)
    assert await users.get_user("alice") == alice
    assert await users.get_user("Alice") is None  # names are case-sensitive
    assert await users.get_user("nobody") is None


async def test_times_come_back_in_utc(users: UserStore) -> None:
    paris = timezone(timedelta(hours=1))
    await users.add_user(_user(created_at=_T0.astimezone(paris)))
    found = await users.get_user("alice")
    assert found is not None
    assert found.created_at == _T0
    assert found.created_at.tzinfo == UTC


async def test_users_are_listed_by_name(users: UserStore) -> None:
    assert await users.list_users() == []
    for name in ("carol", "alice", "bob"):
        await users.add_user(_user(name))
    assert [user.username for user in await users.list_users()] == ["alice", "bob", "carol"]


async def test_a_taken_name_is_refused_and_the_first_user_kept(users: UserStore) -> None:
    await users.add_user(_user())
    with pytest.raises(UserExists, match="'alice' exists already"):
        await users.add_user(_user(password_hash="$argon2id$other", scopes=("admin",)))
    assert await users.get_user("alice") == _user()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": ""}, "invalid user name"),
        ({"username": "two words"}, "invalid user name"),
        ({"username": "x" * 129}, "invalid user name"),
        ({"username": "tab\there"}, "invalid user name"),
        ({"scopes": ("tasks:read", "two words")}, "invalid scope"),
        ({"scopes": ("",)}, "invalid scope"),
        ({"password_hash": ""}, "needs a password hash"),
    ],
)
async def test_invalid_users_are_refused(
    users: UserStore, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await users.add_user(replace(_user(), **fields))  # type: ignore[arg-type]
    assert await users.list_users() == []


async def test_names_may_be_email_addresses(users: UserStore) -> None:
    await users.add_user(_user("ops.bot+ci@example.com"))
    assert await users.get_user("ops.bot+ci@example.com") is not None


async def test_disable_and_enable(users: UserStore) -> None:
    await users.add_user(_user())
    assert await users.set_disabled("alice", True)
    assert await users.get_user("alice") == _user(disabled=True)
    assert await users.set_disabled("alice", False)
    assert await users.get_user("alice") == _user()
    assert not await users.set_disabled("nobody", True)


async def test_replace_a_password_hash(users: UserStore) -> None:
    await users.add_user(_user())
    assert await users.set_password_hash("alice", "$argon2id$new")
    assert await users.get_user("alice") == _user(password_hash="$argon2id$new")
    assert not await users.set_password_hash("nobody", "$argon2id$new")
    with pytest.raises(ValueError, match="needs a password hash"):
        await users.set_password_hash("alice", "")


def test_a_user_repr_shows_no_hash() -> None:
    assert "argon2id" not in repr(_user())


async def test_a_user_store_shares_the_task_store_engine(database_url: str) -> None:
    tasks = await TaskStore.open(database_url, migrate=True)
    try:
        users = UserStore(tasks.engine)
        await users.add_user(_user())
        await users.close()  # not its engine: it stays open
        assert await users.get_user("alice") == _user()
        await tasks.ping()
    finally:
        await tasks.close()


def _alembic(connection: Connection, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    step(config, revision)


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def _version(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_0003_adds_the_users_table_and_drops_it_keeping_every_task(
    database_url: str, new_task
) -> None:
    task = new_task()
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.upgrade, "0002")
            assert "users" not in await connection.run_sync(_tables)
            # As a server of that version wrote it (without the columns of 0004).
            row = {k: v for k, v in codec.task_to_row(task).items() if k != "deadline"}
            first = TaskEvent(task.id, 1, task.create_time, StateChanged(TaskState.QUEUED))
            await connection.execute(sa.insert(task_table).values(row))
            await connection.execute(sa.insert(task_events).values(codec.event_to_row(first)))
        tasks = TaskStore(engine)

        await migrate(database_url)
        users = UserStore(engine)
        await users.add_user(_user())
        assert await users.get_user("alice") == _user()

        async with engine.begin() as connection:
            await connection.run_sync(_alembic, command.downgrade, "0002")
            assert "users" not in await connection.run_sync(_tables)
            assert await connection.run_sync(_version) == "0002"

        await migrate(database_url)
        assert await users.list_users() == []  # the table came back, empty
        assert await tasks.get_task(task.id) == task
    finally:
        await engine.dispose()
