"""The event writer: batches task events and task updates into few commits.

A streaming agent produces an event per output delta; committing each one would
cost a transaction per token. The journal gathers what arrives within
``flush_interval`` (or at once for urgent writes such as state changes) into one
``store.commit``, then publishes the committed events on the bus, in order.
Publishing only after the commit is what lets watchers replay from the store
without gaps (see watch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace

from switchboard.server.domain import Task, TaskEvent
from switchboard.server.events import EventBus
from switchboard.server.orchestrator.spans import store_span
from switchboard.server.store import TaskStore
from switchboard.server.telemetry.tracing import tracer_or_global

_log = logging.getLogger(__name__)
_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class Lease:
    """A hold on a task: the fencing token its writes carry."""

    token: int
    lost: bool = False
    """Set once a write was refused because another replica claimed the task."""


@dataclass(slots=True)
class _Write:
    events: list[TaskEvent]
    task: Task
    lease: Lease
    release: bool
    done: asyncio.Future[None]
    # The writer's trace context: the commit's span joins the writers' traces.
    context: otel_context.Context = field(default_factory=otel_context.get_current)


class Journal:
    """Writes events and task snapshots in batches, then publishes the events.

    Each commit is a ``store.commit`` span made by ``tracer`` (default: the global one).
    Writes of a task whose lease was taken over are dropped: their futures are
    cancelled and ``on_fenced`` told the task's id (it marks the lease lost).
    """

    def __init__(
        self,
        store: TaskStore,
        bus: EventBus,
        *,
        flush_interval: float,
        max_batch: int,
        on_fenced: Callable[[str], None],
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._store = store
        self._on_fenced = on_fenced
        self._tracer = tracer_or_global(tracer)
        self._bus = bus
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._pending: deque[_Write] = deque()
        self._arrived = asyncio.Event()
        self._urgent = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self.write_errors = 0
        """Commits the store refused (each retried), since the start."""

    def start(self) -> None:
        """Start the background writer."""
        self._writer = asyncio.create_task(self._run(), name="journal-writer")

    async def stop(self, patience: float) -> None:
        """Write everything still pending, then stop the writer.

        When the store stays unreachable for ``patience`` seconds the pending writes
        are given up (and logged): a stopping server must not hang. The tasks they
        belonged to are recovered from their stored state at the next start.
        """
        self._stopping = True
        self._arrived.set()
        self._urgent.set()
        if self._writer is None:
            return
        done, _ = await asyncio.wait({self._writer}, timeout=patience)
        if not done:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._writer = None
        if self._pending:
            _log.error("giving up %d event writes: the store does not answer", len(self._pending))
            self._give_up(list(self._pending))
            self._pending.clear()

    @staticmethod
    def _give_up(writes: list[_Write]) -> None:
        # Cancelled, not failed: whoever waits wakes up, and nobody has to collect an error.
        for write in writes:
            write.done.cancel()

    def append(
        self,
        events: list[TaskEvent],
        task: Task,
        lease: Lease,
        *,
        urgent: bool,
        release: bool = False,
    ) -> asyncio.Future[None]:
        """Queue ``events`` and the new state of ``task`` for the next commit.

        The write carries ``lease``'s token as it is at commit time; ``release``
        gives the lease up with it. The returned future resolves once both are
        committed and the events published. ``urgent`` writes do not wait for the
        batching interval.
        """
        done = asyncio.get_running_loop().create_future()
        if lease.lost or (self._stopping and self._writer is None):
            done.cancel()  # fenced, or the writer is gone: given up like the others
            return done
        self._pending.append(_Write(events, task, lease, release, done))
        self._arrived.set()
        if urgent:
            self._urgent.set()
        return done

    @property
    def backlog(self) -> int:
        """Writes not yet committed."""
        return len(self._pending)

    async def _run(self) -> None:
        while not (self._stopping and not self._pending):
            await self._arrived.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._flush_interval)
            size = min(self._max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(size)]
            if not self._pending:
                self._arrived.clear()
                if not self._stopping:
                    self._urgent.clear()
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Write]) -> None:
        events = [event for write in batch for event in write.events]
        tasks = list({write.task.id: write.task for write in batch}.values())
        tokens = {write.task.id: write.lease.token for write in batch}
        released = {write.task.id for write in batch if write.release}
        contexts = [write.context for write in batch]
        attempt = 0
        while True:
            try:
                with store_span(
                    self._tracer, "store.commit", contexts, events=len(events), tasks=len(tasks)
                ):
                    fenced = await self._store.commit(events, tasks, tokens, released)
                break
            except asyncio.CancelledError:
                self._give_up(batch)
                raise
            except Exception:
                # The store is the source of truth: never drop a write; retry until it lands
                # (or until a stopping server gives up, see stop()).
                self.write_errors += 1
                delay = _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)]
                _log.warning("event write failed; retrying in %.2fs", delay, exc_info=True)
                attempt += 1
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    self._give_up(batch)
                    raise
        if fenced:
            self._fenced(batch, fenced)
            events = [event for event in events if event.task_id not in fenced]
        await self._bus.publish(events)
        for write in batch:
            if not write.done.done():
                write.done.set_result(None)

    def _fenced(self, batch: list[_Write], fenced: set[str]) -> None:
        # Later writes of those tasks would be refused too.
        dropped = [w for w in self._pending if w.task.id in fenced]
        for write in dropped:
            self._pending.remove(write)
        for write in batch + dropped:
            if write.task.id in fenced:
                write.done.cancel()
        for task_id in fenced:
            _log.warning("task %s was claimed by another replica; dropping its writes", task_id)
            self._on_fenced(task_id)
