"""A task's life on the embedded default: accepted, run, stored, streamed."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.server.config import AgentConfig
from switchboard.server.domain import (
    AgentChanged,
    InvalidArgument,
    NotFound,
    OutputDelta,
    Priority,
    StateChanged,
    TaskSpec,
    TaskState,
    UsageReported,
)
from switchboard.server.orchestrator import NewTask
from tests.orchestrator.conftest import Harness, HarnessFactory, states


async def test_execute_runs_to_success_and_stores_every_event(harness: Harness) -> None:
    task = await harness.execute("summarise the quarterly numbers", instructions="be brief")

    assert task.state is TaskState.SUCCEEDED
    assert "summarise the quarterly numbers" in task.output_text
    assert task.agent == "assistant"
    assert task.attempts == 1
    assert task.usage.output_tokens > 0
    assert task.usage.total_tokens == task.usage.input_tokens + task.usage.output_tokens
    assert task.start_time is not None
    assert task.end_time is not None
    assert task.create_time <= task.start_time <= task.end_time

    events = await harness.events(task.id)
    assert [e.sequence for e in events] == list(range(1, task.last_sequence + 1))
    assert states(events) == [TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert isinstance(events[2].payload, AgentChanged)
    assert events[2].payload.agent == "assistant"
    deltas = [e.payload.text for e in events if isinstance(e.payload, OutputDelta)]
    assert len(deltas) > 1
    assert "".join(deltas) == task.output_text
    usage = [e.payload.usage for e in events if isinstance(e.payload, UsageReported)]
    assert sum(u.total_tokens for u in usage) == task.usage.total_tokens

    stored = await harness.store.get_task(task.id)
    assert stored == task


async def test_echo_agent_returns_its_input(make_harness: HarnessFactory) -> None:
    harness = await make_harness(AgentConfig(name="echo", model="echo"))
    task = await harness.execute("ping")
    assert (task.state, task.output_text) == (TaskState.SUCCEEDED, "ping")


async def test_submitted_tasks_run_without_watchers(harness: Harness) -> None:
    submitted = await harness.submit("nobody is watching")
    assert submitted.state is TaskState.QUEUED
    assert submitted.last_sequence == 1
    events = await harness.events(submitted.id)
    assert events[-1].payload == StateChanged(TaskState.SUCCEEDED, TaskState.RUNNING, "", None)
    assert (await harness.orchestrator.get(submitted.id)).state is TaskState.SUCCEEDED


async def test_request_id_returns_the_same_task_and_runs_it_once(harness: Harness) -> None:
    first, again = await asyncio.gather(
        harness.submit("once", request_id="req-1"), harness.submit("once", request_id="req-1")
    )
    assert first.id == again.id
    other = await harness.submit("once", request_id="req-2")
    assert other.id != first.id

    done = await harness.orchestrator.execute(NewTask(TaskSpec(input="once"), "req-1"))
    assert done.id == first.id
    assert done.state is TaskState.SUCCEEDED
    assert done.attempts == 1
    page = await harness.orchestrator.list_tasks()
    assert len(page.tasks) == 2


async def test_request_id_is_per_owner(harness: Harness) -> None:
    mine = await harness.orchestrator.submit(NewTask(TaskSpec(input="x"), "r"), owner="alice")
    theirs = await harness.orchestrator.submit(NewTask(TaskSpec(input="x"), "r"), owner="bob")
    assert mine.id != theirs.id
    with pytest.raises(NotFound):
        await harness.orchestrator.get(mine.id, owner="bob")


async def test_watch_resumes_from_every_sequence_without_gap_or_duplicate(
    harness: Harness,
) -> None:
    task = await harness.execute("one two three four five")
    everything = await harness.events(task.id)
    for after in range(len(everything) + 1):
        rest = await harness.events(task.id, after=after)
        assert rest == everything[after:]


async def test_many_watchers_see_the_same_live_stream(harness: Harness) -> None:
    task = await harness.submit("a b c d e f g h i j k l m n o p")
    streams = await asyncio.gather(*(harness.events(task.id) for _ in range(5)))
    assert all(stream == streams[0] for stream in streams)
    assert streams[0][-1].terminal
    assert [e.sequence for e in streams[0]] == list(range(1, len(streams[0]) + 1))


async def test_a_lagging_watcher_catches_up_from_the_store(harness: Harness) -> None:
    harness.bus._capacity = 1  # every subscriber lags on the first burst of deltas
    task = await harness.submit(" ".join(f"w{i}" for i in range(200)))
    events = await harness.events(task.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].terminal


async def test_deltas_are_written_in_batches(harness: Harness) -> None:
    before = harness.store.stats.commits
    task = await harness.execute(" ".join(f"word{i}" for i in range(400)))
    deltas = [e for e in await harness.events(task.id) if isinstance(e.payload, OutputDelta)]
    assert len(deltas) > 400
    assert harness.store.stats.commits - before < len(deltas) / 10


async def test_bad_specs_are_refused_with_every_violation_and_store_nothing(
    harness: Harness,
) -> None:
    spec = TaskSpec(input="", instructions="x" * 5001, agent="nobody", priority=Priority.HIGH)
    with pytest.raises(InvalidArgument) as refused:
        await harness.orchestrator.submit(NewTask(spec, request_id="r" * 129))
    fields = {v.field for v in refused.value.violations}
    assert fields == {"task.input", "task.instructions", "task.agent", "request_id"}
    assert (await harness.orchestrator.list_tasks()).tasks == []


async def test_a_batch_with_one_bad_item_creates_nothing(harness: Harness) -> None:
    batch = [NewTask(TaskSpec(input="fine")), NewTask(TaskSpec(input="x" * 10_001))]
    with pytest.raises(InvalidArgument) as refused:
        async for _ in harness.orchestrator.execute_batch(batch):
            pass
    assert [v.field for v in refused.value.violations] == ["requests[1].task.input"]
    assert (await harness.orchestrator.list_tasks()).tasks == []
    with pytest.raises(InvalidArgument):
        async for _ in harness.orchestrator.execute_batch([]):
            pass


async def test_batch_streams_every_result_with_its_index(harness: Harness) -> None:
    batch = [NewTask(TaskSpec(input=f"item {i}")) for i in range(12)]
    results = [item async for item in harness.orchestrator.execute_batch(batch)]
    assert sorted(index for index, _ in results) == list(range(12))
    for index, task in results:
        assert task.state is TaskState.SUCCEEDED
        assert f"item {index}" in task.output_text


async def test_unknown_tasks_are_not_found(harness: Harness) -> None:
    for call in (
        harness.orchestrator.get("nope"),
        harness.orchestrator.cancel("nope"),
        harness.events("nope"),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(InvalidArgument):
        await harness.orchestrator.get("")


async def test_cancel_of_a_finished_task_returns_it_unchanged(harness: Harness) -> None:
    task = await harness.execute("done already")
    again = await harness.orchestrator.cancel(task.id)
    assert again == task
    assert await harness.orchestrator.cancel(task.id) == task


async def test_list_pages_newest_first_with_filters(make_harness: HarnessFactory) -> None:
    harness = await make_harness(
        AgentConfig(name="assistant", model="offline"), AgentConfig(name="echo", model="echo")
    )
    made = [await harness.execute(f"t{i}", agent="echo" if i % 2 else "") for i in range(7)]
    seen, token = [], ""
    while True:
        page = await harness.orchestrator.list_tasks(page_size=3, page_token=token)
        seen += page.tasks
        token = page.next_page_token
        if not token:
            break
    assert [t.id for t in seen] == [t.id for t in reversed(made)]

    echo = await harness.orchestrator.list_tasks(agent="echo")
    assert [t.id for t in echo.tasks] == [t.id for t in reversed(made) if t.spec.agent == "echo"]
    succeeded = await harness.orchestrator.list_tasks(state=TaskState.SUCCEEDED)
    assert len(succeeded.tasks) == 7
    assert (await harness.orchestrator.list_tasks(state=TaskState.FAILED)).tasks == []

    first = await harness.orchestrator.list_tasks(page_size=2)
    for bad in ("garbage!", first.next_page_token[:-3]):
        with pytest.raises(InvalidArgument):
            await harness.orchestrator.list_tasks(page_size=2, page_token=bad)
    with pytest.raises(InvalidArgument):  # a token is bound to its filter
        await harness.orchestrator.list_tasks(agent="echo", page_token=first.next_page_token)
    for size in (-1, 1001):
        with pytest.raises(InvalidArgument):
            await harness.orchestrator.list_tasks(page_size=size)


async def test_agent_status_counts_outcomes_and_tokens(harness: Harness) -> None:
    task = await harness.execute("count me")
    status = harness.orchestrator.agent("assistant")
    assert status.default
    assert status.outcomes == {TaskState.SUCCEEDED: 1}
    assert status.usage == task.usage
    assert (status.in_flight, status.queued) == (0, 0)
    assert [a.name for a in harness.orchestrator.agents()] == ["assistant"]
    with pytest.raises(NotFound):
        harness.orchestrator.agent("ghost")


async def test_queued_tasks_survive_a_restart_and_run(harness: Harness) -> None:
    await harness.stop()
    # The stopped orchestrator refuses work; a new one on the same store takes over.
    with pytest.raises(Exception, match="shutting down"):
        await harness.submit("late")
    restarted = await harness.restart()
    task = await restarted.submit("after restart")
    assert (await restarted.events(task.id))[-1].terminal
