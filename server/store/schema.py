"""The store's tables: ``tasks``, their numbered ``task_events``, and ``users``.

Columns that queries filter or sort on are real columns; the rest of a task's spec
and every event payload are JSON. Migrations under ``migrations/`` must produce
exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Deterministic constraint names on every database, so later migrations can name them.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A point in time: timezone-aware UTC in and out, on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are
    stored as naive UTC (fixed-width text, which also sorts correctly) and get
    their zone back when read. Naive datetimes are refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive values; convert to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: a time zone is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return UTC-aware datetimes whatever the database gave back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    # NULL when the request had none: NULLs never collide in the unique constraint.
    sa.Column("request_id", sa.String, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    # The agent the spec asked for (after defaults); `agent` is the one that ran it.
    sa.Column("requested_agent", sa.String, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("instructions", sa.Text, nullable=False),
    sa.Column("tools", sa.JSON, nullable=False),
    sa.Column("spec_metadata", sa.JSON, nullable=False),
    sa.Column("timeout_ms", sa.BigInteger, nullable=True),
    # Server defaults: rows written before these columns existed read as False.
    sa.Column("no_cache", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("output_text", sa.Text, nullable=False),
    sa.Column("error", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("agent", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("total_tokens", sa.BigInteger, nullable=False),
    sa.Column("create_time", UtcDateTime, nullable=False),
    sa.Column("start_time", UtcDateTime, nullable=True),
    sa.Column("end_time", UtcDateTime, nullable=True),
    sa.Column("last_sequence", sa.BigInteger, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    # The Execute caller's deadline, so whichever replica runs the task honours it.
    sa.Column("deadline", UtcDateTime, nullable=True),
    # The durable queue (store/queue.py): the replica holding the task, until when, and
    # the fencing token that grows with every claim; writes carrying an older one fail.
    sa.Column("lease_owner", sa.String, nullable=True),
    sa.Column("lease_token", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("lease_expires", UtcDateTime, nullable=True),
    # A cancellation asked on a replica that does not run the task; the holder obeys it.
    sa.Column("cancel_reason", sa.Text, nullable=True),
    sa.UniqueConstraint("owner", "request_id"),
)

# Each serves a list_tasks shape: everyone's newest first, one owner's, by state
# (and recovery), by agent.
sa.Index("ix_tasks_create_time_id", tasks.c.create_time.desc(), tasks.c.id.desc())
sa.Index("ix_tasks_owner_create_time", tasks.c.owner, tasks.c.create_time)
sa.Index("ix_tasks_state_create_time", tasks.c.state, tasks.c.create_time)
sa.Index("ix_tasks_requested_agent_create_time", tasks.c.requested_agent, tasks.c.create_time)
# Claims: the best queued (or expired) tasks first.
sa.Index(
    "ix_tasks_state_priority_create_time",
    tasks.c.state,
    tasks.c.priority.desc(),
    tasks.c.create_time,
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column(
        "task_id",
        sa.String,
        sa.ForeignKey("tasks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("sequence", sa.BigInteger, primary_key=True),
    sa.Column("time", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
)

# The built-in identity store (auth.login): who may log in, and with which scopes.
users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    # The tenant owning the user's tasks; NULL: the username owns them.
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)
