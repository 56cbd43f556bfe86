"""Scheduling, cancellation, time limits, retries, shutdown and recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from switchboard.server.config import AgentConfig, BreakerConfig, QueueConfig, RetryConfig
from switchboard.server.domain import (
    LogRecord,
    OutputDelta,
    Priority,
    TaskSpec,
    TaskState,
    Unavailable,
)
from switchboard.server.orchestrator import NewTask
from tests.orchestrator.conftest import (
    Harness,
    HarnessFactory,
    assert_interrupted_once_then_done,
    states,
)
from tests.scripted_model import ScriptedModel, provider_timeout, scripted_runtimes


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
async def scripted(make_harness: HarnessFactory, model: ScriptedModel) -> Harness:
    return await make_harness(runtimes=scripted_runtimes(model))


async def test_priority_order_then_first_come_first_served(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    harness = await make_harness(
        runtimes=scripted_runtimes(model), queue=QueueConfig(max_concurrency=1)
    )
    gate = model.hold("blocker")
    await harness.submit("blocker")
    await model.wait_started()
    for text, priority in [
        ("low", Priority.LOW),
        ("medium-1", Priority.MEDIUM),
        ("high-1", Priority.HIGH),
        ("medium-2", Priority.MEDIUM),
        ("high-2", Priority.HIGH),
    ]:
        await harness.submit(text, priority=priority)
    gate.set()
    order = await model.wait_started(5)
    assert order == ["high-1", "high-2", "medium-1", "medium-2", "low"]


async def test_per_agent_cap_does_not_hold_back_other_agents(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    harness = await make_harness(
        AgentConfig(name="slow", max_concurrency=1),
        AgentConfig(name="other"),
        runtimes=scripted_runtimes(model),
    )
    gate = model.hold("slow-1")
    await harness.submit("slow-1", agent="slow")
    assert await model.wait_started() == ["slow-1"]
    await harness.submit("slow-2", agent="slow")
    other = await harness.submit("other-1", agent="other")
    assert await model.wait_started() == ["other-1"]
    assert (await harness.events(other.id))[-1].terminal
    status = harness.orchestrator.agent("slow")
    assert (status.in_flight, status.queued) == (1, 1)
    gate.set()
    assert await model.wait_started() == ["slow-2"]


async def test_global_cap_limits_running_tasks(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    harness = await make_harness(
        runtimes=scripted_runtimes(model), queue=QueueConfig(max_concurrency=2)
    )
    gates = [model.hold(f"t{i}") for i in range(3)]
    tasks = [await harness.submit(f"t{i}") for i in range(3)]
    started = await model.wait_started(2)
    assert model.started.empty()
    gates[int(started[0][1])].set()
    (third,) = await model.wait_started()
    assert third not in started
    for gate in gates:
        gate.set()
    for task in tasks:
        assert (await harness.events(task.id))[-1].payload.state is TaskState.SUCCEEDED


async def test_cancel_a_queued_task(make_harness: HarnessFactory, model: ScriptedModel) -> None:
    harness = await make_harness(
        runtimes=scripted_runtimes(model), queue=QueueConfig(max_concurrency=1)
    )
    gate = model.hold("blocker")
    await harness.submit("blocker")
    await model.wait_started()
    queued = await harness.submit("never runs")
    cancelled = await harness.orchestrator.cancel(queued.id)
    assert cancelled.state is TaskState.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.code == "CANCELLED"
    assert states(await harness.events(queued.id)) == [TaskState.QUEUED, TaskState.CANCELLED]
    gate.set()
    assert harness.orchestrator.agent("assistant").queued == 0
    assert await harness.orchestrator.cancel(queued.id) == cancelled


async def test_cancel_a_running_task_stops_the_model(
    scripted: Harness, model: ScriptedModel
) -> None:
    model.hold("long job")
    task = await scripted.submit("long job")
    await model.wait_started()
    cancelled = await scripted.orchestrator.cancel(task.id)
    assert cancelled.state is TaskState.CANCELLED
    assert await model.closed.get() == "long job"
    assert states(await scripted.events(task.id)) == [
        TaskState.QUEUED,
        TaskState.RUNNING,
        TaskState.CANCELLED,
    ]
    assert (await scripted.store.get_task(task.id)) == cancelled


async def test_execute_caller_going_away_cancels_the_task(
    scripted: Harness, model: ScriptedModel
) -> None:
    model.hold("abandoned")
    call = asyncio.create_task(scripted.execute("abandoned"))
    await model.wait_started()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    (task,) = (await scripted.orchestrator.list_tasks()).tasks
    assert task.state is TaskState.CANCELLED
    assert "caller went away" in task.error.message


async def test_task_timeout_ends_timed_out(scripted: Harness, model: ScriptedModel) -> None:
    model.hold("too slow")
    task = await scripted.execute("too slow", timeout=timedelta(seconds=1))
    assert task.state is TaskState.TIMED_OUT
    assert task.error is not None
    assert task.error.code == "DEADLINE_EXCEEDED"
    assert await model.closed.get() == "too slow"


async def test_call_deadline_shorter_than_timeout_ends_timed_out(
    scripted: Harness, model: ScriptedModel
) -> None:
    model.hold("deadline")
    task = await scripted.orchestrator.execute(
        NewTask(TaskSpec(input="deadline", timeout=timedelta(seconds=60))), deadline=0.3
    )
    assert task.state is TaskState.TIMED_OUT


async def test_call_deadline_while_queued_ends_timed_out(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    harness = await make_harness(
        runtimes=scripted_runtimes(model), queue=QueueConfig(max_concurrency=1)
    )
    gate = model.hold("blocker")
    await harness.submit("blocker")
    await model.wait_started()
    task = await harness.orchestrator.execute(NewTask(TaskSpec(input="waits")), deadline=0.2)
    assert task.state is TaskState.TIMED_OUT
    assert task.start_time is None
    gate.set()


async def test_retryable_failures_are_retried(scripted: Harness, model: ScriptedModel) -> None:
    model.fail("flaky", provider_timeout(), provider_timeout())
    task = await scripted.execute("flaky")
    assert task.state is TaskState.SUCCEEDED
    assert task.attempts == 3
    logs = [e.payload for e in await scripted.events(task.id) if isinstance(e.payload, LogRecord)]
    assert [log.level for log in logs] == ["warning", "info", "warning", "info"]


async def test_retries_are_bounded_by_attempts(scripted: Harness, model: ScriptedModel) -> None:
    model.fail("down", *(provider_timeout() for _ in range(5)))
    task = await scripted.execute("down")
    assert task.state is TaskState.FAILED
    assert task.attempts == 3
    assert task.error is not None
    assert task.error.code == "UNAVAILABLE"
    status = scripted.orchestrator.agent("assistant")
    assert status.outcomes == {TaskState.FAILED: 1}
    assert "timed out" in status.last_error


async def test_non_retryable_failure_fails_at_once(scripted: Harness, model: ScriptedModel) -> None:
    model.fail("broken", ValueError("bad request"))
    task = await scripted.execute("broken")
    assert (task.state, task.attempts) == (TaskState.FAILED, 1)
    assert "bad request" in task.error.message


async def test_shutdown_lets_running_tasks_finish_within_grace(
    scripted: Harness, model: ScriptedModel
) -> None:
    gate = model.hold("finishing")
    task = await scripted.submit("finishing")
    await model.wait_started()
    stopping = asyncio.create_task(scripted.stop(grace=30))
    gate.set()
    await stopping
    assert (await scripted.store.get_task(task.id)).state is TaskState.SUCCEEDED


async def test_shutdown_requeues_what_outlives_the_grace_and_restart_runs_it(
    scripted: Harness, model: ScriptedModel
) -> None:
    gate = model.hold("interrupted")
    task = await scripted.submit("interrupted")
    await model.wait_started()
    await scripted.stop(grace=0.05)
    stored = await scripted.store.get_task(task.id)
    assert stored.state is TaskState.QUEUED
    gate.set()
    restarted = await scripted.restart()
    await assert_interrupted_once_then_done(restarted, task.id)


async def test_restart_after_a_crash_requeues_running_tasks(
    scripted: Harness, model: ScriptedModel
) -> None:
    task = await scripted.execute("crashed")
    # What a crash leaves behind: the task RUNNING in the store, nobody running it (its
    # lease, token 1 from the creation, is not held: as if it had expired).
    running = replace(task, state=TaskState.RUNNING, attempts=1, end_time=None, error=None)
    assert await scripted.store.commit([], [running], {task.id: 1}) == set()
    restarted = await scripted.restart()
    (done,) = [t for t in (await restarted.orchestrator.list_tasks()).tasks]
    events = await restarted.events(done.id, after=task.last_sequence)
    assert states(events) == [TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert events[0].payload.reason == "its replica stopped; queued again"


async def test_restart_fails_tasks_interrupted_on_every_attempt(
    scripted: Harness, model: ScriptedModel
) -> None:
    task = await scripted.execute("poison")
    running = replace(task, state=TaskState.RUNNING, attempts=3, end_time=None, error=None)
    assert await scripted.store.commit([], [running], {task.id: 1}) == set()
    restarted = await scripted.restart()
    await restarted.events(task.id, after=task.last_sequence)  # through the terminal one
    failed = await restarted.orchestrator.get(task.id)
    assert failed.state is TaskState.FAILED
    assert failed.error.reason == "TASK_INTERRUPTED"


async def test_breaker_opens_fails_fast_then_probes_and_closes(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    now = [0.0]
    breaker = BreakerConfig(
        failure_threshold=2, reset_timeout=timedelta(seconds=60), success_threshold=2
    )
    agent = AgentConfig(name="assistant", retry=RetryConfig(attempts=1), breaker=breaker)
    harness = await make_harness(agent, runtimes=scripted_runtimes(model), clock=lambda: now[0])
    for text in ("down-1", "down-2"):
        model.fail(text, provider_timeout())
        assert (await harness.execute(text)).state is TaskState.FAILED
    status = harness.orchestrator.agent("assistant")
    assert (status.healthy, status.circuit_state) == (False, "open")

    with pytest.raises(Unavailable) as refused:
        await harness.submit("refused while open")
    assert refused.value.reason == "CIRCUIT_OPEN"
    assert refused.value.retry_after == timedelta(seconds=60)
    assert len((await harness.orchestrator.list_tasks()).tasks) == 2

    now[0] += 60  # the reset period passes: the next tasks are probes
    assert harness.orchestrator.agent("assistant").circuit_state == "half_open"
    first = await harness.execute("probe-1")
    assert first.state is TaskState.SUCCEEDED
    assert harness.orchestrator.agent("assistant").circuit_state == "half_open"
    await harness.execute("probe-2")
    status = harness.orchestrator.agent("assistant")
    assert (status.healthy, status.circuit_state) == (True, "closed")


async def test_queued_tasks_fail_fast_when_the_breaker_opens(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    breaker = BreakerConfig(failure_threshold=1, reset_timeout=timedelta(seconds=60))
    agent = AgentConfig(
        name="assistant", retry=RetryConfig(attempts=1), breaker=breaker, max_concurrency=1
    )
    harness = await make_harness(agent, runtimes=scripted_runtimes(model))
    gate = model.hold("failing")
    model.fail("failing", provider_timeout())
    first = await harness.submit("failing")
    await model.wait_started()
    queued = await harness.submit("behind it")
    gate.set()
    assert (await harness.events(first.id))[-1].payload.state is TaskState.FAILED
    events = await harness.events(queued.id)
    assert events[-1].payload.state is TaskState.FAILED
    failed = await harness.orchestrator.get(queued.id)
    assert failed.error.reason == "CIRCUIT_OPEN"
    assert failed.error.code == "UNAVAILABLE"
    assert failed.attempts == 1


async def test_a_cached_result_replays_its_events_without_calling_the_model(
    scripted: Harness, model: ScriptedModel
) -> None:
    first = await scripted.execute("the same question")
    assert await model.wait_started() == ["the same question"]
    again = await scripted.execute("the same question")
    assert model.started.empty()
    assert (again.cached, first.cached) == (True, False)
    assert again.output_text == first.output_text
    assert again.usage.total_tokens == 0  # nothing was spent on it
    replayed = await scripted.events(again.id)
    original = await scripted.events(first.id)
    deltas = [e.payload for e in original if isinstance(e.payload, OutputDelta)]
    assert [e.payload for e in replayed if isinstance(e.payload, OutputDelta)] == deltas
    assert replayed[-1].payload.state is TaskState.SUCCEEDED

    fresh = await scripted.execute("the same question", no_cache=True)
    assert await model.wait_started() == ["the same question"]
    assert fresh.cached is False
    other = await scripted.execute("the same question", instructions="differently")
    assert await model.wait_started() == ["the same question"]
    assert other.cached is False


async def test_a_batch_is_refused_whole_when_one_agent_is_unavailable(
    make_harness: HarnessFactory, model: ScriptedModel
) -> None:
    broken = AgentConfig(
        name="broken",
        retry=RetryConfig(attempts=1),
        breaker=BreakerConfig(failure_threshold=1, reset_timeout=timedelta(seconds=60)),
    )
    harness = await make_harness(
        AgentConfig(name="assistant"), broken, runtimes=scripted_runtimes(model)
    )
    model.fail("down", provider_timeout())
    await harness.execute("down", agent="broken")
    before = len((await harness.orchestrator.list_tasks()).tasks)
    batch = [NewTask(TaskSpec(input="fine")), NewTask(TaskSpec(input="x", agent="broken"))]
    with pytest.raises(Unavailable):
        async for _ in harness.orchestrator.execute_batch(batch):
            pass
    assert len((await harness.orchestrator.list_tasks()).tasks) == before
