"""The event bus: delivers persisted task events to everyone watching the task.

Events are published only after they are stored, so a watcher that subscribes
first and then replays from the store misses nothing (see orchestrator/watch.py).
A subscriber that falls too far behind is marked ``lagged`` instead of blocking
the publisher; it catches up from the store.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

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


class SignalKind(enum.Enum):
    """What a signal tells the replicas."""

    QUEUED = "queued"
    """A task was queued: replicas with room look for work now."""
    CANCEL = "cancel"
    """Cancel this task, if you run it (its cancel_reason is in the store)."""


@dataclass(frozen=True, slots=True)
class Signal:
    """A hint to every replica. Best effort: a lost one only delays what the store says."""

    kind: SignalKind
    task_id: str
    reason: str = ""
    """Why, for CANCEL."""


SignalHandler = Callable[[Signal], None]


class EventBus(Protocol):
    """Publishes stored events to the subscribers of their task, and signals to replicas."""

    def subscribe(self, task_id: str) -> Subscription:
        """Start receiving ``task_id``'s events published from now on."""
        ...

    async def publish(self, events: Sequence[TaskEvent]) -> None:
        """Deliver ``events`` (already stored) to their task's subscribers."""
        ...

    async def aclose(self) -> None:
        """Release connections (at shutdown)."""
        ...

    async def signal(self, signal: Signal) -> None:
        """Send ``signal`` to every replica's handlers, this one's included; never raises."""
        ...

    def on_signal(self, handler: SignalHandler) -> None:
        """Call ``handler`` with every signal received from now on."""
        ...


class LocalSubscription:
    """A bounded queue of one task's events for one subscriber, shared by the buses.

    ``deliver`` never blocks: past ``capacity`` pending events the subscription is
    marked lagged and its queue dropped. ``on_close`` tells the bus it is gone.
    """

    def __init__(
        self,
        task_id: str,
        capacity: int,
        on_close: Callable[[Self], None],
    ) -> None:
        self.task_id = task_id
        self._capacity = capacity
        self._on_close: Callable[[Self], None] = on_close
        self._pending: deque[TaskEvent] = deque()
        self._arrived = asyncio.Event()
        self._lagged = False

    @property
    def lagged(self) -> bool:
        """True once events were dropped because this subscriber fell behind."""
        return self._lagged

    def deliver(self, event: TaskEvent) -> None:
        """Queue ``event``, or mark the subscription lagged when the queue is full."""
        if self._lagged:
            return
        if len(self._pending) >= self._capacity:
            self.mark_lagged()
        else:
            self._pending.append(event)
            self._arrived.set()

    def mark_lagged(self) -> None:
        """Drop what is queued: the subscriber must catch up from the store."""
        self._lagged = True
        self._pending.clear()
        self._arrived.set()

    def patience(self) -> float | None:
        """Seconds ``get`` waits for an event before raising ``Lagged``; None: forever."""
        return None

    async def get(self) -> TaskEvent:
        """The next event; waits until one arrives (or raises ``Lagged``)."""
        while not self._pending:
            if self._lagged:
                raise Lagged(self.task_id)
            self._arrived.clear()
            try:
                async with asyncio.timeout(self.patience()):
                    await self._arrived.wait()
            except TimeoutError:
                raise Lagged(self.task_id) from None
        return self._pending.popleft()

    def close(self: Self) -> None:
        """Stop receiving events."""
        self._on_close(self)


class InProcessBus:
    """The embedded event bus: subscribers in this process only."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscribers: dict[str, set[LocalSubscription]] = {}
        self._handlers: list[SignalHandler] = []

    async def aclose(self) -> None:
        """Nothing to release: everything lives in this process."""

    async def signal(self, signal: Signal) -> None:
        """Call this process's handlers."""
        for handler in self._handlers:
            handler(signal)

    def on_signal(self, handler: SignalHandler) -> None:
        """Call ``handler`` with every signal from now on."""
        self._handlers.append(handler)

    def subscribe(self, task_id: str) -> Subscription:
        """Start receiving ``task_id``'s events published from now on."""
        subscription = LocalSubscription(task_id, self._capacity, self.unsubscribe)
        self._subscribers.setdefault(task_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: LocalSubscription) -> None:
        """Forget ``subscription``; called by its ``close``."""
        task_id = subscription.task_id
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
