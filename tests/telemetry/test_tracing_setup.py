"""setup_tracing: on only with an OTLP endpoint, configured by OTEL_* variables, a bounded
shutdown; and the spans' context where it is read (log lines, store writes)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchboard.server.orchestrator.spans import store_span
from switchboard.server.telemetry import JsonFormatter
from switchboard.server.telemetry.tracing import (
    TracingHandle,
    bind_tracer,
    bound_tracer,
    setup_tracing,
    tracer_or_global,
)
from tests.telemetry.otlp import clear_otel_environment, exporting, otlp_receiver


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture
def memory() -> Iterator[tuple[TracingHandle, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    handle = setup_tracing(exporter=exporter)
    assert handle is not None
    yield handle, exporter
    assert handle.shutdown()


def test_tracing_is_off_without_an_endpoint() -> None:
    assert setup_tracing() is None
    # Nothing global either: the service's spans are OpenTelemetry's no-op ones.
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not tracer_or_global(None).start_span("x").is_recording()


@pytest.mark.parametrize(
    ("name", "value"),
    [("OTEL_EXPORTER_OTLP_ENDPOINT", "  "), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")],
)
def test_an_empty_endpoint_is_no_endpoint(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert setup_tracing() is None


def test_otel_sdk_disabled_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup_tracing() is None


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "GRPC"])
def test_a_protocol_other_than_grpc_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv(variable, protocol)
    with pytest.raises(ValueError, match=f"{variable}={protocol}: only grpc is supported"):
        setup_tracing()


def test_the_traces_protocol_overrides_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    handle = setup_tracing()
    assert handle is not None
    assert handle.shutdown()


def test_an_explicit_exporter_turns_tracing_on(
    memory: tuple[TracingHandle, InMemorySpanExporter],
) -> None:
    handle, exporter = memory
    handle.tracer.start_span("work").end()
    assert handle.provider.force_flush()
    [span] = exporter.get_finished_spans()
    assert span.name == "work"
    assert span.resource.attributes["service.name"] == "switchboard"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "switchboard"


async def test_the_traces_endpoint_and_the_service_name_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with otlp_receiver() as (receiver, port):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "switchboard-eu")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,team=platform")
        handle = setup_tracing()
        assert handle is not None
        handle.tracer.start_span("work").end()
        assert await asyncio.to_thread(handle.shutdown, 10.0)
    [span] = receiver.spans
    assert span.resource["service.name"] == "switchboard-eu"
    assert span.resource["team"] == "platform"


async def test_the_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with exporting(monkeypatch, OTEL_TRACES_SAMPLER="always_off") as tracing:
        span = tracing.handle.tracer.start_span("dropped")
        assert not span.is_recording()
        span.end()
        receiver = await tracing.flush()
    assert receiver.spans == []


async def test_shutdown_is_bounded_when_the_collector_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with otlp_receiver() as (_, port):
        pass  # the receiver is gone: its port refuses connections
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    # The exporter would keep retrying for this long.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    handle = setup_tracing()
    assert handle is not None
    handle.tracer.start_span("lost").end()

    assert handle.shutdown(timeout=0.2) is False


def test_a_bound_tracer_travels_in_the_context(
    memory: tuple[TracingHandle, InMemorySpanExporter],
) -> None:
    handle, _ = memory
    context = bind_tracer(handle.tracer, otel_context.get_current())
    assert bound_tracer(context) is handle.tracer
    token = otel_context.attach(context)
    try:
        assert bound_tracer() is handle.tracer
    finally:
        otel_context.detach(token)
    assert bound_tracer() is not handle.tracer  # the global one, outside


def _log_line(formatter: JsonFormatter) -> dict[str, object]:
    record = logging.LogRecord("switchboard.test", logging.INFO, __file__, 1, "hello", (), None)
    return json.loads(formatter.format(record))  # type: ignore[no-any-return]


def test_a_log_line_carries_the_current_spans_ids(
    memory: tuple[TracingHandle, InMemorySpanExporter],
) -> None:
    handle, _ = memory
    formatter = JsonFormatter()
    assert "trace_id" not in _log_line(formatter)
    with handle.tracer.start_as_current_span("work") as span:
        line = _log_line(formatter)
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert "span_id" not in _log_line(formatter)


def test_a_store_write_is_a_child_of_the_first_writer_linked_to_the_others(
    memory: tuple[TracingHandle, InMemorySpanExporter],
) -> None:
    handle, exporter = memory
    tracer = handle.tracer
    writers = [tracer.start_span(f"writer {i}") for i in range(3)]
    contexts = [trace.set_span_in_context(writer) for writer in writers]
    empty = otel_context.Context()
    batch = [contexts[0], contexts[1], contexts[0], empty, contexts[2], contexts[1]]

    with store_span(tracer, "store.commit", batch, events=6, tasks=3):
        pass
    assert handle.provider.force_flush()

    [commit] = exporter.get_finished_spans()
    parent = writers[0].get_span_context()
    assert commit.parent is not None
    assert (commit.parent.trace_id, commit.parent.span_id) == (parent.trace_id, parent.span_id)
    assert [link.context.span_id for link in commit.links] == [
        writers[1].get_span_context().span_id,
        writers[2].get_span_context().span_id,
    ]
    assert dict(commit.attributes or {}) == {
        "switchboard.store.events": 6,
        "switchboard.store.tasks": 3,
    }


def test_a_failed_store_write_is_an_error_span(
    memory: tuple[TracingHandle, InMemorySpanExporter],
) -> None:
    handle, exporter = memory
    with (
        pytest.raises(ConnectionError),
        store_span(handle.tracer, "store.commit", events=1, tasks=1),
    ):
        raise ConnectionError("the database went away")
    assert handle.provider.force_flush()

    [commit] = exporter.get_finished_spans()
    assert commit.status.status_code is trace.StatusCode.ERROR
    assert commit.parent is None
    assert [event.name for event in commit.events] == ["exception"]
