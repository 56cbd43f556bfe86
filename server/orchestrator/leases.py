"""Keeping the leases of the tasks this replica runs (see store/queue.py).

Every third of the lease TTL the renewer extends the leases of the tasks held here,
in one statement. What comes back says which leases another replica took (the
task must stop here without writing) and which tasks someone asked to cancel while
their signal may have been lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from switchboard.server.orchestrator.tracked import TrackedTask
from switchboard.server.store import TaskQueue
from switchboard.server.telemetry.throttle import ThrottledWarning


async def renew_leases(
    queue: TaskQueue,
    tracked: Mapping[str, TrackedTask],
    on_lost: Callable[[str], None],
    warning: ThrottledWarning,
) -> None:
    """Renew the leases of ``tracked`` tasks forever; ``on_lost`` for each one taken over."""
    interval = queue.ttl.total_seconds() / 3
    while True:
        await asyncio.sleep(interval)
        held = {
            task_id: task.lease.token
            for task_id, task in tracked.items()
            if not task.lease.lost and not task.task.state.terminal
        }
        try:
            renewal = await queue.renew(held)
        except Exception as error:
            warning.warn("renewing task leases failed; retrying: %s", error)
            continue
        for task_id in renewal.lost:
            task = tracked.get(task_id)
            if task is None or task.lease.token != held[task_id] or task.task.state.terminal:
                continue  # it ended meanwhile, or this replica claimed it again
            on_lost(task_id)
        for task_id, reason in renewal.cancels.items():
            if (task := tracked.get(task_id)) is not None:
                task.cancel_running(reason)
