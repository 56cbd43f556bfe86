"""OpenTelemetry tracing: an OTLP/gRPC exporter set up from the standard ``OTEL_*`` variables.

Tracing is off unless ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT`` names a collector (and ``OTEL_SDK_DISABLED`` is not
``true``): then no provider and no exporter are built, and every span the service
starts is OpenTelemetry's no-op span. The exporter reads the rest of its settings
(headers, TLS, timeout, compression) from the environment itself; the provider reads
``OTEL_TRACES_SAMPLER``/``_ARG`` and the span limits; the resource takes
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` over the defaults.

No global provider is installed: the tracer is handed to whatever makes spans (the
tracing interceptor, the orchestrator), so several servers in one process (tests)
keep their spans apart. Work started under a span carries its tracer in the
OpenTelemetry context (``bind_tracer``), so code far below, such as the Agents SDK
bridge, makes its spans with the same tracer.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "switchboard"
"""The instrumentation scope of every span the service makes."""

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_TRACER_KEY = otel_context.create_key("switchboard-tracer")


@dataclass(frozen=True, slots=True)
class TracingHandle:
    """Tracing that is on: the provider, the tracer to hand out, and a bounded shutdown."""

    provider: TracerProvider
    tracer: trace.Tracer

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Export what is buffered and stop, waiting ``timeout`` seconds at most.

        Returns False when that was not enough (the collector is down or slow): the
        spans still buffered are lost, but the process is free to exit. The export runs
        on a daemon thread because the SDK's own flush ignores its timeout while the
        exporter retries.
        """
        worker = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _log.warning("tracing: spans not exported within %.1f s were dropped", timeout)
            return False
        return True


def setup_tracing(
    service_name: str = "switchboard", exporter: SpanExporter | None = None
) -> TracingHandle | None:
    """Build the tracer provider, or return None when tracing is off (see the module doc).

    ``exporter`` replaces the OTLP exporter (tests pass an in-memory one); tracing is
    then on whatever the environment says. ``service_name`` is the default
    ``service.name``, which ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` override.
    Raises ``ValueError`` when the environment asks for an OTLP protocol other than grpc.
    """
    if exporter is None:
        if not _enabled():
            return None
        exporter = _otlp_exporter()
    # The SDK loads only when tracing is on (code that makes spans needs only the API).
    from opentelemetry.sdk.resources import (  # noqa: PLC0415
        SERVICE_NAME,
        OTELResourceDetector,
        Resource,
    )
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create({SERVICE_NAME: service_name}).merge(OTELResourceDetector().detect())
    # shutdown_on_exit=False: the SDK's exit hook would flush without a bound, and
    # exit hangs while the collector is down. ``TracingHandle.shutdown`` is bounded.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return TracingHandle(provider, provider.get_tracer(INSTRUMENTATION_NAME))


def tracer_or_global(tracer: trace.Tracer | None) -> trace.Tracer:
    """``tracer``, or the global provider's (a no-op unless something installed one)."""
    return tracer if tracer is not None else trace.get_tracer(INSTRUMENTATION_NAME)


def bind_tracer(tracer: trace.Tracer, context: otel_context.Context) -> otel_context.Context:
    """``context`` carrying ``tracer``, for spans made below it (see ``bound_tracer``)."""
    return otel_context.set_value(_TRACER_KEY, tracer, context)


def bound_tracer(context: otel_context.Context | None = None) -> trace.Tracer:
    """The tracer ``context`` (default: the current one) carries, else the global one."""
    tracer = otel_context.get_value(_TRACER_KEY, context)
    return tracer if isinstance(tracer, trace.Tracer) else tracer_or_global(None)


def _enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not any(os.environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES):
        return False
    for name in _PROTOCOL_VARIABLES:
        protocol = os.environ.get(name, "").strip()
        if protocol:
            if protocol != "grpc":
                raise ValueError(f"{name}={protocol}: only grpc is supported")
            break
    return True


def _otlp_exporter() -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return OTLPSpanExporter()
