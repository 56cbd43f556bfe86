"""A real orchestrator on a real store and bus, with agents on real runtimes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from switchboard.server.agents import AgentRuntime, build_runtimes
from switchboard.server.config import AgentConfig, RetryConfig, Settings
from switchboard.server.domain import StateChanged, Task, TaskEvent, TaskSpec, TaskState
from switchboard.server.events import InProcessBus, RedisBus
from switchboard.server.orchestrator import NewTask, Orchestrator
from switchboard.server.store import TaskStore

RuntimeFactory = Callable[[Settings], dict[str, AgentRuntime]]
# Retries without real waits: tests that retry stay fast.
QUICK_RETRY = RetryConfig(
    initial_backoff=timedelta(milliseconds=5), max_backoff=timedelta(milliseconds=20)
)


@dataclass
class Harness:
    """Everything a test needs to drive the orchestrator and look at its store."""

    settings: Settings
    store: TaskStore
    bus: InProcessBus | RedisBus
    orchestrator: Orchestrator
    runtimes: RuntimeFactory
    registry: list[Harness]
    _stopped: bool = field(default=False)

    async def execute(self, text: str = "hello", **spec: Any) -> Task:
        """Execute a task with ``text`` as input."""
        return await self.orchestrator.execute(NewTask(TaskSpec(input=text, **spec)))

    async def submit(self, text: str = "hello", request_id: str = "", **spec: Any) -> Task:
        """Submit a task with ``text`` as input."""
        return await self.orchestrator.submit(NewTask(TaskSpec(input=text, **spec), request_id))

    async def events(self, task_id: str, after: int = 0) -> list[TaskEvent]:
        """Every event of the task after ``after``, through WatchTask."""
        return [event async for event in self.orchestrator.watch(task_id, after_sequence=after)]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the orchestrator (a server shutdown)."""
        if not self._stopped:
            self._stopped = True
            await self.orchestrator.stop(grace)

    async def restart(self, grace: float = 5.0) -> Harness:
        """Stop this orchestrator and start a new one on the same store."""
        await self.stop(grace)
        return await start_harness(self.settings, self.store, self.runtimes, self.registry)


async def start_harness(
    settings: Settings,
    store: TaskStore,
    runtimes: RuntimeFactory,
    registry: list[Harness],
    clock: Callable[[], float] = time.monotonic,
    *,
    bus: InProcessBus | RedisBus | None = None,
) -> Harness:
    bus = InProcessBus() if bus is None else bus
    orchestrator = Orchestrator(settings, store, bus, runtimes(settings), clock=clock)
    await orchestrator.start()
    harness = Harness(settings, store, bus, orchestrator, runtimes, registry)
    registry.append(harness)
    return harness


def make_settings(database_url: str, *agents: AgentConfig, **overrides: Any) -> Settings:
    """Settings for a test: the given agents (the first is the default)."""
    agents = agents or (AgentConfig(name="assistant", model="offline", retry=QUICK_RETRY),)
    return Settings(
        database_url=database_url,
        agents=list(agents),
        default_agent=agents[0].name,
        **overrides,
    )


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(database_url: str) -> AsyncIterator[HarnessFactory]:
    """Start orchestrators on a fresh database (SQLite, then PostgreSQL); stop them after."""
    started: list[Harness] = []
    stores: list[TaskStore] = []

    async def make(
        *agents: AgentConfig,
        runtimes: RuntimeFactory = build_runtimes,
        clock: Callable[[], float] = time.monotonic,
        **overrides: Any,
    ) -> Harness:
        settings = make_settings(database_url, *agents, **overrides)
        store = await TaskStore.open(settings.database_url, migrate=True)
        stores.append(store)
        return await start_harness(settings, store, runtimes, started, clock)

    yield make
    for harness in started:
        await harness.stop(grace=0)
    for store in stores:
        await store.close()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    """An orchestrator with the default offline agent."""
    return await make_harness()


FAST = timedelta(seconds=1)


def states(events: list[TaskEvent]) -> list[TaskState]:
    """The states the events move the task through, in order."""
    return [e.payload.state for e in events if isinstance(e.payload, StateChanged)]


async def assert_interrupted_once_then_done(harness: Harness, task_id: str) -> None:
    """The task ran, went back to the queue once, ran again and succeeded, gap-free."""
    events = await harness.events(task_id)
    assert states(events) == [
        TaskState.QUEUED,
        TaskState.RUNNING,
        TaskState.QUEUED,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert (await harness.orchestrator.get(task_id)).attempts == 2
