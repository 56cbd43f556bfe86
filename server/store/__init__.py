"""The task store: tasks and their events in SQLite or PostgreSQL, by Alembic schema.

The built-in identity store (users) lives in the same database.
"""

from switchboard.server.store.migrate import migrate
from switchboard.server.store.queue import Claim, Renewal, TaskQueue
from switchboard.server.store.repository import LeaseTerms, StoreStats, TaskStore
from switchboard.server.store.users import User, UserExists, UserStore

__all__ = [
    "Claim",
    "LeaseTerms",
    "Renewal",
    "StoreStats",
    "TaskQueue",
    "TaskStore",
    "User",
    "UserExists",
    "UserStore",
    "migrate",
]
