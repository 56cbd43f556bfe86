"""Fixtures for the task store tests: an open, migrated store on each database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchboard.server.domain import StateChanged, Task, TaskEvent, TaskSpec, TaskState
from switchboard.server.store import TaskStore

_T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    """A migrated store on a fresh database (SQLite file, then PostgreSQL)."""
    opened = await TaskStore.open(database_url, migrate=True)
    try:
        yield opened
    finally:
        await opened.close()


NewTask = Callable[..., Task]


@pytest.fixture
def new_task() -> NewTask:
    """Build a QUEUED task with a unique id; keyword arguments override Task fields."""
    ids = itertools.count(1)

    def build(**fields: Any) -> Task:
        number = next(ids)
        defaults: dict[str, Any] = {
            "id": f"task-{number:04d}",
            "spec": TaskSpec(input=f"input {number}", agent="offline"),
            "state": TaskState.QUEUED,
            "create_time": _T0 + timedelta(seconds=number),
        }
        return Task(**{**defaults, **fields})

    return build


Add = Callable[[Task], Awaitable[Task]]


@pytest.fixture
def add(store: TaskStore) -> Add:
    """Create a task in the store with its first event (QUEUED, sequence 1)."""

    async def create(task: Task) -> Task:
        event = TaskEvent(task.id, 1, task.create_time, StateChanged(TaskState.QUEUED))
        stored, created = await store.create_task(task, event)
        assert created
        return stored

    return create
