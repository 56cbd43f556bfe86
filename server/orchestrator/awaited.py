"""An Execute caller's queued task: claimed here, or somewhere else.

A task made while this replica had no room waits in the database until some replica
claims it. Its Execute caller waits here, without reading the store: this replica
tells it when it claims the task, and any other replica's claim shows as the task's
next event on the bus. Both are set up before the task is stored, so neither can be
missed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from switchboard.server.events import EventBus
from switchboard.server.orchestrator.tracked import TrackedTask


class AwaitedClaim:
    """Who claims ``task_id``: :meth:`outcome` is the tracked task if here, else None."""

    def __init__(self, task_id: str, bus: EventBus) -> None:
        self.task_id = task_id
        self._claimed: asyncio.Future[TrackedTask] = asyncio.get_running_loop().create_future()
        self._subscription = bus.subscribe(task_id)

    def claimed_here(self, tracked: TrackedTask) -> None:
        """Record that this replica claimed the task."""
        if not self._claimed.done():
            self._claimed.set_result(tracked)

    async def outcome(self) -> TrackedTask | None:
        """Wait for the claim: the tracked task when it was this replica's, else None.

        None also when the bus cannot vouch for its events (``Lagged``: Redis down):
        the caller then follows the task through the store.
        """
        heard = asyncio.ensure_future(self._next_event())
        either: set[asyncio.Future[Any]] = {self._claimed, heard}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            heard.cancel()
            if heard.done() and not heard.cancelled():
                heard.exception()  # Lagged, say: retrieved, it only meant "look elsewhere"
            self.close()
        return self._claimed.result() if self._claimed.done() else None

    async def _next_event(self) -> None:
        """Return at the first event after the task's creation (sequence 1)."""
        while (await self._subscription.get()).sequence <= 1:
            pass

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._subscription.close()
