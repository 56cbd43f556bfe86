"""RedisBus against real Redis servers: delivery across buses, lag, outages and reconnects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from switchboard.server.domain import EventPayload, OutputDelta, TaskEvent
from switchboard.server.events import Lagged, RedisBus, Signal, SignalKind, Subscription
from switchboard.server.orchestrator.watch import watch_events
from switchboard.server.store import TaskStore
from tests.orchestrator.conftest import make_settings, start_harness
from tests.payloads import EVERY_PAYLOAD
from tests.ratelimit.spare_redis import SpareRedis
from tests.scripted_model import ScriptedModel, scripted_runtimes

WAIT = 10.0


def _event(task_id: str, sequence: int, payload: EventPayload | None = None) -> TaskEvent:
    return TaskEvent(task_id, sequence, datetime.now(UTC), payload or OutputDelta(f"#{sequence}"))


async def _eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (the bus offers no event to wait on)
            await asyncio.sleep(0.01)


async def _live(bus: RedisBus, task_id: str) -> Subscription:
    """A subscription that hears every event: its channel was live when it was made."""
    async with asyncio.timeout(WAIT):
        while True:
            subscription = bus.subscribe(task_id)
            if bus.connected and bus.channel_subscribed(task_id):
                return subscription
            # Made before its channel was live, it lags once it is (or polls while down).
            with pytest.raises(Lagged):
                await subscription.get()
            subscription.close()


async def _take(subscription: Subscription, count: int) -> list[TaskEvent]:
    async with asyncio.timeout(WAIT):
        return [await subscription.get() for _ in range(count)]


async def _drain(subscription: Subscription) -> None:
    while True:
        await subscription.get()


async def _lags(subscription: Subscription) -> None:
    async with asyncio.timeout(WAIT):
        with pytest.raises(Lagged):
            await _drain(subscription)


@pytest.fixture
async def make_bus(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., RedisBus]]:
    buses: list[RedisBus] = []

    def make(url: str = redis_url, **options: Any) -> RedisBus:
        bus = RedisBus.from_url(url, prefix=redis_prefix, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.aclose()


async def test_every_payload_round_trips_in_order(make_bus: Callable[..., RedisBus]) -> None:
    bus = make_bus()
    subscription = await _live(bus, "t1")
    other = await _live(bus, "t2")
    events = [_event("t1", n, payload) for n, payload in enumerate(EVERY_PAYLOAD, start=1)]
    await bus.publish(events[:3])
    await bus.publish([_event("t2", 1), *events[3:], _event("t2", 2)])
    assert await _take(subscription, len(events)) == events
    assert [e.sequence for e in await _take(other, 2)] == [1, 2]
    assert not bus.degraded
    assert bus.publish_errors == 0


async def test_events_cross_buses(make_bus: Callable[..., RedisBus]) -> None:
    replica_a, replica_b = make_bus(), make_bus()
    subscription = await _live(replica_b, "t1")
    events = [_event("t1", n) for n in range(1, 4)]
    await replica_a.publish(events)
    assert await _take(subscription, 3) == events


async def test_many_subscribers_each_get_every_event(make_bus: Callable[..., RedisBus]) -> None:
    publisher, bus = make_bus(), make_bus()
    subscriptions = [await _live(bus, "t1") for _ in range(3)]
    assert bus.subscriber_count("t1") == 3
    events = [_event("t1", n) for n in range(1, 6)]
    await publisher.publish(events)
    for subscription in subscriptions:
        assert await _take(subscription, 5) == events


async def test_last_close_unsubscribes_the_channel(
    make_bus: Callable[..., RedisBus], redis_url: str, redis_prefix: str
) -> None:
    bus = make_bus()
    first, second = await _live(bus, "t1"), await _live(bus, "t1")
    channel = f"{redis_prefix}events:t1"
    async with Redis.from_url(redis_url) as raw:
        assert await raw.pubsub_numsub(channel) == [(channel.encode(), 1)]
        first.close()
        event = _event("t1", 1)
        await bus.publish([event])
        assert await _take(second, 1) == [event]
        assert bus.channel_subscribed("t1")
        second.close()
        second.close()  # closing twice is harmless
        assert bus.subscriber_count("t1") == 0
        await _eventually(lambda: not bus.channel_subscribed("t1"))
        assert await raw.pubsub_numsub(channel) == [(channel.encode(), 0)]
    # A new subscriber subscribes the channel again.
    again = await _live(bus, "t1")
    await bus.publish([_event("t1", 2)])
    assert [e.sequence for e in await _take(again, 1)] == [2]


async def test_a_slow_subscriber_lags_instead_of_blocking(
    make_bus: Callable[..., RedisBus],
) -> None:
    bus = make_bus(capacity=2)
    slow, reader = await _live(bus, "t1"), await _live(bus, "t1")
    events = [_event("t1", n) for n in range(1, 6)]
    for event in events:
        await bus.publish([event])
        assert await _take(reader, 1) == [event]  # the reader keeps up; the slow one doesn't
    assert slow.lagged
    with pytest.raises(Lagged):
        await slow.get()


async def test_bad_message_makes_subscribers_lag(
    make_bus: Callable[..., RedisBus], redis_url: str, redis_prefix: str
) -> None:
    bus = make_bus()
    subscription = await _live(bus, "t1")
    async with Redis.from_url(redis_url) as raw:
        await raw.publish(f"{redis_prefix}events:t1", b"not json")
    await _lags(subscription)


async def test_unreachable_redis_degrades_and_polls(make_bus: Callable[..., RedisBus]) -> None:
    bus = make_bus("redis://127.0.0.1:1/0", poll_interval=0.05)
    await bus.publish([_event("t1", 1)])  # does not raise: the events are stored already
    await bus.publish([_event("t1", 2)])
    assert bus.publish_errors == 2
    assert bus.degraded
    subscription = bus.subscribe("t1")
    for _ in range(3):  # each get gives up after the poll interval, so watchers poll the store
        await _lags(subscription)
        subscription.close()
        subscription = bus.subscribe("t1")
    assert not bus.connected


async def test_subscribers_lag_when_redis_restarts_then_hear_again(
    make_bus: Callable[..., RedisBus], tmp_path: Path
) -> None:
    spare = SpareRedis(tmp_path)
    await spare.start()
    try:
        publisher, bus = make_bus(spare.url, poll_interval=0.05), make_bus(spare.url)
        subscriptions = [await _live(bus, "t1"), await _live(bus, "t2")]
        first = _event("t1", 1)
        await publisher.publish([first])
        assert await _take(subscriptions[0], 1) == [first]

        await spare.stop()
        for subscription in subscriptions:
            await _lags(subscription)
        assert bus.degraded
        await publisher.publish([_event("t1", 2)])
        assert publisher.degraded
        assert publisher.publish_errors >= 1
        during = bus.subscribe("t1")
        await _lags(during)  # the outage: get gives up after the poll interval
        during.close()

        await spare.start()
        await _eventually(lambda: bus.connected)
        after = await _live(bus, "t1")
        async with asyncio.timeout(WAIT):
            while publisher.degraded:  # it retries Redis once per poll interval
                await publisher.publish([_event("probe", 1)])
                await asyncio.sleep(0.01)
        third = _event("t1", 3)
        await publisher.publish([third])
        assert await _take(after, 1) == [third]
        assert not publisher.degraded
        assert not bus.degraded
    finally:
        await spare.stop()


async def test_watchers_on_two_replicas_see_every_event_once(
    make_bus: Callable[..., RedisBus], sqlite_url: str
) -> None:
    model = ScriptedModel()
    gate = model.hold("slow")
    settings = make_settings(sqlite_url)
    store = await TaskStore.open(settings.database_url, migrate=True)
    harness = await start_harness(
        settings, store, scripted_runtimes(model), [], bus=make_bus(poll_interval=0.05)
    )
    watching_bus = make_bus()
    try:
        task = await harness.submit("slow")
        await model.wait_started()
        seen: list[asyncio.Queue[TaskEvent]] = [asyncio.Queue(), asyncio.Queue()]

        async def watch(events: AsyncIterator[TaskEvent], into: asyncio.Queue[TaskEvent]) -> None:
            async for event in events:
                into.put_nowait(event)

        watchers = [
            asyncio.create_task(watch(harness.orchestrator.watch(task.id), seen[0])),
            asyncio.create_task(watch(watch_events(store, watching_bus, task.id, 0), seen[1])),
        ]
        async with asyncio.timeout(WAIT):
            firsts = [await queue.get() for queue in seen]  # both replayed, now live
            gate.set()
            await asyncio.gather(*watchers)
        stored = await store.events_after(task.id, 0, limit=1000)
        assert stored[-1].terminal
        assert len(stored) > 3
        for first, queue in zip(firsts, seen, strict=True):
            received = [first, *(queue.get_nowait() for _ in range(queue.qsize()))]
            assert received == stored
    finally:
        await harness.stop(grace=0)
        await store.close()


async def test_signals_reach_every_replica_with_their_reason(
    make_bus: Callable[..., RedisBus], redis_url: str, redis_prefix: str
) -> None:
    sender, receiver = make_bus(), make_bus()
    heard: asyncio.Queue[Signal] = asyncio.Queue()
    receiver.on_signal(heard.put_nowait)
    cancel = Signal(SignalKind.CANCEL, "t1", "cancelled by request")
    # Pub/sub drops what is sent before the channel is subscribed: send until heard.
    async with asyncio.timeout(WAIT):
        while heard.empty():
            await sender.signal(cancel)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await heard.get()
                    break
    while not heard.empty():
        assert heard.get_nowait() == cancel
    # Garbage on the channel is skipped; what follows still arrives.
    raw = Redis.from_url(redis_url)
    try:
        await raw.publish(f"{redis_prefix}signals", b"not json")
    finally:
        await raw.aclose()
    queued = Signal(SignalKind.QUEUED, "t2")
    await sender.signal(queued)
    async with asyncio.timeout(WAIT):
        assert await heard.get() == queued


async def test_a_signal_to_an_unreachable_redis_is_dropped_without_raising(
    make_bus: Callable[..., RedisBus],
) -> None:
    bus = make_bus("redis://127.0.0.1:1/0")
    await bus.signal(Signal(SignalKind.QUEUED, "t1"))
