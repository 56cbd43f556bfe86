"""The event bus: delivers persisted task events to everyone watching the task.

Events are published only after they are stored, so a watcher that subscribes
first and then replays from the store misses nothing (see orchestrator/watch.py).
A subscriber that falls too far behind is marked ``lagged`` instead of blocking
the publisher; it catches up from the store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from switchboard.server.domain import TaskEvent


class Subscription(Protocol):
    """Live events of one task, in publication order."""

    @property
    def lagged(self) -> bool:
        """True once events were dropped because this subscriber fell behind."""
        ...

    async def get(self) -> TaskEvent:
        """The next event; waits until one arrives (or raises ``Lagged``)."""
        ...

    def close(self) -> None:
        """Stop receiving events."""
        ...


class Lagged(Exception):
    """The subscriber missed events; it must catch up from the store."""


class EventBus(Protocol):
    """Publishes stored events to the subscribers of their task."""

    def subscribe(self, task_id: str) -> Subscription:
        """Start receiving ``task_id``'s events published from now on."""
        ...

    async def publish(self, events: Sequence[TaskEvent]) -> None:
        """Deliver ``events`` (already stored) to their task's subscribers."""
        ...


class _LocalSubscription:
    def __init__(self, bus: InProcessBus, task_id: str, capacity: int) -> None:
        self._bus = bus
        self._task_id = task_id
        self._capacity = capacity
        self._pending: deque[TaskEvent] = deque()
        self._arrived = asyncio.Event()
        self._lagged = False

    @property
    def lagged(self) -> bool:
        return self._lagged

    def deliver(self, event: TaskEvent) -> None:
        if self._lagged:
            return
        if len(self._pending) >= self._capacity:
            self._lagged = True
            self._pending.clear()
        else:
            self._pending.append(event)
        self._arrived.set()

    async def get(self) -> TaskEvent:
        while not self._pending:
            if self._lagged:
                raise Lagged(self._task_id)
            self._arrived.clear()
            await self._arrived.wait()
        return self._pending.popleft()

    def close(self) -> None:
        self._bus.unsubscribe(self._task_id, self)


class InProcessBus:
    """The embedded event bus: subscribers in this process only."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscribers: dict[str, set[_LocalSubscription]] = {}

    def subscribe(self, task_id: str) -> Subscription:
        """Start receiving ``task_id``'s events published from now on."""
        subscription = _LocalSubscription(self, task_id, self._capacity)
        self._subscribers.setdefault(task_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, task_id: str, subscription: _LocalSubscription) -> None:
        """Forget ``subscription``; called by its ``close``."""
        subscribers = self._subscribers.get(task_id)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[task_id]

    async def publish(self, events: Sequence[TaskEvent]) -> None:
        """Deliver ``events`` to their task's subscribers without waiting on any."""
        for event in events:
            for subscription in self._subscribers.get(event.task_id, ()):
                subscription.deliver(event)

    def subscriber_count(self, task_id: str) -> int:
        """How many subscriptions ``task_id`` has (for tests and status)."""
        return len(self._subscribers.get(task_id, ()))
