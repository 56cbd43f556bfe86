"""Task, agent, breaker and cache series from a real orchestrator running real tasks."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from switchboard.server.config import AgentConfig, BreakerConfig, RetryConfig
from switchboard.server.domain import Task, TaskSpec, TaskState
from switchboard.server.events import InProcessBus
from switchboard.server.orchestrator import NewTask, Orchestrator
from switchboard.server.store import TaskStore
from switchboard.server.telemetry import Metrics, MetricsServer
from tests.orchestrator.conftest import make_settings
from tests.scripted_model import ScriptedModel, provider_timeout, scripted_runtimes
from tests.telemetry.series import labels, series

NO_RETRY = RetryConfig(attempts=1)
AGENTS = (
    AgentConfig(name="assistant", retry=NO_RETRY, max_concurrency=1),
    AgentConfig(
        name="fragile",
        retry=NO_RETRY,
        breaker=BreakerConfig(failure_threshold=1, reset_timeout=timedelta(hours=1)),
    ),
)


@dataclass
class Watched:
    orchestrator: Orchestrator
    metrics: Metrics
    model: ScriptedModel

    async def execute(self, text: str, agent: str = "") -> Task:
        return await self.orchestrator.execute(NewTask(TaskSpec(input=text, agent=agent)))

    def value(self, name: str, **label_values: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, label_values)

    def tasks(self) -> dict[str, float]:
        found = series(self.metrics.registry, "agent_tasks_total")
        return {dict(key)["status"]: value for key, value in found.items()}


@pytest.fixture
async def watched(sqlite_url: str) -> AsyncIterator[Watched]:
    settings = make_settings(sqlite_url, *AGENTS)
    store = await TaskStore.open(sqlite_url, migrate=True)
    model = ScriptedModel()
    metrics = Metrics()
    orchestrator = Orchestrator(
        settings, store, InProcessBus(), scripted_runtimes(model)(settings), observer=metrics
    )
    metrics.track(orchestrator)
    await orchestrator.start()
    try:
        yield Watched(orchestrator, metrics, model)
    finally:
        await orchestrator.stop(0)
        await store.close()


async def test_ended_tasks_are_counted_by_status_with_their_tokens(watched: Watched) -> None:
    assert watched.tasks() == {"succeeded": 0, "failed": 0, "cancelled": 0, "timed_out": 0}
    succeeded = await watched.execute("hello there")
    watched.model.fail("broken", ValueError("bad request"))
    failed = await watched.execute("broken")
    assert (succeeded.state, failed.state) == (TaskState.SUCCEEDED, TaskState.FAILED)
    assert watched.tasks() == {"succeeded": 1, "failed": 1, "cancelled": 0, "timed_out": 0}

    tokens = series(watched.metrics.registry, "llm_tokens_total")
    used = succeeded.usage + failed.usage
    assert used.input_tokens > 0
    assert used.output_tokens > 0
    assert tokens == {
        labels(agent_id="assistant", kind="input"): used.input_tokens,
        labels(agent_id="assistant", kind="output"): used.output_tokens,
        labels(agent_id="fragile", kind="input"): 0,
        labels(agent_id="fragile", kind="output"): 0,
    }
    assert watched.value("agent_task_duration_seconds_count") == 2
    assert succeeded.start_time is not None
    assert succeeded.end_time is not None
    ran = (succeeded.end_time - succeeded.start_time).total_seconds()
    assert watched.value("agent_task_duration_seconds_sum") >= ran


async def test_queue_and_in_progress_are_read_live(watched: Watched) -> None:
    gate = watched.model.hold("blocker")
    blocker = asyncio.create_task(watched.execute("blocker"))
    await watched.model.wait_started()
    waiting = await watched.orchestrator.submit(NewTask(TaskSpec(input="waiting")))
    assert watched.value("agent_tasks_in_progress") == 1
    assert watched.value("agent_queue_length") == 1

    await watched.orchestrator.cancel(waiting.id)
    assert watched.value("agent_queue_length") == 0
    gate.set()
    assert (await blocker).state is TaskState.SUCCEEDED
    assert watched.value("agent_tasks_in_progress") == 0
    assert watched.tasks() == {"succeeded": 1, "failed": 0, "cancelled": 1, "timed_out": 0}
    # The cancelled task never ran: only the blocker has a duration.
    assert watched.value("agent_task_duration_seconds_count") == 1


async def test_an_open_breaker_shows_in_health_state_and_opens(watched: Watched) -> None:
    def by_agent(name: str) -> dict[str, float]:
        found = series(watched.metrics.registry, name)
        return {dict(key)["agent_id"]: value for key, value in found.items()}

    assert by_agent("agent_health_status") == {"assistant": 1, "fragile": 1}
    assert by_agent("circuit_breaker_state") == {"assistant": 0, "fragile": 0}
    assert by_agent("circuit_breaker_open_total") == {"assistant": 0, "fragile": 0}
    watched.model.fail("down", provider_timeout())
    assert (await watched.execute("down", agent="fragile")).state is TaskState.FAILED
    assert by_agent("agent_health_status") == {"assistant": 1, "fragile": 0}
    assert by_agent("circuit_breaker_state") == {"assistant": 0, "fragile": 2}
    assert by_agent("circuit_breaker_open_total") == {"assistant": 0, "fragile": 1}


async def test_cache_hits_and_misses_are_counted(watched: Watched) -> None:
    first = await watched.execute("the same question")
    again = await watched.execute("the same question")
    assert (first.cached, again.cached) == (False, True)
    assert watched.value("cache_hits_total") == 1
    assert watched.value("cache_misses_total") == 1
    assert watched.value("cache_errors_total") == 0
    # The durable queue's counters are there from the start.
    for name in ("store_write_errors_total", "task_leases_lost_total", "task_reclaims_total"):
        assert watched.value(name) == 0


async def test_batch_tasks_are_counted_by_status(watched: Watched) -> None:
    watched.model.fail("bad item", ValueError("bad request"))
    batch = [NewTask(TaskSpec(input=text)) for text in ("good item", "bad item", "good too")]
    ended = [task async for _, task in watched.orchestrator.execute_batch(batch)]
    assert sorted(task.state.value for task in ended) == ["failed", "succeeded", "succeeded"]
    found = series(watched.metrics.registry, "agent_batch_tasks_total")
    assert {dict(key)["status"]: value for key, value in found.items()} == {
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "timed_out": 0,
    }
    # A single Execute is no batch task.
    await watched.execute("alone")
    assert watched.value("agent_batch_tasks_total", status="succeeded") == 2
    assert watched.tasks()["succeeded"] == 3


async def test_the_live_series_are_scraped_over_http(watched: Watched) -> None:
    await watched.execute("hello")
    server = MetricsServer(watched.metrics, watched.orchestrator.ready)
    port = await server.start("127.0.0.1:0")
    try:
        body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        ready = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
    finally:
        await server.stop()
    assert ready == "ready\n"
    assert series(body, "agent_tasks_total") == {
        labels(status="succeeded"): 1,
        labels(status="failed"): 0,
        labels(status="cancelled"): 0,
        labels(status="timed_out"): 0,
    }
    assert series(body, "agent_health_status") == {
        labels(agent_id="assistant"): 1,
        labels(agent_id="fragile"): 1,
    }
    assert series(body, "agent_queue_length") == {labels(): 0}
    assert series(body, "cache_misses_total") == {labels(): 1}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
