"""The tracing interceptor on a real grpc.aio server, behind the errors interceptor,
exporting through a real OTLP receiver: every handler style, every way a call ends."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from switchboard.server.domain import NotFound, Unavailable
from switchboard.server.interceptors import ErrorsInterceptor
from switchboard.server.interceptors.tracing import TracingInterceptor
from switchboard.server.telemetry.tracing import setup_tracing
from tests.telemetry.json_logs import JsonLines, json_lines
from tests.telemetry.otlp import (
    SERVER,
    STATUS_ERROR,
    STATUS_UNSET,
    Exporting,
    ReceivedSpan,
    clear_otel_environment,
    ended,
    exporting,
)

SERVICE = "test.Probe"
_log = logging.getLogger("tests.probe")


def _fail(request: bytes) -> None:
    if request == b"missing":
        raise NotFound("task", "t-404")
    if request == b"unavailable":
        raise Unavailable("try later", retry_after=timedelta(seconds=1))
    if request == b"bug":
        raise ZeroDivisionError("secret internals")
    if request == b"log":
        _log.warning("inside the handler")
    elif request != b"ok":
        raise AssertionError(request)


class Probe:
    """Handlers of every style that end as the request says."""

    async def unary(self, request: bytes, context: Any) -> bytes:
        if request == b"abort":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        _fail(request)
        return b"done"

    async def generator(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"1"
        _fail(request)
        yield b"2"

    async def writer(self, request: bytes, context: Any) -> None:
        await context.write(b"1")
        _fail(request)
        await context.write(b"2")


@dataclass
class Served:
    channel: grpc.aio.Channel
    health: Any
    tracing: Exporting


async def _serve(tracing: Exporting, **options: Any) -> AsyncIterator[Served]:
    server = grpc.aio.server(
        interceptors=[ErrorsInterceptor(), TracingInterceptor(tracing.handle.tracer, **options)]
    )
    probe = Probe()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(probe.unary),
        "Generator": grpc.unary_stream_rpc_method_handler(probe.generator),
        "Writer": grpc.unary_stream_rpc_method_handler(probe.writer),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Served(channel, health_servicer, tracing)
    finally:
        await server.stop(None)


@pytest.fixture
async def tracing(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Exporting]:
    async with exporting(monkeypatch) as exported:
        yield exported


@pytest.fixture
async def served(tracing: Exporting) -> AsyncIterator[Served]:
    """The probe and health services, health traced too."""
    async for served in _serve(tracing, untraced=()):
        yield served


STYLES = [("Unary", False), ("Generator", True), ("Writer", True)]


async def _call(
    channel: grpc.aio.Channel, method: str, streaming: bool, request: bytes, **kwargs: Any
) -> grpc.StatusCode:
    """Make the call; the status code it ended with."""
    path = f"/{SERVICE}/{method}"
    try:
        if streaming:
            async for _ in channel.unary_stream(path)(request, **kwargs):
                pass
        else:
            await channel.unary_unary(path)(request, **kwargs)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _span(served: Served, method: str) -> ReceivedSpan:
    receiver = await served.tracing.flush()
    return receiver.one(f"{SERVICE}/{method}")


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_a_call_is_a_server_span_with_the_rpc_attributes(
    served: Served, method: str, streaming: bool
) -> None:
    assert await _call(served.channel, method, streaming, b"ok") == grpc.StatusCode.OK

    span = await _span(served, method)
    assert span.kind == SERVER
    assert span.parent_id == ""
    assert span.status == STATUS_UNSET
    assert span.attributes["rpc.system"] == "grpc"
    assert span.attributes["rpc.service"] == SERVICE
    assert span.attributes["rpc.method"] == method
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["network.peer.address"] == "127.0.0.1"
    assert isinstance(span.attributes["network.peer.port"], int)
    assert span.resource["service.name"] == "switchboard"
    assert span.resource["deployment.environment.name"] == "test"


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_the_callers_traceparent_is_the_parent(
    served: Served, method: str, streaming: bool
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    metadata = (
        ("traceparent", f"00-{trace_id}-{parent_id}-01"),
        ("tracestate", "vendor=opaque"),
        ("other-bin", b"\x00\x01"),  # binary metadata carries no trace context
    )
    await _call(served.channel, method, streaming, b"ok", metadata=metadata)

    span = await _span(served, method)
    assert (span.trace_id, span.parent_id) == (trace_id, parent_id)


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{'0' * 32}-{secrets.token_hex(8)}-01",  # an all-zero trace id is invalid
        f"00-{secrets.token_hex(16)}-{'0' * 16}-01",  # and so is an all-zero span id
        f"00-{secrets.token_hex(15)}-{secrets.token_hex(8)}-01",  # too short
    ],
)
async def test_a_bad_traceparent_starts_a_new_trace(served: Served, traceparent: str) -> None:
    code = await _call(
        served.channel, "Unary", False, b"ok", metadata=(("traceparent", traceparent),)
    )
    assert code == grpc.StatusCode.OK

    span = await _span(served, "Unary")
    assert span.parent_id == ""
    assert span.trace_id not in traceparent


FAILURES = [
    # request, code, whether the server is at fault (span status ERROR)
    (b"missing", grpc.StatusCode.NOT_FOUND, False),
    (b"unavailable", grpc.StatusCode.UNAVAILABLE, True),
    (b"bug", grpc.StatusCode.INTERNAL, True),
]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("request_bytes", "code", "server_fault"), FAILURES)
async def test_a_failed_call_has_the_code_the_client_got(
    served: Served,
    style: tuple[str, bool],
    request_bytes: bytes,
    code: grpc.StatusCode,
    server_fault: bool,
) -> None:
    method, streaming = style
    assert await _call(served.channel, method, streaming, request_bytes) == code

    span = await _span(served, method)
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    if server_fault:
        assert span.status == STATUS_ERROR
        assert span.status_message == code.name
    else:
        # A caller's mistake is not the server's failure (OpenTelemetry's gRPC conventions).
        assert span.status == STATUS_UNSET


async def test_a_handler_that_aborts_has_the_code_it_aborted_with(served: Served) -> None:
    assert await _call(served.channel, "Unary", False, b"abort") == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    span = await _span(served, "Unary")
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert span.status == STATUS_UNSET


async def test_an_unknown_method_is_unimplemented_and_not_traced(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.channel.unary_unary(f"/{SERVICE}/Nope")(b"ok")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    receiver = await served.tracing.flush()
    assert receiver.spans == []


async def test_the_health_watch_stream_works_through_the_interceptor(served: Served) -> None:
    watched = ended(served.tracing.handle, "grpc.health.v1.Health/Watch")
    stub = health_pb2_grpc.HealthStub(served.channel)
    await served.health.set("svc", health_pb2.HealthCheckResponse.SERVING)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="svc"))
    statuses = call.__aiter__()
    assert (await anext(statuses)).status == health_pb2.HealthCheckResponse.SERVING
    await served.health.set("svc", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert (await anext(statuses)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    call.cancel()
    await watched.wait()

    span = await _span_named(served, "grpc.health.v1.Health/Watch")
    assert span.attributes["rpc.service"] == "grpc.health.v1.Health"
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert span.status == STATUS_UNSET


async def test_reflection_streams_through_the_interceptor_and_is_traced(served: Served) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services="")]
    responses = [response async for response in stub.ServerReflectionInfo(iter(requests))]
    listed = {service.name for service in responses[0].list_services_response.service}
    assert SERVICE in listed

    span = await _span_named(served, f"{reflection.SERVICE_NAME}/ServerReflectionInfo")
    assert span.attributes["rpc.grpc.status_code"] == 0


async def test_health_is_not_traced_by_default(tracing: Exporting) -> None:
    async for served in _serve(tracing):
        stub = health_pb2_grpc.HealthStub(served.channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        assert await _call(served.channel, "Unary", False, b"ok") == grpc.StatusCode.OK

        receiver = await tracing.flush()
        assert receiver.names() == [f"{SERVICE}/Unary"]


async def _span_named(served: Served, name: str) -> ReceivedSpan:
    return (await served.tracing.flush()).one(name)


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    with json_lines() as lines:
        yield lines


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_log_lines_in_a_call_carry_its_trace_and_span_ids(
    served: Served, logs: JsonLines, method: str, streaming: bool
) -> None:
    await _call(served.channel, method, streaming, b"log")

    span = await _span(served, method)
    [line] = [line for line in logs() if line["message"] == "inside the handler"]
    assert (line["trace_id"], line["span_id"]) == (span.trace_id, span.span_id)


async def test_the_errors_interceptor_logs_a_bug_with_the_calls_trace_id(
    served: Served, logs: JsonLines
) -> None:
    await _call(served.channel, "Unary", False, b"bug")

    span = await _span(served, "Unary")
    [line] = [line for line in logs() if "failed unexpectedly" in line["message"]]
    assert (line["trace_id"], line["span_id"]) == (span.trace_id, span.span_id)
    assert line["level"] == "error"


async def test_with_tracing_off_calls_work_and_log_only_the_callers_ids(
    monkeypatch: pytest.MonkeyPatch, logs: JsonLines
) -> None:
    clear_otel_environment(monkeypatch)
    assert setup_tracing() is None
    server = grpc.aio.server(interceptors=[ErrorsInterceptor(), TracingInterceptor()])
    probe = Probe()
    handlers = {"Unary": grpc.unary_unary_rpc_method_handler(probe.unary)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await _call(channel, "Unary", False, b"log") == grpc.StatusCode.OK
            metadata = (("traceparent", f"00-{trace_id}-{parent_id}-01"),)
            code = await _call(channel, "Unary", False, b"log", metadata=metadata)
            assert code == grpc.StatusCode.OK
    finally:
        await server.stop(None)

    untraced, continued = [line for line in logs() if line["logger"] == "tests.probe"]
    assert "trace_id" not in untraced
    assert (continued["trace_id"], continued["span_id"]) == (trace_id, parent_id)
