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

    def grpc_options(self) -> list[tuple[str, int]]:
        """The grpc.aio server options these settings stand for."""

        def ms(value: timedelta) -> int:
            return round(value.total_seconds() * 1000)

        options = [
            ("grpc.so_reuseport", 0),  # otherwise a taken port is shared silently
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
