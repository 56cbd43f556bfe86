"""Event buses that carry stored task events to watchers."""

from switchboard.server.events.bus import (
    EventBus,
    InProcessBus,
    Lagged,
    LocalSubscription,
    Signal,
    SignalHandler,
    SignalKind,
    Subscription,
)
from switchboard.server.events.redis_bus import RedisBus

__all__ = [
    "EventBus",
    "InProcessBus",
    "Lagged",
    "LocalSubscription",
    "RedisBus",
    "Signal",
    "SignalHandler",
    "SignalKind",
    "Subscription",
]
