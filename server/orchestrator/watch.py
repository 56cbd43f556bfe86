"""WatchTask: stored events, then live ones, each exactly once, until the terminal one.

The watcher subscribes to the bus *before* it reads the store. The journal
publishes an event only after committing it, so every event is either in the
store when we read it or arrives on the subscription afterwards (or both: the
duplicates are dropped by sequence). A subscription that lagged, or a live event
that skips ahead, sends the watcher back to the store to fill the gap.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from switchboard.server.domain import TaskEvent
from switchboard.server.events import EventBus, Lagged, Subscription
from switchboard.server.store import TaskStore

_PAGE = 500


async def watch_events(
    store: TaskStore, bus: EventBus, task_id: str, after_sequence: int
) -> AsyncGenerator[TaskEvent, None]:
    """Yield ``task_id``'s events after ``after_sequence`` through its terminal event."""
    subscription = bus.subscribe(task_id)
    last = after_sequence
    try:
        while True:
            async with aclosing(_replay(store, task_id, last)) as replay:
                async for event in replay:
                    yield event
                    last = event.sequence
                    if event.terminal:
                        return
            task = await store.get_task(task_id)
            if task is None or (task.state.terminal and last >= task.last_sequence):
                return
            try:
                async with aclosing(_live(subscription, last)) as live:
                    async for event in live:
                        yield event
                        last = event.sequence
                        if event.terminal:
                            return
            except Lagged:
                subscription.close()
                subscription = bus.subscribe(task_id)
    finally:
        subscription.close()


async def _replay(store: TaskStore, task_id: str, after: int) -> AsyncGenerator[TaskEvent, None]:
    while True:
        page = await store.events_after(task_id, after, limit=_PAGE)
        for event in page:
            yield event
        if len(page) < _PAGE:
            return
        after = page[-1].sequence


async def _live(subscription: Subscription, last: int) -> AsyncGenerator[TaskEvent, None]:
    """Live events in order; returns (to replay) when one skips ahead of ``last``."""
    while True:
        event = await subscription.get()
        if event.sequence <= last:
            continue
        if event.sequence > last + 1:
            return
        yield event
        last = event.sequence
