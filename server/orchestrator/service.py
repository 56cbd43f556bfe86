"""The orchestrator's front door: every operation the API offers, in domain terms."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
from switchboard.server.events import EventBus, Signal, SignalKind
from switchboard.server.orchestrator import limits, paging
from switchboard.server.orchestrator.awaited import AwaitedClaim
from switchboard.server.orchestrator.backlog import QueuedCounts
from switchboard.server.orchestrator.breaker import CircuitBreaker, CircuitState
from switchboard.server.orchestrator.journal import Journal, Lease
from switchboard.server.orchestrator.leases import renew_leases
from switchboard.server.orchestrator.observer import NoObserver, TaskObserver
from switchboard.server.orchestrator.runner import TaskRunner, Worker
from switchboard.server.orchestrator.slots import Slots
from switchboard.server.orchestrator.spans import store_span, traced_run
from switchboard.server.orchestrator.status import AgentStatus, QueueStats, agent_status
from switchboard.server.orchestrator.tracked import TrackedTask, utcnow
from switchboard.server.orchestrator.watch import watch_events
from switchboard.server.store import Claim, TaskQueue, TaskStore
from switchboard.server.telemetry.throttle import ThrottledWarning
from switchboard.server.telemetry.tracing import tracer_or_global

_log = logging.getLogger(__name__)
# Task inputs and outputs, logged only when log_payloads is on (and at debug level).
_payloads = logging.getLogger("switchboard.payloads")

# Execute ends its task this long (at most) before the call's deadline, so the
# caller receives the TIMED_OUT task instead of a bare DEADLINE_EXCEEDED.
_DEADLINE_MARGIN = 0.25
_CALLER_GONE = "cancelled: the Execute caller went away"
_QUEUED_PAST_DEADLINE = TaskError(
    "DEADLINE_EXCEEDED", "the deadline passed while the task was queued", "TASK_TIMED_OUT"
)


def _cancelled(reason: str) -> TaskError:
    return TaskError("CANCELLED", reason, "TASK_CANCELLED")


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

    Tasks wait in the database (store/queue.py), not here: every replica on the
    same database claims the best waiting tasks it has room for, holds each under a
    lease it renews, and gives it back when it stops. A task is followed (Execute,
    CancelTask, WatchTask) through its events wherever it runs.
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
        replica = (
            settings.queue.replica_id
            or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self._queue = TaskQueue(store, replica, settings.queue.lease_ttl)
        self._slots = Slots(
            settings.queue.max_concurrency,
            {agent.name: agent.max_concurrency for agent in settings.agents},
        )
        self._journal = Journal(
            store,
            bus,
            flush_interval=settings.store.flush_interval.total_seconds(),
            max_batch=settings.store.max_batch,
            on_fenced=self._lease_lost,
            tracer=self._tracer,
        )
        self._cache = cache or MemoryCache()
        self._observer = observer or NoObserver()
        self._runner = TaskRunner(self._ended, self._cache)
        self._tracked: dict[str, TrackedTask] = {}
        # Execute callers' tasks not claimed yet, by task id.
        self._awaited: dict[str, AwaitedClaim] = {}
        self._queued = QueuedCounts()
        self._wake = asyncio.Event()
        self._queued_hint = True  # at the start, look at once
        self._background: list[asyncio.Task[None]] = []
        self._store_warning = ThrottledWarning(_log, 30.0)
        self._stopping = False
        self.leases_lost = 0
        """Tasks this replica lost to another one (its lease had expired)."""
        self.reclaims = 0
        """Tasks this replica took over from one that stopped renewing its lease."""

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Fail tasks of agents no longer configured, then claim and run tasks."""
        self._journal.start()
        self._bus.on_signal(self._signalled)
        # Leases under this name are from an earlier life of this replica: free them.
        await self._queue.release_own()
        _log.info("claiming tasks as replica %s", self._queue.owner)
        for claim in await self._queue.claim_orphans(list(self._workers)):
            reason = f"agent {claim.task.spec.agent!r} is no longer configured"
            error = TaskError("FAILED_PRECONDITION", reason, "AGENT_REMOVED")
            await self._finish_unstarted(claim, TaskState.FAILED, error)
        await self._refresh_queued()
        self._background = [
            asyncio.create_task(self._dispatch(), name="task-dispatcher"),
            asyncio.create_task(
                renew_leases(self._queue, self._tracked, self._lease_lost, self._store_warning),
                name="lease-renewer",
            ),
        ]

    async def stop(self, grace: float) -> None:
        """Stop taking work; let running tasks finish for ``grace`` s, then requeue them.

        Interrupted tasks go back to QUEUED with a StateChanged event and their lease
        given up, so another replica (or this one, restarted) runs them.
        """
        self._stopping = True
        dispatcher, renewer = self._background or (None, None)
        if dispatcher is not None:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
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
        # Leases are renewed until every write is in: a requeue written after the lease
        # expired would be refused. Those not written expire and are claimed elsewhere.
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        # The orchestrator owns what runs tasks: provider clients and the cache.
        for worker in self._workers.values():
            await worker.runtime.aclose()
        await self._cache.aclose()

    async def ready(self) -> bool:
        """True when the store answers and the workers run."""
        if self._stopping or not self._background or any(t.done() for t in self._background):
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
        task, _ = await self._create(new, owner, None, awaited=False)
        return task

    async def execute(
        self, new: NewTask, *, owner: str = "", deadline: float | None = None
    ) -> Task:
        """Run a task to its end and return it; cancelling the caller cancels the task."""
        self._validate([new], "task", "request_id")
        task, awaited = await self._create(new, owner, self._deadline_at(deadline), awaited=True)
        return await self._wait_final(task, awaited)

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
        created = [await self._create(new, owner, deadline_at, awaited=True) for new in batch]
        waiters = {
            asyncio.ensure_future(self._wait_final(task, awaited)): index
            for index, (task, awaited) in enumerate(created)
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
    def _deadline_at(remaining: float | None) -> datetime | None:
        if remaining is None:
            return None
        margin = min(_DEADLINE_MARGIN, remaining * 0.1)
        return utcnow() + timedelta(seconds=remaining - margin)

    def _admit(self, agents: Sequence[str]) -> None:
        """Refuse new tasks for ``agents`` the service cannot take now."""
        if self._stopping:
            raise Unavailable("the server is shutting down", reason="SHUTTING_DOWN")
        if self._queued.total() + len(agents) > self._settings.queue.max_queued:
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

    async def _create(
        self, new: NewTask, owner: str, deadline: datetime | None, *, awaited: bool
    ) -> tuple[Task, AwaitedClaim | None]:
        """Store a new task; run it here at once when this replica has room for it.

        ``awaited``: a caller will wait for the task's end; it gets what it needs to
        learn where the task runs (see awaited.py).
        """
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
            deadline=deadline,
        )
        first = TaskEvent(task.id, 1, now, StateChanged(TaskState.QUEUED, None, "accepted"))
        # Room here: claimed with its creation, no trip through the queue. (With no
        # room here, a replica with room claims it; the oldest first, whoever made it.)
        claim = self._slots.rooms()[spec.agent] > 0
        if claim:
            self._slots.take(spec.agent)  # before the await: others see the slot taken
        waiter = None
        if awaited:  # before the task exists, so no claim of it is missed
            waiter = self._awaited[task.id] = AwaitedClaim(task.id, self._bus)
        try:
            with store_span(self._tracer, "store.create_task"):
                stored, created = await self._store.create_task(
                    task, first, lease=self._queue.terms() if claim else None
                )
        except BaseException:
            self._forget_awaited(task.id)
            if claim:
                self._slots.release(spec.agent)
            raise
        if not created:
            self._forget_awaited(task.id)
            if claim:
                self._slots.release(spec.agent)
            return stored, None  # a repeated request_id: the first request's task
        if self._settings.log_payloads:  # off by default: inputs may be confidential
            _payloads.debug(
                "task %s input", task.id, extra={"task_id": task.id, "input": spec.input}
            )
        await self._bus.publish([first])
        if claim:
            self._start(Claim(stored, 1), slot_taken=True)
        else:
            self._queued.add(spec.agent, 1)
            # Wake the replicas with room (they would also find it when they poll).
            await self._bus.signal(Signal(SignalKind.QUEUED, task.id))
        return stored, waiter

    def _forget_awaited(self, task_id: str) -> None:
        awaited = self._awaited.pop(task_id, None)
        if awaited is not None:
            awaited.close()

    async def _wait_final(self, task: Task, awaited: AwaitedClaim | None = None) -> Task:
        """The task once it has ended, wherever it runs; cancelled with the caller."""
        if task.state.terminal:
            return task
        try:
            async with self._expiry(task):
                tracked = self._tracked.get(task.id)
                if tracked is None and awaited is not None:
                    tracked = await awaited.outcome()
                if tracked is not None:
                    await tracked.finished.wait()
                    if not tracked.lease.lost:
                        return tracked.task
                await self._follow(task.id, task.last_sequence)
        except asyncio.CancelledError:
            # On shutdown the task is requeued rather than cancelled with its caller.
            if not self._stopping:
                await asyncio.shield(self._cancel(task.id, _CALLER_GONE))
            raise
        finally:
            self._forget_awaited(task.id)
        return await self.get(task.id, owner=None)

    async def _follow(self, task_id: str, after_sequence: int) -> None:
        """Return once the task's terminal event is stored."""
        async with contextlib.aclosing(
            watch_events(self._store, self._bus, task_id, after_sequence)
        ) as events:
            async for _ in events:
                pass

    @contextlib.asynccontextmanager
    async def _expiry(self, task: Task) -> AsyncIterator[None]:
        """While the caller waits: at its deadline, end the task TIMED_OUT if nobody runs it.

        A replica running the task ends it at the deadline itself (runner.py).
        """
        if task.deadline is None:
            yield
            return
        timer = asyncio.create_task(self._expire(task.id, task.deadline))
        try:
            yield
        finally:
            timer.cancel()

    async def _expire(self, task_id: str, deadline: datetime) -> None:
        await asyncio.sleep(max(0.0, (deadline - utcnow()).total_seconds()))
        claim = await self._queue.claim_task(task_id)
        if claim is not None:
            await self._finish_unstarted(claim, TaskState.TIMED_OUT, _QUEUED_PAST_DEADLINE)

    # -- the queue -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Claim tasks whenever there is room, woken by signals or the poll interval."""
        poll = self._settings.queue.poll_interval.total_seconds()
        while True:
            self._wake.clear()
            hinted, self._queued_hint = self._queued_hint, False
            rooms = {agent: room for agent, room in self._slots.rooms().items() if room > 0}
            claims: list[Claim] = []
            try:
                # Told that tasks wait (a signal, the counts), claim (a write) at once;
                # otherwise peek (a read) first: most wake-ups and polls find nothing.
                likely = hinted or self._queued.total() > 0
                if rooms and (likely or await self._queue.has_claimable(rooms)):
                    claims = await self._queue.claim(rooms, self._slots.free())
            except Exception as error:
                self._store_warning.warn("claiming tasks failed; retrying: %s", error)
            for claim in claims:
                if claim.task.state is TaskState.QUEUED:
                    self._queued.add(claim.task.spec.agent, -1)
                self._start(claim)
            if claims:
                continue  # there may be more, and room for them
            try:  # not wait_for: on 3.11 it can swallow a cancellation (stop would hang)
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            except TimeoutError:
                await self._refresh_queued()

    def _signalled(self, signal: Signal) -> None:
        if signal.kind is SignalKind.QUEUED:
            self._queued_hint = True
            self._wake.set()
        elif (tracked := self._tracked.get(signal.task_id)) is not None:
            tracked.cancel_running(signal.reason)

    def _start(self, claim: Claim, *, slot_taken: bool = False) -> None:
        """Run a task just claimed, or end it when it must not run."""
        task = claim.task
        known = self._tracked.get(task.id)
        if known is not None:
            # Ours already: its lease had expired (the store was slow) and we took it
            # again. The run goes on under the new token.
            known.lease.token = claim.token
            if slot_taken:
                self._slots.release(task.spec.agent)
            return
        if not slot_taken:
            self._slots.take(task.spec.agent)
        worker = self._workers[task.spec.agent]
        if claim.cancel_reason:
            self._end_unstarted(claim, TaskState.CANCELLED, _cancelled(claim.cancel_reason))
            return
        if task.deadline is not None and task.deadline <= utcnow():
            self._end_unstarted(claim, TaskState.TIMED_OUT, _QUEUED_PAST_DEADLINE)
            return
        tracked = self._track(claim)
        if task.state is TaskState.RUNNING:
            # The replica running it stopped renewing its lease (it died or hung).
            self.reclaims += 1
            if task.attempts >= worker.config.retry.attempts:
                reason = f"its replica stopped during each of its {task.attempts} attempts"
                error = TaskError("ABORTED", reason, "TASK_INTERRUPTED")
                tracked.transition(TaskState.FAILED, reason, error)
                self._ended(tracked, TaskState.FAILED)
                return
            tracked.transition(TaskState.QUEUED, "its replica stopped; queued again")
        tracked.runner = asyncio.create_task(
            traced_run(
                self._tracer,
                tracked,
                task.spec.agent,
                functools.partial(self._runner.run, tracked, worker),
            ),
            name=f"task-{task.id}",
        )

    def _track(self, claim: Claim) -> TrackedTask:
        deadline = None
        if claim.task.deadline is not None:
            remaining = (claim.task.deadline - utcnow()).total_seconds()
            deadline = asyncio.get_running_loop().time() + remaining
        tracked = TrackedTask(claim.task, self._journal, Lease(claim.token), deadline)
        self._tracked[claim.task.id] = tracked
        awaited = self._awaited.pop(claim.task.id, None)
        if awaited is not None:
            awaited.claimed_here(tracked)
        return tracked

    def _end_unstarted(
        self, claim: Claim, state: TaskState, error: TaskError, *, slot_taken: bool = True
    ) -> asyncio.Future[None]:
        """End a claimed task that never ran; return its end's write (in order, not awaited).

        ``slot_taken``: ``_start`` took a slot for it, freed here.
        """
        tracked = self._track(claim)
        written = tracked.transition(state, error.message, error)
        self._ended(tracked, state, release=slot_taken)
        return written

    async def _finish_unstarted(self, claim: Claim, state: TaskState, error: TaskError) -> None:
        """End a task claimed without a slot (to cancel or expire it), once the end is stored."""
        if claim.task.state is TaskState.QUEUED:
            self._queued.add(claim.task.spec.agent, -1)
        written = self._end_unstarted(claim, state, error, slot_taken=False)
        with contextlib.suppress(asyncio.CancelledError):  # fenced: another replica has it
            await written

    def _ended(self, tracked: TrackedTask, state: TaskState, *, release: bool = True) -> None:
        """A run (or a task that never ran) ended in ``state``; update the books."""
        task = tracked.task
        if release:
            self._slots.release(task.spec.agent)
            self._wake.set()  # room for another
        tracked.runner = None
        if tracked.lease.lost:
            del self._tracked[task.id]
            tracked.finished.set()
            return
        if not state.terminal:
            return
        if self._settings.log_payloads:
            _payloads.debug(
                "task %s output", task.id, extra={"task_id": task.id, "output": task.output_text}
            )
        worker = self._workers.get(task.spec.agent)
        if worker is not None:  # else an agent this replica does not run (AGENT_REMOVED)
            worker.counters.record(task)
        self._observer.task_ended(task)
        del self._tracked[task.id]
        tracked.finished.set()

    def _lease_lost(self, task_id: str) -> None:
        """Another replica claimed a task running here: stop it without writing."""
        tracked = self._tracked.get(task_id)
        if tracked is None or (tracked.lease.lost and tracked.runner is None):
            return
        if not tracked.lease.lost:
            self.leases_lost += 1
            _log.warning(
                "lost the lease of task %s to another replica; stopping it here",
                task_id,
                extra={"task_id": task_id},
            )
        tracked.lease.lost = True
        if tracked.runner is not None:
            tracked.cancel_running("")  # the runner sees the lost lease and writes nothing
        elif task_id in self._tracked:
            self._ended(tracked, tracked.task.state, release=False)

    async def _refresh_queued(self) -> None:
        try:
            await self._queued.refresh(self._queue)
        except Exception as error:
            self._store_warning.warn("counting queued tasks failed: %s", error)

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
        """Cancel (idempotently) and return the final task, wherever it runs."""
        task = await self.get(task_id, owner=owner)
        if task.state.terminal:
            return task
        await self._cancel(task.id, "cancelled by request")
        return await self.get(task.id, owner=None)

    async def _cancel(self, task_id: str, reason: str) -> None:
        """Cancel the task and return once its end is stored."""
        tracked = self._tracked.get(task_id)
        if tracked is not None:
            tracked.cancel_running(reason)
            await tracked.finished.wait()
            if not tracked.lease.lost:
                return
        else:
            claim = await self._queue.claim_task(task_id)
            if claim is not None:  # queued, or its replica is gone: end it here
                await self._finish_unstarted(claim, TaskState.CANCELLED, _cancelled(reason))
                return
            if not await self._queue.request_cancel(task_id, reason):
                return  # it has ended
            # Another replica runs it: tell it now (it also reads the request when it
            # renews its lease, should the signal be lost).
            await self._bus.signal(Signal(SignalKind.CANCEL, task_id, reason))
        await self._follow(task_id, 0)

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

    @property
    def queue_stats(self) -> QueueStats:
        """The durable queue's and the event writer's counters since the start."""
        return QueueStats(self._journal.write_errors, self.leases_lost, self.reclaims)

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
            in_flight=self._slots.running(name),
            queued=self._queued.of(name),
        )
