"""The access log: one line per RPC, on the ``switchboard.access`` logger.

A line says who called what and how it ended, never what was asked or answered:
method, status code, duration, peer, caller, request id and trace id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

ACCESS_LOGGER = "switchboard.access"
"""The logger access lines go to (at INFO)."""

REQUEST_ID_HEADER = "x-request-id"
"""The metadata key a client (or a proxy such as Envoy) passes its request id in."""

# A client chooses the request id: keep what it sends from bloating every log line.
_MAX_REQUEST_ID = 128

_log = logging.getLogger(ACCESS_LOGGER)


@dataclass(frozen=True, slots=True)
class Access:
    """One finished RPC, as the access log records it."""

    method: str
    code: str
    duration_ms: float
    peer: str
    caller: str | None
    request_id: str


def request_id(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The call's ``x-request-id`` (clipped), or a new random one when it has none."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and value:
            return value[:_MAX_REQUEST_ID]
    return uuid.uuid4().hex


def log_access(access: Access) -> None:
    """Write the access line; with the current trace's id when a span is recording."""
    if not _log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "method": access.method,
        "code": access.code,
        "duration_ms": round(access.duration_ms, 3),
        "peer": access.peer,
        "caller": access.caller,
        "request_id": access.request_id,
    }
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = trace.format_trace_id(span.trace_id)
    _log.info("%s %s %.1f ms", access.method, access.code, access.duration_ms, extra=fields)
