"""A task this process is responsible for, and the only way its state changes.

Every change goes through ``TrackedTask.record``: it numbers the event (the
per-task sequence has no holes because only this object assigns it), derives
the new task snapshot, and hands both to the journal.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from switchboard.server.domain import (
    EventPayload,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskState,
    UsageReported,
)
from switchboard.server.orchestrator.journal import Journal, Lease
from switchboard.server.orchestrator.spans import Origin

_BACKLOG_LIMIT = 2_000


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class TrackedTask:
    """The live state of one unfinished task this replica holds the lease of.

    ``deadline`` is the loop time by which the task must end (the Execute call's
    deadline), or None. ``finished`` is set once the terminal state is stored, or
    once the lease is lost (another replica claimed the task: ``lease.lost``).
    ``origin`` is the trace context it was created in (its spans' parent), and when.
    """

    def __init__(
        self, task: Task, journal: Journal, lease: Lease, deadline: float | None = None
    ) -> None:
        self.task = task
        self.lease = lease
        self.deadline = deadline
        self.finished = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None
        self.cancel_reason = ""
        self.started = False
        self.last_write: asyncio.Future[None] | None = None
        self.origin = Origin.here()
        self._journal = journal

    def record(
        self, payload: EventPayload, *, release: bool = False, **changes: Any
    ) -> asyncio.Future[None]:
        """Append an event (and the task fields it changes); see the module doc.

        ``release`` gives up the lease with this write (the task goes back to the queue).
        """
        now = utcnow()
        sequence = self.task.last_sequence + 1
        if isinstance(payload, UsageReported):
            changes["usage"] = self.task.usage + payload.usage
        self.task = replace(self.task, last_sequence=sequence, **changes)
        event = TaskEvent(self.task.id, sequence, now, payload)
        urgent = isinstance(payload, StateChanged)
        self.last_write = self._journal.append(
            [event], self.task, self.lease, urgent=urgent, release=release
        )
        return self.last_write

    def transition(
        self,
        state: TaskState,
        reason: str = "",
        error: TaskError | None = None,
        *,
        release: bool = False,
        **changes: Any,
    ) -> asyncio.Future[None]:
        """Move to ``state``, recording the StateChanged event (``release``: see record)."""
        if state.terminal:
            changes.setdefault("end_time", utcnow())
        if state is TaskState.RUNNING:
            changes.setdefault("start_time", utcnow())
        payload = StateChanged(state, self.task.state, reason, error)
        # Shielded: a runner cancelled while waiting for this write must not cancel
        # the write itself (runner.py waits for it again when that happens).
        return asyncio.shield(
            self.record(payload, release=release, state=state, error=error, **changes)
        )

    async def emit(self, payload: EventPayload) -> None:
        """Record an event from the agent without waiting for its commit.

        Waits only when the journal is far behind, so a fast model cannot grow
        the backlog without bound.
        """
        written = self.record(payload)
        if self._journal.backlog > _BACKLOG_LIMIT:
            await written

    def cancel_running(self, reason: str) -> None:
        """Ask the runner to stop; it records the outcome.

        A runner task cancelled before its first step would never run its cleanup,
        so one that has not started yet sees ``cancel_reason`` when it starts instead.
        """
        self.cancel_reason = reason
        if self.runner is not None and self.started:
            self.runner.cancel()
