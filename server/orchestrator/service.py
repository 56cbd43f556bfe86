"""The orchestrator's front door: every operation the API offers, in domain terms."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from opentelemetry import trace

from switchboard.server.agents import AgentRuntime
from switchboard.server.cache import CacheStats, MemoryCache, ResultCache
from switchboard.server.config import Settings
from switchboard.server.domain import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskSpec,
    TaskState,
    Unavailable,
)
from switchboard.server.events import EventBus
from switchboard.server.orchestrator import limits, paging
from switchboard.server.orchestrator.breaker import CircuitBreaker, CircuitState
from switchboard.server.orchestrator.journal import Journal
from switchboard.server.orchestrator.observer import NoObserver, TaskObserver
from switchboard.server.orchestrator.runner import TaskRunner, Worker
from switchboard.server.orchestrator.scheduler import Scheduler
from switchboard.server.orchestrator.spans import store_span, traced_run
from switchboard.server.orchestrator.status import AgentStatus, agent_status
from switchboard.server.orchestrator.tracked import TrackedTask, utcnow
from switchboard.server.orchestrator.watch import watch_events
from switchboard.server.store import TaskStore
from switchboard.server.telemetry.tracing import tracer_or_global

_log = logging.getLogger(__name__)
# Task inputs and outputs, logged only when log_payloads is on (and at debug level).
_payloads = logging.getLogger("switchboard.payloads")

# Execute ends its task this long (at most) before the call's deadline, so the
# caller receives the TIMED_OUT task instead of a bare DEADLINE_EXCEEDED.
_DEADLINE_MARGIN = 0.25
_CALLER_GONE = "cancelled: the Execute caller went away"


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to create: the spec as received and its optional idempotency key."""

    spec: TaskSpec
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of ListTasks."""

    tasks: list[Task]
    next_page_token: str


class Orchestrator:
    """Accepts, schedules, runs, cancels and streams tasks.

    ``owner`` is the caller's identity (empty when auth is off): it owns the tasks
    it creates, and a task is visible only to its owner; where ``owner`` may be None
    (an admin), every task is visible. ``deadline`` is the caller's remaining time in seconds, or
    None when the call has no deadline.
    """

    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        bus: EventBus,
        runtimes: Mapping[str, AgentRuntime],
        *,
        cache: ResultCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: TaskObserver | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """Take over ``runtimes`` and ``cache`` (closed by ``stop``).

        ``cache`` defaults to one in this process; ``clock`` drives the breakers;
        ``observer`` (metrics) is told about every task that ends; ``tracer`` (default:
        the global one) makes the spans of tasks and store writes.
        """
        self._settings = settings
        self._tracer = tracer_or_global(tracer)
        self._store = store
        self._bus = bus
        self._workers = {
            agent.name: Worker(agent, runtimes[agent.name], CircuitBreaker(agent.breaker, clock))
            for agent in settings.agents
        }
        self._offered_tools = {name: w.runtime.tools for name, w in self._workers.items()}
        self._scheduler = Scheduler(
            settings.queue.max_concurrency,
            {agent.name: agent.max_concurrency for agent in settings.agents},
        )
        self._journal = Journal(
            store,
            bus,
            flush_interval=settings.store.flush_interval.total_seconds(),
            max_batch=settings.store.max_batch,
            tracer=self._tracer,
        )
        self._cache = cache or MemoryCache()
        self._observer = observer or NoObserver()
        self._runner = TaskRunner(self._ended, self._cache)
        self._tracked: dict[str, TrackedTask] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Recover unfinished tasks from the store and start the workers."""
        self._journal.start()
        for task in await self._store.unfinished_tasks():
            await self._recover(task)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="task-dispatcher")

    async def stop(self, grace: float) -> None:
        """Stop taking work; let running tasks finish for ``grace`` s, then requeue them.

        Queued tasks stay QUEUED in the store; interrupted ones go back to QUEUED
        with a StateChanged event. Both run when the server starts again.
        """
        self._stopping = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for timer in self._timers.values():
            timer.cancel()
        patience = self._settings.store.shutdown_write_timeout.total_seconds()
        runners = [t.runner for t in self._tracked.values() if t.runner is not None]
        late: set[asyncio.Task[None]] = set()
        if runners:
            _, late = await asyncio.wait(runners, timeout=grace)
            for runner in late:
                runner.cancel()
            if late:
                _log.warning("requeueing %d tasks still running after the grace period", len(late))
                # Time for each to record its requeue; a store that is down makes them wait.
                _, late = await asyncio.wait(late, timeout=patience)
        await self._journal.stop(patience)
        if late:  # they were waiting for writes the journal just gave up
            await asyncio.wait(late)
        # The orchestrator owns what runs tasks: provider clients and the cache.
        for worker in self._workers.values():
            await worker.runtime.aclose()
        await self._cache.aclose()

    async def ready(self) -> bool:
        """True when the store answers and the workers run."""
        if self._stopping or self._dispatcher is None or self._dispatcher.done():
            return False
        try:
            await self._store.ping()
        except Exception:
            _log.warning("readiness: the store does not answer", exc_info=True)
            return False
        return True

    # -- creating and running --------------------------------------------------------

    async def submit(self, new: NewTask, *, owner: str = "") -> Task:
        """Validate and queue a task; a repeated request_id returns the first task."""
        self._validate([new], "task", "request_id")
        return (await self._create(new, owner, None)).task

    async def execute(
        self, new: NewTask, *, owner: str = "", deadline: float | None = None
    ) -> Task:
        """Run a task to its end and return it; cancelling the caller cancels the task."""
        self._validate([new], "task", "request_id")
        tracked = await self._create(new, owner, self._deadline_at(deadline))
        return await self._wait_final(tracked)

    async def execute_batch(
        self, batch: Sequence[NewTask], *, owner: str = "", deadline: float | None = None
    ) -> AsyncGenerator[tuple[int, Task], None]:
        """Validate all, then run all; yield (index, final task) as each ends."""
        violations = limits.batch_violations(len(batch))
        if not violations:
            self._validate(batch, "requests[{i}].task", "requests[{i}].request_id")
        limits.raise_if_any(violations)
        deadline_at = self._deadline_at(deadline)
        # All or nothing: refuse the batch before creating any of it.
        self._admit([new.spec.agent or self._settings.default_agent for new in batch])
        created = [await self._create(new, owner, deadline_at) for new in batch]
        waiters = {
            asyncio.ensure_future(self._wait_final(tracked)): index
            for index, tracked in enumerate(created)
        }
        try:
            pending = set(waiters)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for waiter in sorted(done, key=waiters.__getitem__):
                    task = waiter.result()
                    self._observer.batch_task_ended(task)
                    yield waiters[waiter], task
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _validate(self, batch: Sequence[NewTask], spec_path: str, request_id_path: str) -> None:
        violations: list[FieldViolation] = []
        for index, new in enumerate(batch):
            violations += limits.spec_violations(
                new.spec, self._settings, self._offered_tools, spec_path.format(i=index)
            )
            violations += limits.request_id_violations(
                new.request_id, request_id_path.format(i=index)
            )
        limits.raise_if_any(violations)

    @staticmethod
    def _deadline_at(remaining: float | None) -> float | None:
        if remaining is None:
            return None
        margin = min(_DEADLINE_MARGIN, remaining * 0.1)
        return asyncio.get_running_loop().time() + remaining - margin

    def _admit(self, agents: Sequence[str]) -> None:
        """Refuse new tasks for ``agents`` the service cannot take now."""
        if self._stopping:
            raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")
        if len(self._scheduler) + len(agents) > self._settings.queue.max_queued:
            raise ResourceExhausted(
                "the task queue is full", reason="QUEUE_FULL", retry_after=timedelta(seconds=1)
            )
        for agent in dict.fromkeys(agents):
            breaker = self._workers[agent].breaker
            if breaker.state is CircuitState.OPEN:
                raise Unavailable(
                    f"agent {agent!r} is unavailable: its provider keeps failing "
                    "(circuit breaker open)",
                    reason="CIRCUIT_OPEN",
                    retry_after=breaker.retry_after,
                )

    async def _create(self, new: NewTask, owner: str, deadline: float | None) -> TrackedTask:
        spec = limits.with_defaults(new.spec, self._settings)
        self._admit([spec.agent])
        now = utcnow()
        task = Task(
            id=str(uuid.uuid4()),
            spec=spec,
            state=TaskState.QUEUED,
            create_time=now,
            owner=owner,
            request_id=new.request_id,
            last_sequence=1,
        )
        first = TaskEvent(task.id, 1, now, StateChanged(TaskState.QUEUED, None, "accepted"))
        with store_span(self._tracer, "store.create_task"):
            stored, created = await self._store.create_task(task, first)
        if not created:
            # A repeated request_id: the first request's task, live if it runs here.
            return self._tracked.get(stored.id) or TrackedTask(stored, self._journal)
        tracked = TrackedTask(stored, self._journal, deadline)
        self._track(tracked)
        if self._settings.log_payloads:  # off by default: inputs may be confidential
            _payloads.debug(
                "task %s input", task.id, extra={"task_id": task.id, "input": spec.input}
            )
        if deadline is not None:
            self._timers[task.id] = asyncio.create_task(self._expire_queued(tracked, deadline))
        await self._bus.publish([first])
        return tracked

    def _track(self, tracked: TrackedTask) -> None:
        task = tracked.task
        self._tracked[task.id] = tracked
        self._scheduler.push(task.id, task.spec.agent, task.spec.priority)

    async def _wait_final(self, tracked: TrackedTask) -> Task:
        task = tracked.task
        if task.state.terminal:
            return task
        if self._tracked.get(task.id) is not tracked:
            # Not (yet) run by this orchestrator, e.g. a duplicate request racing the
            # first one's creation: follow its events to the end instead.
            async with contextlib.aclosing(
                watch_events(self._store, self._bus, task.id, task.last_sequence)
            ) as events:
                async for _ in events:
                    pass
            return await self.get(task.id, owner=task.owner)
        try:
            await tracked.finished.wait()
        except asyncio.CancelledError:
            # On shutdown the task is requeued rather than cancelled with its caller.
            if not self._stopping:
                await asyncio.shield(self._cancel_tracked(tracked, _CALLER_GONE))
            raise
        return tracked.task

    async def _expire_queued(self, tracked: TrackedTask, deadline: float) -> None:
        """End the task TIMED_OUT if the Execute deadline passes while it is queued."""
        await asyncio.sleep(deadline - asyncio.get_running_loop().time())
        self._timers.pop(tracked.task.id, None)
        if self._scheduler.remove(tracked.task.id):
            message = "the deadline passed while the task was queued"
            error = TaskError("DEADLINE_EXCEEDED", message, "TASK_TIMED_OUT")
            await self._finish_queued(tracked, TaskState.TIMED_OUT, error)

    async def _finish_queued(
        self, tracked: TrackedTask, state: TaskState, error: TaskError
    ) -> None:
        await tracked.transition(state, error.message, error)
        self._ended(tracked, state, release=False)

    async def _dispatch(self) -> None:
        while True:
            task_id, agent = await self._scheduler.take()
            tracked = self._tracked[task_id]
            tracked.runner = asyncio.create_task(
                traced_run(
                    self._tracer,
                    tracked,
                    agent,
                    functools.partial(self._runner.run, tracked, self._workers[agent]),
                ),
                name=f"task-{task_id}",
            )

    def _ended(self, tracked: TrackedTask, state: TaskState, *, release: bool = True) -> None:
        """A run (or a queued task) ended in ``state``; update the books."""
        task = tracked.task
        if release:
            self._scheduler.release(task.spec.agent)
        tracked.runner = None
        if not state.terminal:
            return
        timer = self._timers.pop(task.id, None)
        if timer is not None:
            timer.cancel()
        if self._settings.log_payloads:
            _payloads.debug(
                "task %s output", task.id, extra={"task_id": task.id, "output": task.output_text}
            )
        self._workers[task.spec.agent].counters.record(task)
        self._observer.task_ended(task)
        del self._tracked[task.id]
        tracked.finished.set()

    async def _recover(self, task: Task) -> None:
        """Take back a task left unfinished by an earlier run of the server."""
        tracked = TrackedTask(task, self._journal)
        worker = self._workers.get(task.spec.agent)
        if worker is None:
            reason = f"agent {task.spec.agent!r} is no longer configured"
            error = TaskError("FAILED_PRECONDITION", reason, "AGENT_REMOVED")
            await tracked.transition(TaskState.FAILED, reason, error)
            return
        if task.state is TaskState.RUNNING:
            if task.attempts >= worker.config.retry.attempts:
                reason = f"interrupted by a server stop on each of its {task.attempts} attempts"
                error = TaskError("ABORTED", reason, "TASK_INTERRUPTED")
                await tracked.transition(TaskState.FAILED, reason, error)
                return
            await tracked.transition(TaskState.QUEUED, "the server restarted; queued again")
        self._track(tracked)

    # -- reading and cancelling --------------------------------------------------------

    async def get(self, task_id: str, *, owner: str | None = "") -> Task:
        """The task, or NotFound."""
        if not task_id:
            raise InvalidArgument([FieldViolation("task_id", "must not be empty")])
        tracked = self._tracked.get(task_id)
        task = tracked.task if tracked is not None else await self._store.get_task(task_id)
        if task is None or (owner is not None and task.owner != owner):
            raise NotFound("task", task_id)
        return task

    async def list_tasks(
        self,
        *,
        owner: str | None = "",
        state: TaskState | None = None,
        agent: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        """A page of tasks, newest first."""
        size = limits.checked_page_size(page_size)
        key = paging.filter_key(
            "*" if owner is None else f"={owner}", state.value if state else "", agent
        )
        cursor = paging.decode_token(page_token, key)
        tasks = await self._store.list_tasks(
            owner=owner, state=state, agent=agent or None, limit=size + 1, before=cursor
        )
        if len(tasks) <= size:
            return TaskPage(tasks, "")
        return TaskPage(tasks[:size], paging.encode_token(tasks[size - 1], key))

    async def cancel(self, task_id: str, *, owner: str | None = "") -> Task:
        """Cancel (idempotently) and return the final task."""
        task = await self.get(task_id, owner=owner)
        tracked = self._tracked.get(task.id)
        if tracked is None:
            return task
        await self._cancel_tracked(tracked, "cancelled by request")
        return tracked.task

    async def _cancel_tracked(self, tracked: TrackedTask, reason: str) -> None:
        if tracked.finished.is_set():
            return
        if self._scheduler.remove(tracked.task.id):
            error = TaskError("CANCELLED", reason, "TASK_CANCELLED")
            await self._finish_queued(tracked, TaskState.CANCELLED, error)
            return
        tracked.cancel_running(reason)
        await tracked.finished.wait()

    async def watch(
        self, task_id: str, *, after_sequence: int = 0, owner: str | None = ""
    ) -> AsyncGenerator[TaskEvent, None]:
        """Events after ``after_sequence``: stored, then live, ending after the terminal one."""
        if after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        await self.get(task_id, owner=owner)
        async with contextlib.aclosing(
            watch_events(self._store, self._bus, task_id, after_sequence)
        ) as events:
            async for event in events:
                yield event

    # -- agents ----------------------------------------------------------------------------

    @property
    def cache_stats(self) -> CacheStats:
        """The result cache's hits, misses and errors since the start."""
        return self._cache.stats

    def agents(self) -> list[AgentStatus]:
        """Every configured agent, the default first, then by name."""
        default = self._settings.default_agent
        names = sorted(self._workers, key=lambda name: (name != default, name))
        return [self.agent(name) for name in names]

    def agent(self, name: str) -> AgentStatus:
        """One agent's status, or NotFound."""
        worker = self._workers.get(name)
        if worker is None:
            raise NotFound("agent", name)
        return agent_status(
            worker,
            default=name == self._settings.default_agent,
            in_flight=self._scheduler.running(name),
            queued=self._scheduler.queued(name),
        )
