"""Logging (and, later, metrics and tracing) setup for the server process."""

from switchboard.server.telemetry.logging import JsonFormatter, setup_logging

__all__ = ["JsonFormatter", "setup_logging"]
