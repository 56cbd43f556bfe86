"""A real OTLP/gRPC trace receiver on loopback, and the spans it received.

There is no OpenTelemetry Collector on this machine: this small receiver speaks the
collector's TraceService, so the exporter under test sends real OTLP requests over a
real gRPC connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from switchboard.server.telemetry.tracing import TracingHandle, setup_tracing

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
STATUS_UNSET = trace_pb2.Status.STATUS_CODE_UNSET
STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in hex (``parent_id`` empty for a root), times in ns."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: int
    status_message: str
    links: tuple[str, ...]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0

    async def Export(  # noqa: N802 (the generated servicer's name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests += 1
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(_received(span, resource) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, name: str) -> list[ReceivedSpan]:
        """Every span called ``name``."""
        return [span for span in self.spans if span.name == name]

    def one(self, name: str, trace_id: str | None = None) -> ReceivedSpan:
        """The only span called ``name`` (in ``trace_id``, when given)."""
        found = [s for s in self.named(name) if trace_id is None or s.trace_id == trace_id]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {self.names()}"
        return found[0]

    def children(self, parent: ReceivedSpan) -> list[ReceivedSpan]:
        """The spans whose parent is ``parent``."""
        return [
            span
            for span in self.spans
            if span.trace_id == parent.trace_id and span.parent_id == parent.span_id
        ]

    def names(self) -> list[str]:
        """Every span's name, sorted (for failure messages)."""
        return sorted(span.name for span in self.spans)


@contextlib.asynccontextmanager
async def otlp_receiver() -> AsyncIterator[tuple[Receiver, int]]:
    """A receiver listening on 127.0.0.1 (its port is yielded with it)."""
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield receiver, port
    finally:
        await server.stop(None)


def _received(span: trace_pb2.Span, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        kind=span.kind,
        attributes=_attributes(span.attributes),
        status=span.status.code,
        status_message=span.status.message,
        links=tuple(link.span_id.hex() for link in span.links),
        resource=resource,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Exporting:
    """Tracing set up from the environment, exporting to ``receiver``."""

    handle: TracingHandle
    receiver: Receiver

    async def flush(self) -> Receiver:
        """Export every ended span, then return the receiver.

        In a thread: the export blocks until the receiver, on this loop, answers.
        """
        assert await asyncio.to_thread(self.handle.provider.force_flush)
        return self.receiver


def clear_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``OTEL_*`` variable the tests depend on."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextlib.asynccontextmanager
async def exporting(
    monkeypatch: pytest.MonkeyPatch, **environment: str
) -> AsyncIterator[Exporting]:
    """``setup_tracing()`` pointed by ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a new receiver.

    The resource gets ``deployment.environment.name=test`` through
    ``OTEL_RESOURCE_ATTRIBUTES``; ``environment`` sets more variables. Shut down (and
    checked to finish) on exit.
    """
    async with otlp_receiver() as (receiver, port):
        clear_otel_environment(monkeypatch)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        handle = setup_tracing()
        assert handle is not None
        try:
            yield Exporting(handle, receiver)
        finally:
            assert await asyncio.to_thread(handle.shutdown, 10.0)


class _Ended(SpanProcessor):
    def __init__(self, name: str, event: asyncio.Event) -> None:
        self._name = name
        self._event = event
        self._loop = asyncio.get_running_loop()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == self._name:
            self._loop.call_soon_threadsafe(self._event.set)


def ended(handle: TracingHandle, name: str) -> asyncio.Event:
    """An event set when a span called ``name`` ends (e.g. after a call is cancelled)."""
    event = asyncio.Event()
    handle.provider.add_span_processor(_Ended(name, event))
    return event
