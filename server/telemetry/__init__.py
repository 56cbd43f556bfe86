"""Logging (and, later, metrics and tracing) setup for the server process."""

from switchboard.server.telemetry.http import MetricsServer
from switchboard.server.telemetry.logging import JsonFormatter, setup_logging
from switchboard.server.telemetry.metrics import Metrics
from switchboard.server.telemetry.tracing import TracingHandle, setup_tracing

__all__ = [
    "JsonFormatter",
    "Metrics",
    "MetricsServer",
    "TracingHandle",
    "setup_logging",
    "setup_tracing",
]
