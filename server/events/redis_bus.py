"""The event bus across replicas: stored task events travel over Redis pub/sub.

Redis pub/sub is best effort: a message published while a subscriber's
connection is down is gone. That is safe because the store is the source of
truth and watchers replay from it whenever their subscription says ``Lagged``
(see orchestrator/watch.py). So this bus raises ``Lagged`` whenever it cannot
vouch that no event was missed:

- when the pub/sub connection breaks, every subscription is marked lagged;
- a subscription is *synced* only once Redis confirmed its channel's SUBSCRIBE
  after it was created; until then its events may be missing, so at
  confirmation it is marked lagged (the watcher replays once more) and while
  the bus is disconnected its ``get`` raises ``Lagged`` every ``poll_interval``
  (the watcher polls the store: slower, still correct);
- a synced subscription that hears nothing for ``resync_interval`` raises
  ``Lagged`` too, which bounds the delay when some replica's publish was lost.

Signals (a task was queued, cancel a task) travel on one channel that every
replica with a handler listens to; a signal lost while Redis is down only delays
what the replicas also find in the store by polling.

Publishing never raises: the events are stored already. A failed publish counts
in ``publish_errors``, sets ``degraded`` and marks this bus's own subscribers
of those tasks lagged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from switchboard.server.domain import TaskEvent
from switchboard.server.domain.serialize import payload_from_json, payload_to_json
from switchboard.server.events.bus import (
    LocalSubscription,
    Signal,
    SignalHandler,
    SignalKind,
    Subscription,
)
from switchboard.server.telemetry.throttle import ThrottledWarning

_log = logging.getLogger(__name__)

_SOCKET_TIMEOUT = 5.0
_READ_TIMEOUT = 10.0
_RECONNECT_MIN = 0.05
_RECONNECT_MAX = 2.0
_WARN_EVERY = 30.0


class _RedisSubscription(LocalSubscription):
    def __init__(
        self,
        bus: RedisBus,
        task_id: str,
        capacity: int,
        on_close: Callable[[_RedisSubscription], None],
    ) -> None:
        super().__init__(task_id, capacity, on_close)
        self._bus = bus
        self.synced = bus.connected and bus.channel_subscribed(task_id)

    def patience(self) -> float | None:
        # Unsynced, this subscription may miss events: poll the store instead.
        if self.synced and self._bus.connected:
            return self._bus.resync_interval
        return self._bus.poll_interval


class RedisBus:
    """Publishes stored events on Redis; feeds local subscribers from one shared PubSub."""

    def __init__(
        self,
        publisher: Redis,
        listener: Redis,
        *,
        prefix: str = "switchboard:",
        poll_interval: float = 1.0,
        resync_interval: float = 30.0,
        capacity: int = 1024,
    ) -> None:
        """Use ``publisher`` for PUBLISH and ``listener`` for the pub/sub connection.

        The bus owns both clients and closes them in ``aclose``. ``listener``
        should not retry by itself: a silent reconnect would hide lost messages.
        """
        self.poll_interval = poll_interval
        self.resync_interval = resync_interval
        self.publish_errors = 0
        self._publisher = publisher
        self._listener = listener
        self._channel_prefix = f"{prefix}events:"
        self._signals_channel = f"{prefix}signals"
        self._handlers: list[SignalHandler] = []
        self._capacity = capacity
        self._subscribers: dict[str, set[_RedisSubscription]] = {}
        self._connected = False
        self._sent: set[str] = set()  # task ids SUBSCRIBEd on the current connection
        self._confirmed: set[str] = set()  # ... and confirmed by Redis
        self._outstanding: dict[str, int] = {}  # (UN)SUBSCRIBE replies still to come
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._lost = False
        self._publish_failing = False
        self._next_publish_attempt = 0.0
        self._publish_warning = ThrottledWarning(_log, _WARN_EVERY)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "switchboard:",
        poll_interval: float = 1.0,
        resync_interval: float = 30.0,
        capacity: int = 1024,
    ) -> RedisBus:
        """A bus on the Redis at ``url`` (e.g. ``redis://127.0.0.1:6379/0``)."""
        timeouts: dict[str, Any] = {
            "socket_timeout": _SOCKET_TIMEOUT,
            "socket_connect_timeout": _SOCKET_TIMEOUT,
        }
        # One immediate retry lets PUBLISH survive a stale pooled connection after a restart.
        publisher = Redis.from_url(url, retry=Retry(NoBackoff(), 1), **timeouts)
        listener = Redis.from_url(url, retry=Retry(NoBackoff(), 0), **timeouts)
        return cls(
            publisher,
            listener,
            prefix=prefix,
            poll_interval=poll_interval,
            resync_interval=resync_interval,
            capacity=capacity,
        )

    @property
    def connected(self) -> bool:
        """True while the pub/sub connection is up."""
        return self._connected

    @property
    def degraded(self) -> bool:
        """True while publishing fails or the pub/sub connection is down."""
        return self._publish_failing or (self._reader is not None and not self._connected)

    def subscribe(self, task_id: str) -> Subscription:
        """Start receiving ``task_id``'s events published from now on."""
        subscription = _RedisSubscription(self, task_id, self._capacity, self._forget)
        self._subscribers.setdefault(task_id, set()).add(subscription)
        self._listen()
        return subscription

    def on_signal(self, handler: SignalHandler) -> None:
        """Call ``handler`` with every signal any replica sends from now on."""
        self._handlers.append(handler)
        self._listen()

    async def signal(self, signal: Signal) -> None:
        """PUBLISH ``signal`` to every replica; a failure is logged (rate-limited) only."""
        message = json.dumps(
            {"kind": signal.kind.value, "task_id": signal.task_id, "reason": signal.reason}
        )
        try:
            await self._publisher.publish(self._signals_channel, message)
        except (RedisError, OSError) as error:
            self._publish_warning.warn("signal to replicas failed; they poll the store: %s", error)

    def _listen(self) -> None:
        if self._reader is None and not self._closed:
            self._reader = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    def subscriber_count(self, task_id: str) -> int:
        """How many local subscriptions ``task_id`` has (for tests and status)."""
        return len(self._subscribers.get(task_id, ()))

    def channel_subscribed(self, task_id: str) -> bool:
        """True while Redis confirmed this bus's SUBSCRIBE to ``task_id``'s channel."""
        return task_id in self._confirmed

    async def publish(self, events: Sequence[TaskEvent]) -> None:
        """PUBLISH ``events`` (already stored), one message per task; never raises."""
        batches: dict[str, list[TaskEvent]] = {}
        for event in events:
            batches.setdefault(event.task_id, []).append(event)
        if not batches:
            return
        if self._publish_failing and time.monotonic() < self._next_publish_attempt:
            self._publish_failed(batches, None)
            return
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for task_id, batch in batches.items():
                    pipe.publish(self._channel(task_id), _encode(batch))
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._publish_failed(batches, error)
            return
        if self._publish_failing:
            self._publish_failing = False
            _log.info("event publishing to Redis recovered (%d failed)", self.publish_errors)

    async def aclose(self) -> None:
        """Stop listening and close the Redis clients; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
        self._disconnected()
        await self._publisher.aclose()
        await self._listener.aclose()

    def _channel(self, task_id: str) -> str:
        return self._channel_prefix + task_id

    def _forget(self, subscription: _RedisSubscription) -> None:
        subscribers = self._subscribers.get(subscription.task_id)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[subscription.task_id]
            self._wake.set()

    def _publish_failed(
        self, batches: dict[str, list[TaskEvent]], error: BaseException | None
    ) -> None:
        now = time.monotonic()
        self.publish_errors += 1
        self._publish_failing = True
        if error is not None:
            # Don't pay a connect timeout on every event while Redis is down.
            self._next_publish_attempt = now + self.poll_interval
        self._publish_warning.warn(
            "event publishing to Redis failed; watchers poll the store: %s",
            error or "Redis still down",
        )
        # Our own subscribers would not hear these events either.
        for task_id in batches:
            for subscription in self._subscribers.get(task_id, ()):
                subscription.mark_lagged()

    async def _run(self) -> None:
        delay = _RECONNECT_MIN
        while True:
            try:
                await self._session()
            except* (RedisError, OSError) as failure:
                if self._connected:
                    delay = _RECONNECT_MIN
                if not self._lost:
                    self._lost = True
                    _log.warning(
                        "Redis event subscription down; watchers poll the store until it is "
                        "back: %s",
                        failure.exceptions[0],
                    )
            except* Exception:
                # A bug here must not stop live events for good: log it and start over.
                _log.exception("Redis event subscription failed")
            self._disconnected()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)

    async def _session(self) -> None:
        pubsub = self._listener.pubsub()
        try:
            await pubsub.ping()  # connects; its PONG is skipped by _read
            self._connected = True
            if self._lost:
                self._lost = False
                _log.info("Redis event subscription reconnected")
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(pubsub))
                group.create_task(self._sync(pubsub))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _disconnected(self) -> None:
        if not self._connected:
            return
        self._connected = False
        self._sent.clear()
        self._confirmed.clear()
        self._outstanding.clear()
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.synced = False
                subscription.mark_lagged()

    async def _sync(self, pubsub: PubSub) -> None:
        """SUBSCRIBE/UNSUBSCRIBE so the connection follows the wanted channels."""
        signals = False
        while True:
            self._wake.clear()
            if self._handlers and not signals:
                await pubsub.subscribe(self._signals_channel)
                signals = True
            wanted = set(self._subscribers)
            added, dropped = wanted - self._sent, self._sent - wanted
            for task_id in added | dropped:
                self._outstanding[task_id] = self._outstanding.get(task_id, 0) + 1
            self._sent = wanted
            self._confirmed -= dropped
            if added:
                await pubsub.subscribe(*(self._channel(task_id) for task_id in added))
            if dropped:
                await pubsub.unsubscribe(*(self._channel(task_id) for task_id in dropped))
            await self._wake.wait()

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=_READ_TIMEOUT)
            if message is None:
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            if channel == self._signals_channel:
                if message["type"] == "message":
                    self._signalled(message["data"])
                continue
            if not isinstance(channel, str) or not channel.startswith(self._channel_prefix):
                continue
            task_id = channel[len(self._channel_prefix) :]
            if message["type"] == "message":
                self._dispatch(task_id, message["data"])
            elif message["type"] in ("subscribe", "unsubscribe"):
                self._acknowledged(task_id, message["type"] == "subscribe")

    def _acknowledged(self, task_id: str, subscribed: bool) -> None:
        remaining = self._outstanding.get(task_id, 1) - 1
        if remaining > 0:
            self._outstanding[task_id] = remaining
            return
        self._outstanding.pop(task_id, None)
        if not subscribed or task_id not in self._sent:
            return
        self._confirmed.add(task_id)
        for subscription in self._subscribers.get(task_id, ()):
            if not subscription.synced:
                # It may have missed events before the channel was live: replay once more.
                subscription.synced = True
                subscription.mark_lagged()

    def _signalled(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            signal = Signal(SignalKind(body["kind"]), body["task_id"], body.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            _log.warning("undecodable signal on %s: %r", self._signals_channel, data[:200])
            return
        for handler in self._handlers:
            handler(signal)

    def _dispatch(self, task_id: str, data: bytes) -> None:
        subscribers = self._subscribers.get(task_id, ())
        try:
            events = _decode(data)
        except (ValueError, KeyError, TypeError):
            _log.exception("undecodable event message on %s", self._channel(task_id))
            for subscription in subscribers:
                subscription.mark_lagged()
            return
        for event in events:
            for subscription in subscribers:
                subscription.deliver(event)


def _encode(events: Sequence[TaskEvent]) -> bytes:
    """Compact JSON of one task's events, in order."""
    body = []
    for event in events:
        kind, payload = payload_to_json(event.payload)
        body.append(
            {
                "task_id": event.task_id,
                "sequence": event.sequence,
                "time": event.time.isoformat(),
                "kind": kind,
                "payload": payload,
            }
        )
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(data: bytes) -> list[TaskEvent]:
    return [
        TaskEvent(
            task_id=item["task_id"],
            sequence=item["sequence"],
            time=datetime.fromisoformat(item["time"]),
            payload=payload_from_json(item["kind"], item["payload"]),
        )
        for item in json.loads(data)
    ]
