"""Resumable WatchTask streams: the cursor and retry policy both clients drive.

The clients only open streams, iterate them and sleep; every decision (which
sequence to resume after, which events to drop, whether and how long to wait
before reconnecting) lives here, so the sync and async loops cannot drift apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

from switchboard.client.errors import UnavailableError, error_from_rpc
from switchboard.v1 import tasks_pb2

#: The states a task ends in; the state_changed event to one of them is its last event.
TERMINAL_STATES: frozenset[int] = frozenset(
    {
        tasks_pb2.TASK_STATE_SUCCEEDED,
        tasks_pb2.TASK_STATE_FAILED,
        tasks_pb2.TASK_STATE_CANCELLED,
        tasks_pb2.TASK_STATE_TIMED_OUT,
    }
)


def is_terminal(event: tasks_pb2.TaskEvent) -> bool:
    """True for the event that ends a task's stream (a change to a terminal state)."""
    return event.WhichOneof("payload") == "state_changed" and (
        event.state_changed.state in TERMINAL_STATES
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How ``watch`` reconnects after its stream breaks with UNAVAILABLE.

    Attempt ``n`` (1-based) waits ``min(initial_backoff * multiplier**(n-1),
    max_backoff)`` seconds, scaled by a random factor in ``[1 - jitter, 1]`` so
    many watchers do not reconnect in lockstep. After ``max_attempts``
    consecutive failures the last error is raised; receiving an event resets the
    count, so a long stream survives any number of spaced-out drops.
    """

    max_attempts: int = 8
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        base = min(self.initial_backoff * self.multiplier ** (attempt - 1), self.max_backoff)
        return base * random.uniform(1 - self.jitter, 1)


class WatchCursor:
    """Where a watch stands: the last sequence delivered and the reconnect budget."""

    def __init__(self, task_id: str, after_sequence: int, policy: RetryPolicy) -> None:
        self.task_id = task_id
        self.last_sequence = after_sequence
        self.done = False
        self._policy = policy
        self._failures = 0

    def request(self) -> tasks_pb2.WatchTaskRequest:
        """The request that (re)opens the stream right after the last delivered event."""
        return tasks_pb2.WatchTaskRequest(task_id=self.task_id, after_sequence=self.last_sequence)

    def accept(self, response: tasks_pb2.WatchTaskResponse) -> tasks_pb2.TaskEvent | None:
        """Return the response's event if it is new, or None for one already delivered."""
        event = response.event
        if event.sequence <= self.last_sequence:
            return None
        self.last_sequence = event.sequence
        self.done = is_terminal(event)
        self._failures = 0
        return event

    def backoff(self, error: grpc.RpcError) -> float:
        """Decide on a stream that broke with ``error``; return the seconds to wait.

        Only UNAVAILABLE (a dropped connection, a server going away) and a stream
        reset by a proxy (INTERNAL "RST_STREAM", its upstream died) are worth a
        reconnect: WatchTask resumes after the last sequence, so nothing repeats. A
        stream that ends without an error needs no decision: the server ends it only
        when no event will follow (after the terminal event, or at once when the
        cursor is already past it).

        Raises:
            SwitchboardError: the mapped error, when it is not UNAVAILABLE or the
                reconnect budget is spent.

        """
        mapped = error_from_rpc(error)
        self._failures += 1
        # A stream a proxy reset (its upstream died) reaches gRPC as INTERNAL.
        reset = mapped.code is grpc.StatusCode.INTERNAL and "RST_STREAM" in mapped.message
        broken = isinstance(mapped, UnavailableError) or reset
        if not broken or self._failures > self._policy.max_attempts:
            raise mapped from error
        return self._policy.delay(self._failures)
