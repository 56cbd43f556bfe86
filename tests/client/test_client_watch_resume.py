"""``watch`` survives dropped streams: a proxy in front of a real server cuts them on cue."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.client import NotFoundError, RetryPolicy, UnavailableError, is_terminal

from .conftest import Calls, ConnectCalls
from .services import DroppingProxy, serving

_FAST = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)


async def _finished_task(calls: Calls) -> Any:
    # Ten words in, about twenty events out: room to cut streams in the middle.
    return await calls("execute", "one two three four five six seven eight nine ten")


async def _watch_through(
    connect: ConnectCalls, proxy: DroppingProxy, task_id: str, after: int = 0
) -> list[Any]:
    async with serving(proxy) as address:
        return await connect(address, watch_retry=_FAST)("watch", task_id, after)


async def test_resumes_after_unavailable_with_no_gap_and_no_duplicate(
    connect: ConnectCalls, calls: Calls, running_server: Any
) -> None:
    task = await _finished_task(calls)
    assert task.last_sequence > 10
    proxy = DroppingProxy(running_server.address, plan=[4, 3])
    events = await _watch_through(connect, proxy, task.id)
    assert [event.sequence for event in events] == list(range(1, task.last_sequence + 1))
    assert is_terminal(events[-1])
    assert proxy.after_sequences == [0, 4, 7]


async def test_drops_events_a_resumed_stream_repeats(
    connect: ConnectCalls, calls: Calls, running_server: Any
) -> None:
    task = await _finished_task(calls)
    proxy = DroppingProxy(running_server.address, plan=[5, 5], rewind=3)
    events = await _watch_through(connect, proxy, task.id, after=2)
    assert [event.sequence for event in events] == list(range(3, task.last_sequence + 1))
    # The second stream repeats 5..7 before the new 8 and 9: the client skips the repeats.
    assert proxy.after_sequences == [2, 7, 9]


async def test_a_live_task_is_resumed_too(
    connect: ConnectCalls, calls: Calls, running_server: Any
) -> None:
    task = await calls("submit", "one two three four five six seven eight nine ten")
    proxy = DroppingProxy(running_server.address, plan=[2, 0, 0, 3])
    events = await _watch_through(connect, proxy, task.id)
    finished = await calls("get", task.id)
    assert [event.sequence for event in events] == list(range(1, finished.last_sequence + 1))
    assert proxy.after_sequences == [0, 2, 2, 2, 5]


async def test_gives_up_after_the_attempts_of_its_policy(
    connect: ConnectCalls, calls: Calls, running_server: Any
) -> None:
    task = await _finished_task(calls)
    proxy = DroppingProxy(running_server.address, plan=[3, 0, 0, 0, 0, 0])
    with pytest.raises(UnavailableError, match="proxy refused the stream"):
        await _watch_through(connect, proxy, task.id)
    # The stream that delivered, then the policy's 3 reconnects, refused.
    assert proxy.after_sequences == [0, 3, 3, 3]


async def test_other_errors_are_not_retried(connect: ConnectCalls, running_server: Any) -> None:
    proxy = DroppingProxy(running_server.address)
    with pytest.raises(NotFoundError):
        await _watch_through(connect, proxy, "no-such-task")
    assert proxy.after_sequences == [0]


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=-1)
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    policy = RetryPolicy(initial_backoff=1, max_backoff=3, multiplier=2, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
