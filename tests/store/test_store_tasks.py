"""TaskStore tasks: create/get, request_id dedupe, listing, recovery, bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from switchboard.server.domain import (
    Priority,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskSpec,
    TaskState,
    TokenUsage,
    ToolKind,
    ToolRef,
)
from switchboard.server.store import TaskStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _event(task: Task, sequence: int = 1) -> TaskEvent:
    return TaskEvent(task.id, sequence, task.create_time, StateChanged(TaskState.QUEUED))


async def test_full_task_round_trips(store: TaskStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    task = Task(
        id="0f8c2c1e-full",
        spec=TaskSpec(
            input="résumé 📄 " + "x" * 20_000,  # no length truncation anywhere
            instructions="Be brief.\nVery brief.",
            agent="writer",
            tools=(ToolRef(ToolKind.WEB_SEARCH), ToolRef(ToolKind.FUNCTION, "get_weather")),
            metadata={"team": "search", "ticket": "SB-1", "empty": ""},
            priority=Priority.HIGH,
            timeout=timedelta(seconds=12, milliseconds=345),
            no_cache=True,
        ),
        state=TaskState.FAILED,
        create_time=T0,
        owner="alice@example.com",
        request_id="req-1",
        output_text="partial 🙂 " * 3000,
        error=TaskError(code="DEADLINE_EXCEEDED", message="too slow", reason="TASK_TIMEOUT"),
        agent="writer-2",
        attempts=3,
        usage=TokenUsage(input_tokens=2**40, output_tokens=7, total_tokens=2**40 + 7),
        # Given in another zone: the same instant comes back, in UTC.
        start_time=datetime(2026, 3, 1, 14, 0, 1, 1, tzinfo=plus_two),
        end_time=datetime(2026, 3, 1, 12, 0, 2, 999999, tzinfo=UTC),
        last_sequence=1,
        cached=True,
    )
    stored, created = await store.create_task(task, _event(task))
    assert (stored, created) == (task, True)

    got = await store.get_task(task.id)
    assert got == task
    assert got is not None
    for moment in (got.create_time, got.start_time, got.end_time):
        assert moment is not None
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)
    assert got.start_time == datetime(2026, 3, 1, 12, 0, 1, 1, tzinfo=UTC)
    assert store.stats.events_written == 1
    assert await store.events_after(task.id, 0) == [_event(task)]


async def test_minimal_task_round_trips(store: TaskStore) -> None:
    task = Task(id="min", spec=TaskSpec(input="hi"), state=TaskState.QUEUED, create_time=T0)
    await store.create_task(task, _event(task))
    assert await store.get_task("min") == task


async def test_unknown_task_is_none(store: TaskStore) -> None:
    assert await store.get_task("nope") is None
    assert await store.events_after("nope", 0) == []


async def test_same_request_id_same_owner_returns_first_task(store: TaskStore, new_task) -> None:
    first = new_task(owner="alice", request_id="r1")
    again = new_task(owner="alice", request_id="r1", spec=TaskSpec(input="different"))

    assert await store.create_task(first, _event(first)) == (first, True)
    assert await store.create_task(again, _event(again)) == (first, False)

    assert await store.get_task(again.id) is None
    assert await store.events_after(again.id, 0) == []
    assert store.stats.events_written == 1


async def test_same_request_id_other_owner_is_a_new_task(store: TaskStore, new_task) -> None:
    alice = new_task(owner="alice", request_id="r1")
    bob = new_task(owner="bob", request_id="r1")
    assert (await store.create_task(alice, _event(alice)))[1]
    assert (await store.create_task(bob, _event(bob)))[1]
    assert len(await store.list_tasks()) == 2


async def test_empty_request_id_never_dedupes(store: TaskStore, new_task) -> None:
    for _ in range(3):
        task = new_task(owner="alice", request_id="")
        assert await store.create_task(task, _event(task)) == (task, True)
    assert len(await store.list_tasks(owner="alice")) == 3


async def test_concurrent_duplicates_create_one_task(store: TaskStore, new_task) -> None:
    tasks = [new_task(owner="alice", request_id="same") for _ in range(8)]

    results = await asyncio.gather(*(store.create_task(t, _event(t)) for t in tasks))

    winners = [task for task, created in results if created]
    assert len(winners) == 1
    assert {task.id for task, _ in results} == {winners[0].id}
    assert await store.list_tasks() == winners
    for task in tasks:
        expected = 1 if task.id == winners[0].id else 0
        assert len(await store.events_after(task.id, 0)) == expected


async def test_duplicate_task_id_is_an_error(store: TaskStore, add, new_task) -> None:
    task = await add(new_task())
    clash = new_task(id=task.id)
    with pytest.raises(IntegrityError):
        await store.create_task(clash, _event(clash))
    assert await store.get_task(task.id) == task


async def test_event_of_another_task_is_refused(store: TaskStore, new_task) -> None:
    task, other = new_task(), new_task()
    with pytest.raises(ValueError, match="event of task"):
        await store.create_task(task, _event(other))
    assert await store.get_task(task.id) is None


async def test_naive_datetime_is_refused(store: TaskStore, new_task) -> None:
    task = new_task(create_time=datetime(2026, 1, 1, 12, 0))
    with pytest.raises(StatementError) as raised:
        await store.create_task(task, _event(task))
    assert isinstance(raised.value.orig, ValueError)
    assert await store.get_task(task.id) is None


async def test_list_newest_first_with_filters(store: TaskStore, add, new_task) -> None:
    a = await add(new_task(owner="alice", spec=TaskSpec(input="a", agent="offline")))
    b = await add(new_task(owner="bob", spec=TaskSpec(input="b", agent="echo")))
    c = await add(
        new_task(owner="alice", spec=TaskSpec(input="c", agent="echo"), state=TaskState.RUNNING)
    )
    d = await add(new_task(owner="alice", spec=TaskSpec(input="d"), agent="echo"))

    assert await store.list_tasks() == [d, c, b, a]
    assert await store.list_tasks(owner="alice") == [d, c, a]
    assert await store.list_tasks(owner="carol") == []
    assert await store.list_tasks(owner="") == []
    assert await store.list_tasks(state=TaskState.RUNNING) == [c]
    assert await store.list_tasks(state=TaskState.SUCCEEDED) == []
    # `agent` is the agent the spec asked for, not the one that ran it.
    assert await store.list_tasks(agent="echo") == [c, b]
    assert await store.list_tasks(owner="alice", agent="echo", state=TaskState.RUNNING) == [c]
    assert await store.list_tasks(limit=2) == [d, c]


async def test_keyset_paging_across_equal_create_times(store: TaskStore, add, new_task) -> None:
    same = T0 + timedelta(hours=1)
    created = [await add(new_task(id=f"t{i:02d}", create_time=same)) for i in range(7)]
    created += [await add(new_task(id=f"u{i:02d}", create_time=T0)) for i in range(3)]
    expected = sorted(created, key=lambda t: (t.create_time, t.id), reverse=True)

    pages: list[list[Task]] = []
    cursor: tuple[datetime, str] | None = None
    while page := await store.list_tasks(limit=3, before=cursor):
        pages.append(page)
        cursor = (page[-1].create_time, page[-1].id)

    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [task for page in pages for task in page] == expected


async def test_keyset_cursor_from_another_zone(store: TaskStore, add, new_task) -> None:
    older = await add(new_task(create_time=T0))
    newer = await add(new_task(create_time=T0 + timedelta(microseconds=1)))
    plus_five = timezone(timedelta(hours=5))
    cursor = (newer.create_time.astimezone(plus_five), newer.id)
    assert await store.list_tasks(before=cursor) == [older]


@pytest.mark.parametrize("limit", [0, -1])
async def test_bad_limit_is_refused(store: TaskStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_tasks(limit=limit)
    with pytest.raises(ValueError, match="limit"):
        await store.events_after("t", 0, limit=limit)
