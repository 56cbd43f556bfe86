"""Event buses that carry stored task events to watchers."""

from switchboard.server.events.bus import EventBus, InProcessBus, Lagged, Subscription

__all__ = ["EventBus", "InProcessBus", "Lagged", "Subscription"]
