"""The durable task queue: replicas claim tasks from the database under leases.

A task row is the queue entry. A replica *claims* a task by taking its lease: it
writes its name (``lease_owner``), an expiry (``lease_expires``) and a new fencing
token (``lease_token`` + 1) in one UPDATE whose candidates come from a
``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: concurrent claimers skip each
other's rows instead of waiting; SQLite has one writer at a time and needs no
locking clause). Claimable are unfinished tasks with no lease or an expired one,
so the tasks of a replica that died (stopped renewing) go to the others.

Every write of a task's progress carries the token its writer holds
(:meth:`TaskStore.commit`): once another replica has claimed the task, the old
holder's writes are refused. Expiry times are this machine's wall clock: replicas
need clocks within a small fraction of the lease TTL of each other (NTP).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from switchboard.server.domain import Task, TaskState
from switchboard.server.store import codec
from switchboard.server.store.repository import LeaseTerms, TaskStore
from switchboard.server.store.schema import tasks

_UNFINISHED = (TaskState.QUEUED.value, TaskState.RUNNING.value)
_BEST_FIRST = (tasks.c.priority.desc(), tasks.c.create_time, tasks.c.id)


@dataclass(frozen=True, slots=True)
class Claim:
    """A task this replica now holds: its fencing token, and a pending cancellation."""

    task: Task
    token: int
    cancel_reason: str = ""


@dataclass(frozen=True, slots=True)
class Renewal:
    """The outcome of renewing leases: which were lost, which have a cancel request."""

    lost: set[str]
    cancels: dict[str, str]


class TaskQueue:
    """Claims, renews and releases leases on the tasks of ``store``'s database."""

    def __init__(self, store: TaskStore, owner: str, ttl: timedelta) -> None:
        """Claim as ``owner`` (this replica's unique name) for ``ttl`` at a time."""
        self._store = store
        self.owner = owner
        self.ttl = ttl

    def terms(self) -> LeaseTerms:
        """A lease for this replica starting now, to create a task already claimed."""
        return LeaseTerms(self.owner, _now() + self.ttl)

    async def claim(self, rooms: Mapping[str, int], limit: int) -> list[Claim]:
        """Claim up to ``limit`` tasks, at most ``rooms[agent]`` of each agent, best first.

        Best is the highest priority, then the oldest. Only agents in ``rooms`` with
        room left are considered.
        """
        agents = [agent for agent, room in rooms.items() if room > 0]
        if limit < 1 or not agents:
            return []
        # A materialized CTE: PostgreSQL may run a plain `IN (subquery)` more than once
        # in one UPDATE, claiming more than `limit` rows.
        candidates = (
            sa.select(tasks.c.id)
            .where(self._claimable(), tasks.c.requested_agent.in_(agents))
            .order_by(*_BEST_FIRST)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("candidates")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        claims = await self._take(tasks.c.id == candidates.c.id)
        claims.sort(key=lambda c: (-c.task.spec.priority, c.task.create_time, c.task.id))
        # One statement cannot cap each agent (PostgreSQL refuses FOR UPDATE next to a
        # window function): give back what went past an agent's room, rarely anything.
        taken: dict[str, int] = {}
        kept: list[Claim] = []
        excess: dict[str, int] = {}
        for claim in claims:
            agent = claim.task.spec.agent
            taken[agent] = taken.get(agent, 0) + 1
            if taken[agent] > rooms[agent]:
                excess[claim.task.id] = claim.token
            else:
                kept.append(claim)
        if excess:
            await self.release(excess)
        return kept

    async def claim_task(self, task_id: str) -> Claim | None:
        """Claim this one task if nobody holds it (to cancel or expire it); else None."""
        claims = await self._take(tasks.c.id == task_id)
        return claims[0] if claims else None

    async def has_claimable(self, agents: Collection[str]) -> bool:
        """True when some task of ``agents`` waits to be claimed (a read, no lock)."""
        if not agents:
            return False
        query = (
            sa.select(tasks.c.id)
            .where(self._claimable(), tasks.c.requested_agent.in_(list(agents)))
            .limit(1)
        )
        async with self._store.engine.connect() as connection:
            return (await connection.execute(query)).first() is not None

    async def renew(self, tokens: Mapping[str, int]) -> Renewal:
        """Extend the leases held with ``tokens``; report lost ones and cancel requests."""
        if not tokens:
            return Renewal(set(), {})
        statement = (
            tasks.update()
            .where(
                tasks.c.id.in_(list(tokens)),
                tasks.c.lease_owner == self.owner,
                tasks.c.state.in_(_UNFINISHED),
            )
            .values(lease_expires=_now() + self.ttl)
            .returning(tasks.c.id, tasks.c.lease_token, tasks.c.cancel_reason)
        )
        async with self._store.writing() as connection:
            rows = (await connection.execute(statement)).all()
        held = {row.id: row for row in rows if row.lease_token == tokens[row.id]}
        cancels = {task_id: row.cancel_reason for task_id, row in held.items() if row.cancel_reason}
        return Renewal(set(tokens) - set(held), cancels)

    async def release(self, tokens: Mapping[str, int]) -> None:
        """Give up the leases held with ``tokens`` (the tasks stay as they are)."""
        if not tokens:
            return
        statement = (
            tasks.update()
            .where(
                tasks.c.id == sa.bindparam("_task_id"),
                tasks.c.lease_token == sa.bindparam("_token"),
            )
            .values(lease_owner=None, lease_expires=None)
        )
        async with self._store.writing() as connection:
            await connection.execute(
                statement, [{"_task_id": i, "_token": t} for i, t in tokens.items()]
            )

    async def claim_orphans(self, agents: Collection[str]) -> list[Claim]:
        """Claim the unfinished tasks of agents not in ``agents`` (no longer configured)."""
        return await self._take(tasks.c.requested_agent.not_in(list(agents)))

    async def release_own(self) -> None:
        """Give up every lease held under this owner's name (by an earlier run of it)."""
        statement = (
            tasks.update()
            .where(tasks.c.lease_owner == self.owner, tasks.c.state.in_(_UNFINISHED))
            .values(lease_owner=None, lease_expires=None)
        )
        async with self._store.writing() as connection:
            await connection.execute(statement)

    async def request_cancel(self, task_id: str, reason: str) -> bool:
        """Ask whoever holds the unfinished task to cancel it; False if it has ended."""
        statement = (
            tasks.update()
            .where(tasks.c.id == task_id, tasks.c.state.in_(_UNFINISHED))
            .values(cancel_reason=sa.func.coalesce(tasks.c.cancel_reason, reason))
        )
        async with self._store.writing() as connection:
            result = await connection.execute(statement)
        return result.rowcount > 0

    async def queued_counts(self) -> dict[str, int]:
        """Queued tasks per requested agent, across every replica."""
        query = (
            sa.select(tasks.c.requested_agent, sa.func.count())
            .where(tasks.c.state == TaskState.QUEUED.value)
            .group_by(tasks.c.requested_agent)
        )
        async with self._store.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {agent: count for agent, count in rows}

    def _claimable(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            tasks.c.state.in_(_UNFINISHED),
            sa.or_(tasks.c.lease_expires.is_(None), tasks.c.lease_expires < _now()),
        )

    async def _take(self, which: sa.ColumnElement[bool]) -> list[Claim]:
        statement = (
            tasks.update()
            .where(which, self._claimable())
            .values(
                lease_owner=self.owner,
                lease_token=tasks.c.lease_token + 1,
                lease_expires=_now() + self.ttl,
            )
            .returning(*tasks.c)
        )
        async with self._store.writing() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_claim(row) for row in rows]


def _claim(row: codec.Row) -> Claim:
    return Claim(codec.task_from_row(row), row["lease_token"], row["cancel_reason"] or "")


def _now() -> datetime:
    return datetime.now(UTC)
