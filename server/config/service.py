"""Settings of the queue, the store and the gRPC listener."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from switchboard.server.config.types import Duration


class QueueConfig(BaseModel):
    """Scheduling: how many tasks run at once and how many may wait."""

    model_config = {"extra": "forbid"}

    max_concurrency: int = Field(default=10, ge=1, le=10_000, description="Global cap.")
    max_queued: int = Field(
        default=10_000, ge=1, description="Queued tasks beyond this are refused."
    )


class StoreConfig(BaseModel):
    """How events reach the database."""

    model_config = {"extra": "forbid"}

    flush_interval: Duration = Field(
        default=timedelta(milliseconds=10),
        description="How long the event writer gathers events into one commit.",
    )
    max_batch: int = Field(default=500, ge=1, description="Events per commit at most.")
    shutdown_write_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="At shutdown, how long to keep retrying event writes the store refuses.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Apply migrations at start (off in production: run `switchboard migrate`).",
    )


class ServerConfig(BaseModel):
    """The gRPC listener and its shutdown."""

    model_config = {"extra": "forbid"}

    grace_period: Duration = Field(
        default=timedelta(seconds=20),
        description="On SIGTERM, how long in-flight calls and tasks may finish.",
    )
    drain_delay: Duration = Field(
        default=timedelta(0),
        description="On SIGTERM, how long to keep serving after readiness goes NOT_SERVING, "
        "so load balancers stop sending calls first (e.g. 5 s on Kubernetes).",
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request or response."
    )
