"""The task store: tasks and their events in SQLite or PostgreSQL, by Alembic schema.

The built-in identity store (users) lives in the same database.
"""

from switchboard.server.store.migrate import migrate
from switchboard.server.store.repository import StoreStats, TaskStore
from switchboard.server.store.users import User, UserExists, UserStore

__all__ = ["StoreStats", "TaskStore", "User", "UserExists", "UserStore", "migrate"]
