"""TaskStore events: the batched commit, reading after a cursor, all-or-nothing writes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from switchboard.server.domain import (
    AgentChanged,
    LogRecord,
    OutputDelta,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskState,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from switchboard.server.store import TaskStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _deltas(task: Task, first: int, count: int) -> list[TaskEvent]:
    return [
        TaskEvent(task.id, seq, T0 + timedelta(microseconds=seq), OutputDelta(f"d{seq} "))
        for seq in range(first, first + count)
    ]


async def test_commit_writes_many_events_and_tasks_in_one_commit(
    store: TaskStore, add, new_task
) -> None:
    one, two = await add(new_task()), await add(new_task())
    events = _deltas(one, 2, 300) + _deltas(two, 2, 5)
    one_now = dataclasses.replace(
        one,
        state=TaskState.RUNNING,
        output_text="".join(e.payload.text for e in events[:300]),  # type: ignore[union-attr]
        agent="offline",
        attempts=1,
        usage=TokenUsage(1, 2, 3),
        start_time=T0 + timedelta(seconds=1),
        last_sequence=301,
    )
    two_now = dataclasses.replace(
        two,
        state=TaskState.FAILED,
        error=TaskError("INTERNAL", "it broke", "AGENT_ERROR"),
        end_time=T0 + timedelta(seconds=2),
        last_sequence=6,
        cached=True,
    )
    before = dataclasses.replace(store.stats)

    await store.commit(events, [one_now, two_now])

    assert store.stats.commits == before.commits + 1
    assert store.stats.events_written == before.events_written + 305
    assert await store.get_task(one.id) == one_now
    assert await store.get_task(two.id) == two_now
    stored = await store.events_after(one.id, 1)
    assert stored == events[:300]
    assert [e.sequence for e in await store.events_after(two.id, 0)] == [1, 2, 3, 4, 5, 6]


async def test_commit_with_only_tasks_or_only_events(store: TaskStore, add, new_task) -> None:
    task = await add(new_task())
    await store.commit([], [dataclasses.replace(task, state=TaskState.RUNNING)])
    await store.commit(_deltas(task, 2, 1), [])
    await store.commit([], [])  # nothing to write: no transaction at all

    assert store.stats.commits == 2
    got = await store.get_task(task.id)
    assert got is not None
    assert got.state is TaskState.RUNNING
    assert len(await store.events_after(task.id, 0)) == 2


async def test_events_after_cursor_and_limit(store: TaskStore, add, new_task) -> None:
    task = await add(new_task())
    other = await add(new_task())
    await store.commit(_deltas(task, 2, 20) + _deltas(other, 2, 3), [])

    assert [e.sequence for e in await store.events_after(task.id, 0)] == list(range(1, 22))
    assert [e.sequence for e in await store.events_after(task.id, 5, limit=4)] == [6, 7, 8, 9]
    assert [e.sequence for e in await store.events_after(task.id, 19)] == [20, 21]
    assert await store.events_after(task.id, 21) == []
    assert await store.events_after(task.id, 10_000) == []
    assert len(await store.events_after(task.id, -5)) == 21
    assert all(e.task_id == task.id for e in await store.events_after(task.id, 0))


async def test_every_payload_kind_round_trips_through_the_database(
    store: TaskStore, add, new_task
) -> None:
    task = await add(new_task())
    payloads = [
        StateChanged(TaskState.RUNNING, previous=TaskState.QUEUED, reason="started"),
        AgentChanged(agent="triage"),
        AgentChanged(agent="writer", previous="triage", handoff=True),
        OutputDelta("Grüße 🌍\n"),
        ToolCalled(call_id="c1", name="lookup", arguments_json='{"q": "a\\"b"}'),
        ToolReturned(call_id="c1", output="found", is_error=False),
        ToolReturned(call_id="c2", output="not found", is_error=True),
        UsageReported(TokenUsage(input_tokens=10, output_tokens=20, total_tokens=30)),
        LogRecord(level="INFO", message="halfway"),
        StateChanged(
            TaskState.TIMED_OUT,
            previous=TaskState.RUNNING,
            reason="deadline",
            error=TaskError("DEADLINE_EXCEEDED", "30 s passed", "TASK_TIMEOUT"),
        ),
    ]
    events = [
        TaskEvent(task.id, seq, T0 + timedelta(milliseconds=seq), payload)
        for seq, payload in enumerate(payloads, start=2)
    ]
    await store.commit(events, [])

    assert await store.events_after(task.id, 1) == events
    assert (await store.events_after(task.id, 0))[-1].terminal


async def test_failed_commit_writes_nothing(store: TaskStore, add, new_task) -> None:
    task = await add(new_task())
    await store.commit(_deltas(task, 2, 2), [])
    stats = dataclasses.replace(store.stats)
    finished = dataclasses.replace(task, state=TaskState.SUCCEEDED, output_text="done")

    # Sequence 3 is already stored: the whole batch, task update included, is rolled back.
    with pytest.raises(IntegrityError):
        await store.commit(_deltas(task, 4, 3) + _deltas(task, 3, 1), [finished])

    assert [e.sequence for e in await store.events_after(task.id, 0)] == [1, 2, 3]
    assert await store.get_task(task.id) == task
    assert store.stats == stats


async def test_duplicate_sequence_within_one_batch_writes_nothing(
    store: TaskStore, add, new_task
) -> None:
    task = await add(new_task())
    with pytest.raises(IntegrityError):
        await store.commit(_deltas(task, 2, 3) + _deltas(task, 2, 1), [])
    assert [e.sequence for e in await store.events_after(task.id, 0)] == [1]


async def test_events_of_an_unknown_task_are_refused(store: TaskStore, add, new_task) -> None:
    task = await add(new_task())
    ghost = new_task()
    with pytest.raises(IntegrityError):
        await store.commit(_deltas(task, 2, 1) + _deltas(ghost, 1, 1), [])
    assert [e.sequence for e in await store.events_after(task.id, 0)] == [1]
