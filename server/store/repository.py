"""The task store: tasks and their events in SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from switchboard.server.domain import Task, TaskEvent, TaskState
from switchboard.server.store import codec
from switchboard.server.store.engine import create_engine
from switchboard.server.store.migrate import upgrade
from switchboard.server.store.schema import task_events, tasks

_NEWEST_FIRST = (tasks.c.create_time.desc(), tasks.c.id.desc())

# One UPDATE per task written; its SET clause comes from the parameters' keys
# (codec.task_progress). `_task_id` because no bind parameter may share a column's name;
# `_token` is the fencing check (see commit).
_UPDATE_PROGRESS = tasks.update().where(
    tasks.c.id == sa.bindparam("_task_id"), tasks.c.lease_token == sa.bindparam("_token")
)


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """A claim written with a new task: who holds it, until when."""

    owner: str
    expires: datetime


@dataclass(slots=True)
class StoreStats:
    """Plain counters, for tests and metrics."""

    commits: int = 0
    """Transactions committed by :meth:`TaskStore.commit`."""
    events_written: int = 0
    """Events inserted by :meth:`TaskStore.create_task` and :meth:`TaskStore.commit`."""


class TaskStore:
    """Reads and writes tasks and their events; every write is one transaction.

    Holds domain objects only. Database errors (such as ``IntegrityError`` for an
    event sequence written twice) propagate after the transaction is rolled back.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.stats = StoreStats()
        # SQLite has one writer at a time; a second one spins in its busy handler
        # (sleeping up to tens of ms per try). Queue writers here instead.
        self._write_turn: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @classmethod
    async def open(cls, url: str, *, migrate: bool = False) -> TaskStore:
        """Open a store on ``url``; with ``migrate``, apply migrations to head first.

        SQLite connections get WAL, foreign keys and a busy timeout; ``:memory:``
        shares one connection. Migrating creates a missing SQLite file.
        """
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The engine of the store's database (other stores of that database share it)."""
        return self._engine

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, behind this process's other SQLite writers (see __init__)."""
        async with self._write_turn, self._engine.begin() as connection:
            yield connection

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self._engine.connect() as connection:
            await connection.execute(sa.select(1))

    async def create_task(
        self, task: Task, event: TaskEvent, *, lease: LeaseTerms | None = None
    ) -> tuple[Task, bool]:
        """Insert a task and its first event; return ``(task, created)``.

        With ``lease``, the new task is claimed at once by ``lease.owner`` with
        fencing token 1 (see store/queue.py). When ``task.request_id`` is set and the
        same owner already has a task with it, nothing is inserted and the existing
        task comes back with False. The unique constraint decides, so concurrent
        duplicates create one task.
        """
        if event.task_id != task.id:
            raise ValueError(f"event of task {event.task_id!r} given for task {task.id!r}")
        row = codec.task_to_row(task)
        if lease is not None:
            row.update(lease_owner=lease.owner, lease_token=1, lease_expires=lease.expires)
        try:
            async with self.writing() as connection:
                await connection.execute(tasks.insert(), row)
                await connection.execute(task_events.insert(), codec.event_to_row(event))
        except IntegrityError:
            existing = await self._by_request_id(task.owner, task.request_id)
            if existing is None:
                raise
            return existing, False
        self.stats.events_written += 1
        return task, True

    async def get_task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        return await self._one(tasks.c.id == task_id)

    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        state: TaskState | None = None,
        agent: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
    ) -> list[Task]:
        """Tasks newest first (create time, then id, descending), filtered.

        ``owner`` None means any owner; ``agent`` matches the agent the spec asked
        for. ``before`` is a keyset cursor, the (create_time, id) of the last task of
        the previous page: only tasks after it in this order come back.
        """
        _check_limit(limit)
        query = sa.select(tasks).order_by(*_NEWEST_FIRST).limit(limit)
        if owner is not None:
            query = query.where(tasks.c.owner == owner)
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        if agent is not None:
            query = query.where(tasks.c.requested_agent == agent)
        if before is not None:
            time, task_id = before
            query = query.where(
                sa.or_(
                    tasks.c.create_time < time,
                    sa.and_(tasks.c.create_time == time, tasks.c.id < task_id),
                )
            )
        return await self._tasks(query)

    async def events_after(
        self, task_id: str, after_sequence: int, limit: int = 1000
    ) -> list[TaskEvent]:
        """The task's events with sequence > ``after_sequence``, ascending, at most ``limit``."""
        _check_limit(limit)
        query = (
            sa.select(task_events)
            .where(task_events.c.task_id == task_id, task_events.c.sequence > after_sequence)
            .order_by(task_events.c.sequence)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [codec.event_from_row(row) for row in rows]

    async def commit(
        self,
        events: Sequence[TaskEvent],
        tasks: Sequence[Task],
        tokens: Mapping[str, int] | None = None,
        released: Collection[str] = (),
    ) -> set[str]:
        """Insert ``events`` and update ``tasks``' mutable fields, in one transaction.

        Fencing: each task is written only while its lease token is still the one in
        ``tokens`` (0, for a task never claimed, when it is missing there). A task
        another replica claimed since is left alone, its events are not inserted, and
        its id comes back in the returned set. Tasks that end, and those in
        ``released``, give up their lease in the same write.

        Either everything else is written or, on error, nothing. Calling it with
        nothing to write does nothing (and counts no commit).
        """
        if not events and not tasks:
            return set()
        tokens = tokens or {}
        fenced: set[str] = set()
        async with self.writing() as connection:
            # Updates first: on SQLite the first statement takes the write lock (a read
            # first could not upgrade once another process has written).
            for task in tasks:
                values = codec.task_progress(task)
                if task.state.terminal or task.id in released:
                    values.update(lease_owner=None, lease_expires=None)
                result = await connection.execute(
                    _UPDATE_PROGRESS,
                    {"_task_id": task.id, "_token": tokens.get(task.id, 0), **values},
                )
                if result.rowcount == 0:
                    fenced.add(task.id)
            kept = [event for event in events if event.task_id not in fenced]
            if kept:
                await connection.execute(
                    task_events.insert(), [codec.event_to_row(event) for event in kept]
                )
        self.stats.commits += 1
        self.stats.events_written += len(kept)
        return fenced

    async def _by_request_id(self, owner: str, request_id: str) -> Task | None:
        if not request_id:
            return None
        return await self._one(sa.and_(tasks.c.owner == owner, tasks.c.request_id == request_id))

    async def _one(self, where: sa.ColumnElement[bool]) -> Task | None:
        found = await self._tasks(sa.select(tasks).where(where))
        return found[0] if found else None

    async def _tasks(self, query: sa.Select[Any]) -> list[Task]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [codec.task_from_row(row) for row in rows]


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
