"""The durable queue: claims, leases, fencing, cancel requests (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from switchboard.server.domain import (
    LogRecord,
    Priority,
    StateChanged,
    TaskEvent,
    TaskSpec,
    TaskState,
)
from switchboard.server.store import TaskQueue, TaskStore
from switchboard.server.store.schema import tasks

TTL = timedelta(seconds=30)
# Leases born expired: what a replica that died leaves behind, without waiting.
EXPIRED = timedelta(seconds=-1)


def _queue(store: TaskStore, owner: str, ttl: timedelta = TTL) -> TaskQueue:
    return TaskQueue(store, owner, ttl)


async def test_claims_the_best_tasks_first_and_each_once(store: TaskStore, add, new_task) -> None:
    low = await add(new_task(spec=TaskSpec(input="low", agent="a", priority=Priority.LOW)))
    old = await add(new_task(spec=TaskSpec(input="old", agent="a")))
    high = await add(new_task(spec=TaskSpec(input="high", agent="a", priority=Priority.HIGH)))
    new = await add(new_task(spec=TaskSpec(input="new", agent="a")))
    one, two = _queue(store, "one"), _queue(store, "two")

    first = await one.claim({"a": 10}, limit=2)
    assert [c.task.id for c in first] == [high.id, old.id]
    assert [c.token for c in first] == [1, 1]
    second = await two.claim({"a": 10}, limit=10)
    assert [c.task.id for c in second] == [new.id, low.id]
    assert await one.claim({"a": 10}, limit=10) == []
    assert not await one.has_claimable(["a"])


async def test_only_agents_with_room_and_at_most_their_room(
    store: TaskStore, add, new_task
) -> None:
    a_tasks = [await add(new_task(spec=TaskSpec(input=f"a{i}", agent="a"))) for i in range(3)]
    b_task = await add(new_task(spec=TaskSpec(input="b", agent="b")))
    queue = _queue(store, "one")

    claims = await queue.claim({"a": 1, "b": 0}, limit=5)
    assert [c.task.id for c in claims] == [a_tasks[0].id]
    # The others were given back: another replica may take them.
    other = await _queue(store, "two").claim({"a": 5, "b": 5}, limit=5)
    assert sorted(c.task.id for c in other) == sorted([a_tasks[1].id, a_tasks[2].id, b_task.id])


async def test_concurrent_claimers_never_share_a_task(store: TaskStore, add, new_task) -> None:
    made = [await add(new_task(spec=TaskSpec(input=f"t{i}", agent="a"))) for i in range(40)]
    queues = [_queue(store, f"replica-{i}") for i in range(4)]

    async def drain(queue: TaskQueue) -> list[str]:
        taken: list[str] = []
        while claims := await queue.claim({"a": 3}, limit=3):
            taken += [c.task.id for c in claims]
        return taken

    results = await asyncio.gather(*(drain(q) for q in queues))
    claimed = [task_id for result in results for task_id in result]
    assert sorted(claimed) == sorted(t.id for t in made)  # every task, exactly once


async def test_an_expired_lease_is_claimed_again_with_a_new_token(
    store: TaskStore, add, new_task
) -> None:
    task = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    dead = _queue(store, "dead", ttl=EXPIRED)
    (first,) = await dead.claim({"a": 1}, limit=1)
    live = _queue(store, "live")
    (second,) = await live.claim({"a": 1}, limit=1)
    assert (first.token, second.token) == (1, 2)
    assert second.task.id == task.id
    # A live lease is not up for grabs.
    assert await _queue(store, "third").claim({"a": 1}, limit=1) == []
    assert await _queue(store, "third").claim_task(task.id) is None


async def test_writes_with_an_old_token_are_fenced(store: TaskStore, add, new_task) -> None:
    task = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    (old,) = await _queue(store, "old", ttl=EXPIRED).claim({"a": 1}, limit=1)
    (new,) = await _queue(store, "new").claim({"a": 1}, limit=1)

    running = replace(old.task, state=TaskState.RUNNING, last_sequence=2)
    event = TaskEvent(task.id, 2, task.create_time, StateChanged(TaskState.RUNNING))
    assert await store.commit([event], [running], {task.id: old.token}) == {task.id}
    assert await store.events_after(task.id, 0) == [
        TaskEvent(task.id, 1, task.create_time, StateChanged(TaskState.QUEUED))
    ]
    assert (await store.get_task(task.id)) == task

    # The holder of the current token writes; other tasks in the same commit are unharmed.
    other = await add(new_task(spec=TaskSpec(input="y", agent="a")))
    log = TaskEvent(other.id, 2, other.create_time, LogRecord("info", "hi"))
    fenced = await store.commit(
        [event, log],
        [running, replace(other, last_sequence=2)],
        {task.id: new.token},
    )
    assert fenced == set()
    assert [e.sequence for e in await store.events_after(task.id, 0)] == [1, 2]
    assert [e.sequence for e in await store.events_after(other.id, 0)] == [1, 2]


async def test_the_end_of_a_task_gives_up_its_lease(store: TaskStore, add, new_task) -> None:
    task = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    (claim,) = await _queue(store, "one").claim({"a": 1}, limit=1)
    done = replace(claim.task, state=TaskState.SUCCEEDED, last_sequence=2)
    end = TaskEvent(task.id, 2, task.create_time, StateChanged(TaskState.SUCCEEDED))
    assert await store.commit([end], [done], {task.id: claim.token}) == set()
    row = await _lease_row(store, task.id)
    assert (row.lease_owner, row.lease_expires, row.lease_token) == (None, None, 1)
    assert await _queue(store, "two").claim_task(task.id) is None  # ended: not claimable


async def test_a_release_with_the_write_lets_another_replica_claim_at_once(
    store: TaskStore, add, new_task
) -> None:
    task = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    (claim,) = await _queue(store, "one").claim({"a": 1}, limit=1)
    requeued = replace(claim.task, last_sequence=2)
    event = TaskEvent(task.id, 2, task.create_time, LogRecord("info", "stopping"))
    await store.commit([event], [requeued], {task.id: claim.token}, released={task.id})
    (again,) = await _queue(store, "two").claim({"a": 1}, limit=1)
    assert again.token == 2


async def test_renewal_keeps_held_leases_and_reports_lost_ones_and_cancels(
    store: TaskStore, add, new_task
) -> None:
    kept = await add(new_task(spec=TaskSpec(input="kept", agent="a")))
    lost = await add(new_task(spec=TaskSpec(input="lost", agent="b")))
    one = _queue(store, "one", ttl=EXPIRED)
    claims = {c.task.id: c.token for c in await one.claim({"a": 1, "b": 1}, limit=2)}
    # Renewing with a real TTL before anyone else claims: both are kept.
    one.ttl = TTL
    renewal = await one.renew({lost.id: claims[lost.id]})
    assert renewal.lost == set()
    # Now "lost" expires and another replica takes it.
    one.ttl = EXPIRED
    await one.renew({lost.id: claims[lost.id]})
    (taken,) = await _queue(store, "two").claim({"b": 1}, limit=1)
    assert taken.task.id == lost.id
    assert await _queue(store, "two").request_cancel(kept.id, "stop it")
    assert await _queue(store, "two").request_cancel(kept.id, "a later reason")  # first one kept

    one.ttl = TTL
    renewal = await one.renew(claims)
    assert renewal.lost == {lost.id}
    assert renewal.cancels == {kept.id: "stop it"}


async def test_cancel_requests_reach_only_unfinished_tasks(store: TaskStore, add, new_task) -> None:
    done = await add(new_task(state=TaskState.SUCCEEDED))
    queued = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    queue = _queue(store, "one")
    assert not await queue.request_cancel(done.id, "too late")
    assert not await queue.request_cancel("no-such-task", "nothing")
    assert await queue.request_cancel(queued.id, "stop")
    (claim,) = await queue.claim({"a": 1}, limit=1)
    assert claim.cancel_reason == "stop"


async def test_orphans_and_queued_counts(store: TaskStore, add, new_task) -> None:
    for agent in ("a", "a", "b", "gone"):
        await add(new_task(spec=TaskSpec(input="x", agent=agent)))
    await add(new_task(spec=TaskSpec(input="x", agent="a"), state=TaskState.SUCCEEDED))
    queue = _queue(store, "one")
    assert await queue.queued_counts() == {"a": 2, "b": 1, "gone": 1}
    (orphan,) = await queue.claim_orphans(["a", "b"])
    assert orphan.task.spec.agent == "gone"
    assert await queue.claim_orphans(["a", "b"]) == []  # held now


async def test_a_task_created_with_a_lease_is_held_with_token_one(
    store: TaskStore, new_task
) -> None:
    queue = _queue(store, "one")
    task = new_task(spec=TaskSpec(input="x", agent="a"))
    first = TaskEvent(task.id, 1, task.create_time, StateChanged(TaskState.QUEUED))
    await store.create_task(task, first, lease=queue.terms())
    assert await _queue(store, "two").claim({"a": 1}, limit=1) == []
    row = await _lease_row(store, task.id)
    assert (row.lease_owner, row.lease_token) == ("one", 1)


async def _lease_row(store: TaskStore, task_id: str) -> sa.Row[tuple[str, int, object]]:
    query = sa.select(tasks.c.lease_owner, tasks.c.lease_token, tasks.c.lease_expires).where(
        tasks.c.id == task_id
    )
    async with store.engine.connect() as connection:
        return (await connection.execute(query)).one()


async def test_a_restarted_replica_frees_the_leases_of_its_earlier_life(
    store: TaskStore, add, new_task
) -> None:
    task = await add(new_task(spec=TaskSpec(input="x", agent="a")))
    await _queue(store, "pod-0").claim({"a": 1}, limit=1)
    await _queue(store, "pod-1").release_own()  # another name: nothing freed
    assert await _queue(store, "pod-1").claim({"a": 1}, limit=1) == []
    await _queue(store, "pod-0").release_own()
    (again,) = await _queue(store, "pod-1").claim({"a": 1}, limit=1)
    assert (again.task.id, again.token) == (task.id, 2)
