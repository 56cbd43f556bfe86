"""The task store: tasks and their events in SQLite or PostgreSQL, by Alembic schema."""

from switchboard.server.store.migrate import migrate
from switchboard.server.store.repository import StoreStats, TaskStore

__all__ = ["StoreStats", "TaskStore", "migrate"]
