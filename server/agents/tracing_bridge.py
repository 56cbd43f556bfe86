"""The Agents SDK's traces as OpenTelemetry spans, instead of uploads to OpenAI.

The SDK reports its traces and spans to trace processors; ``OtelBridge`` is the only
one installed (see ``sdk.disable_sdk_tracing``). An SDK trace is one ``Runner`` run (one
attempt of a task). It starts in the task's run, where the orchestrator's ``agent run``
span is current: that span becomes the parent of the run's spans, and the tracer bound
to its context (``telemetry.tracing.bind_tracer``) makes them. Span names and attributes
follow OpenTelemetry's GenAI conventions:

- agent -> ``invoke_agent NAME``; generation/response (a model call) -> ``chat MODEL``
  with the tokens used; function (a tool call) -> ``execute_tool NAME``;
- handoff -> ``handoff`` (from, to); guardrail and custom spans by their name; anything
  else by its SDK type.

No payload is copied: model inputs and outputs, tool arguments and results stay out of
spans (the runs also set ``trace_include_sensitive_data=False``, so the SDK does not
even collect them). A failed SDK span gets status ERROR with the SDK's message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agents.tracing import (
    AgentSpanData,
    CustomSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    HandoffSpanData,
    ResponseSpanData,
    Span,
    SpanData,
    Trace,
    TracingProcessor,
)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from switchboard.server.telemetry.tracing import bound_tracer

_AttributeValue = str | int | bool


@dataclass(slots=True)
class _Run:
    """One SDK trace: its parent context, tracer, and its spans still open."""

    context: otel_context.Context
    tracer: trace.Tracer
    spans: dict[str, trace.Span] = field(default_factory=dict)


class OtelBridge(TracingProcessor):
    """A trace processor that turns the SDK's spans into OpenTelemetry spans.

    The SDK may call it from several threads (tools can run in threads): a lock keeps
    its books. A span whose parent it does not know (or no longer) goes under the run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}

    def on_trace_start(self, trace: Trace) -> None:
        """Remember the context the run started in: its spans' parent."""
        context = otel_context.get_current()
        with self._lock:
            self._runs[trace.trace_id] = _Run(context, bound_tracer(context))

    def on_trace_end(self, trace: Trace) -> None:
        """Forget the run; end any span the SDK left open (a cancelled run)."""
        with self._lock:
            run = self._runs.pop(trace.trace_id, None)
        for span in run.spans.values() if run is not None else ():
            span.end()

    def on_span_start(self, span: Span[Any]) -> None:
        """Start the OpenTelemetry span, under the SDK span's parent (or the run)."""
        with self._lock:
            run = self._runs.get(span.trace_id)
            if run is None:
                return
            parent = run.spans.get(span.parent_id or "")
            if parent is not None:
                context = trace.set_span_in_context(parent, run.context)
            else:
                context = run.context
            name, attributes = _describe(span.span_data)
            run.spans[span.span_id] = run.tracer.start_span(name, context, attributes=attributes)

    def on_span_end(self, span: Span[Any]) -> None:
        """Add what the SDK learnt while the span ran (model, usage, error), then end it."""
        with self._lock:
            run = self._runs.get(span.trace_id)
            otel_span = run.spans.pop(span.span_id, None) if run is not None else None
        if otel_span is None:
            return
        name, attributes = _describe(span.span_data)
        otel_span.update_name(name)
        otel_span.set_attributes(attributes | _usage(span.span_data))
        if span.error is not None:
            otel_span.set_status(Status(StatusCode.ERROR, span.error.get("message")))
        otel_span.end()

    def shutdown(self) -> None:
        """Nothing buffered here: the tracer provider exports (and is shut down by its owner)."""

    def force_flush(self) -> None:
        """Nothing buffered here (see ``shutdown``)."""


def _describe(data: SpanData) -> tuple[str, dict[str, _AttributeValue]]:
    """The span's name and attributes (no payloads) for the SDK span ``data``."""
    if isinstance(data, AgentSpanData):
        return f"invoke_agent {data.name}", {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": data.name,
        }
    if isinstance(data, GenerationSpanData | ResponseSpanData):
        model = _model(data)
        attributes: dict[str, _AttributeValue] = {"gen_ai.operation.name": "chat"}
        if model:
            attributes["gen_ai.request.model"] = model
        return " ".join(filter(None, ("chat", model))), attributes
    if isinstance(data, FunctionSpanData):
        return f"execute_tool {data.name}", {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": data.name,
        }
    if isinstance(data, HandoffSpanData):
        return "handoff", {
            "switchboard.handoff.from_agent": data.from_agent or "",
            "switchboard.handoff.to_agent": data.to_agent or "",
        }
    if isinstance(data, GuardrailSpanData):
        return f"guardrail {data.name}", {"switchboard.guardrail.triggered": data.triggered}
    if isinstance(data, CustomSpanData):
        return data.name, {}
    return data.type, {}


def _model(data: GenerationSpanData | ResponseSpanData) -> str:
    if isinstance(data, GenerationSpanData):
        return data.model or ""
    return data.response.model if data.response is not None else ""


def _usage(data: SpanData) -> dict[str, _AttributeValue]:
    """Tokens a model call used, when the SDK reported them."""
    if not isinstance(data, GenerationSpanData | ResponseSpanData):
        return {}
    usage = data.usage
    if not isinstance(usage, dict):
        return {}
    return {
        f"gen_ai.usage.{kind}": usage[kind]
        for kind in ("input_tokens", "output_tokens")
        if isinstance(usage.get(kind), int)
    }
