"""Settings of the queue, the store and the gRPC listener."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, model_validator

from switchboard.server.config.types import Duration


class QueueConfig(BaseModel):
    """Scheduling: how many tasks run at once and how many may wait."""

    model_config = {"extra": "forbid"}

    max_concurrency: int = Field(default=10, ge=1, le=10_000, description="Global cap.")
    max_queued: int = Field(
        default=10_000, ge=1, description="Queued tasks beyond this are refused."
    )
    lease_ttl: Duration = Field(
        default=timedelta(seconds=30),
        description=(
            "How long a replica's claim on a running task lasts unless renewed (every third "
            "of it). A replica that dies loses its tasks to the others after this long."
        ),
    )
    replica_id: str = Field(
        default="",
        max_length=253,  # a Kubernetes pod name fits
        description=(
            "This replica's name on its task leases; empty: host name, process id and a "
            "random suffix. A stable name that no other live replica shares (the pod "
            "name) lets a restarted replica take back its tasks at once instead of "
            "after lease_ttl."
        ),
    )
    poll_interval: Duration = Field(
        default=timedelta(milliseconds=500),
        description=(
            "How often a replica looks in the database for tasks to claim when no signal "
            "woke it (tasks created on other replicas without Redis, expired leases)."
        ),
    )

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> QueueConfig:
        if self.lease_ttl < timedelta(seconds=1):
            raise ValueError("lease_ttl must be at least 1 s (it is renewed every third of it)")
        if self.poll_interval <= timedelta(0):
            raise ValueError("poll_interval must be positive")
        return self


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
    max_concurrent_streams: int = Field(
        default=1000, ge=1, description="Calls at once on one client connection."
    )
    keepalive_time: Duration = Field(
        default=timedelta(minutes=2),
        description="Ping an idle connection this often, to notice dead peers.",
    )
    keepalive_timeout: Duration = Field(
        default=timedelta(seconds=20), description="Drop a connection whose ping is not answered."
    )
    min_client_ping_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="Clients may ping this often (more often is answered with GOAWAY).",
    )
    max_connection_age: Duration | None = Field(
        default=None,
        description="Close connections this old (with a GOAWAY) so clients behind L4 load "
        "balancers reconnect and spread; off by default (e.g. 30 min behind a load balancer).",
    )
    max_connection_age_grace: Duration = Field(
        default=timedelta(minutes=5),
        description="How long calls on an aged connection may still finish; longer streams "
        "are cut with UNAVAILABLE and resume (WatchTask resumes from its last sequence).",
    )

    def grpc_options(self, *, reuse_port: bool = False) -> list[tuple[str, int]]:
        """The grpc.aio server options these settings stand for.

        ``reuse_port`` lets other servers that ask for it share the port (SO_REUSEPORT).
        """

        def ms(value: timedelta) -> int:
            return round(value.total_seconds() * 1000)

        options = [
            # Off by default: otherwise a taken port is shared silently.
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.keepalive_time_ms", ms(self.keepalive_time)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", ms(self.min_client_ping_interval)),
            ("grpc.http2.max_ping_strikes", 2),
        ]
        if self.max_connection_age is not None:
            options += [
                ("grpc.max_connection_age_ms", ms(self.max_connection_age)),
                ("grpc.max_connection_age_grace_ms", ms(self.max_connection_age_grace)),
            ]
        return options
