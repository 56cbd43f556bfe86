"""A server span per call, continuing the caller's trace (W3C ``traceparent`` in the metadata).

The span is named ``package.Service/Method`` and carries the semantic-convention
attributes ``rpc.system``, ``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code`` and
the peer's address. Following the gRPC conventions for server spans, its status is
ERROR only for codes that mean the server failed (UNKNOWN, DEADLINE_EXCEEDED,
UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS); a caller's mistake (NOT_FOUND,
INVALID_ARGUMENT, ...) leaves it unset, with the code in ``rpc.grpc.status_code``.

The span is the current span while the handler runs, so logs carry its ids and the
work the call starts (tasks, store writes) makes child spans. It stays current after
the handler ends, until the call's own asyncio task ends: the errors interceptor,
outside this one, then logs unexpected failures with the call's trace id.

This interceptor sits inside the errors interceptor: failures arrive as exceptions,
and the code they will reach the client as is worked out here the same way.
The health service is not traced by default: probes would bury everything else.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from switchboard.server.domain import SwitchboardError
from switchboard.server.interceptors.handlers import (
    Call,
    CallScope,
    Context,
    Handler,
    ServerInterceptor,
    final_code,
    wrap,
)
from switchboard.server.telemetry.tracing import tracer_or_global

HEALTH_SERVICE = "grpc.health.v1.Health"

# The codes by which a server span failed (OpenTelemetry's gRPC conventions).
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class TracingInterceptor(ServerInterceptor):
    """Traces every call (of any streaming style) except those to ``untraced`` services.

    ``tracer`` makes the spans: the tracer of ``setup_tracing``'s handle, or None when
    tracing is off (the global tracer then, whose no-op spans cost next to nothing).
    """

    def __init__(
        self,
        tracer: trace.Tracer | None = None,
        *,
        untraced: Collection[str] = (HEALTH_SERVICE,),
    ) -> None:
        self._tracer = tracer_or_global(tracer)
        self._untraced = frozenset(untraced)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler chosen by the rest of the chain in a span."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if Call.of(method, "").service in self._untraced:
            return handler
        return wrap(handler, method, self._scope)  # type: ignore[return-value]

    def _scope(self, call: Call, request: Any, context: Context) -> _SpanScope:
        return _SpanScope(self._tracer, call, context)


class _SpanScope(CallScope):
    def __init__(self, tracer: trace.Tracer, call: Call, context: Context) -> None:
        self._tracer = tracer
        self._call = call
        self._context = context
        self._span: trace.Span = trace.INVALID_SPAN

    async def entered(self) -> None:
        """Start the server span, parented by the caller's trace context."""
        call, context = self._call, self._context
        parent = propagate.extract(_text_metadata(context.invocation_metadata()))
        attributes: dict[str, str | int] = {
            "rpc.system": "grpc",
            "rpc.service": call.service,
            "rpc.method": call.name,
        }
        attributes.update(_peer(context.peer()))
        self._span = self._tracer.start_span(
            call.method.lstrip("/"), parent, kind=SpanKind.SERVER, attributes=attributes
        )
        # Not detached: see the module doc. The call's task is the only one to see it.
        otel_context.attach(trace.set_span_in_context(self._span, parent))

    async def exited(self, exc: BaseException | None) -> None:
        """End the span with the call's status code."""
        code = final_code(exc, self._context)
        span = self._span
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_FAULTS:
            span.set_status(Status(StatusCode.ERROR, code.name))
        if isinstance(exc, Exception) and not isinstance(
            exc, SwitchboardError | grpc.aio.AbortError
        ):
            span.record_exception(exc)
        span.end()


def _text_metadata(metadata: Any) -> dict[str, str]:
    """The text entries of the call's metadata (binary ``-bin`` values carry no trace context)."""
    return {key: value for key, value in metadata or () if isinstance(value, str)}


def _peer(peer: str | None) -> dict[str, str | int]:
    """``network.peer.*`` from gRPC's ``ipv4:1.2.3.4:5``/``ipv6:%5B::1%5D:5``/``unix:path``."""
    kind, _, address = urllib.parse.unquote(peer or "").partition(":")
    if kind not in ("ipv4", "ipv6"):
        return {"network.peer.address": address} if kind == "unix" and address else {}
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return {}
    return {"network.peer.address": host.strip("[]"), "network.peer.port": int(port)}
