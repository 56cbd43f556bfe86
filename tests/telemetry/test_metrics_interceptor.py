"""The metrics interceptor on a real grpc.aio server: every handler style, every ending.

The chain mirrors the service's: errors outside, then a stand-in for tracing (puts a
span in the context), the metrics interceptor, then a stand-in for auth (sets the
caller and leaves it set). Each RPC writes one access line: tests wait for it, which
also says the server-side scope has ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from switchboard.server.auth import Caller, current_caller
from switchboard.server.domain import FieldViolation, InvalidArgument, NotFound
from switchboard.server.interceptors import ErrorsInterceptor, MetricsInterceptor
from switchboard.server.interceptors.handlers import Handler, ServerInterceptor, wrap
from switchboard.server.telemetry import JsonFormatter, Metrics
from switchboard.server.telemetry.access import ACCESS_LOGGER
from tests.telemetry.series import grpc_labels, series

SERVICE = "test.Probe"
HEALTH = "grpc.health.v1.Health"
REPLY = b"secret-reply"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


class Probe:
    """Handlers of every style that end as the request says (requests ok* succeed)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def unary(self, request: bytes, context: Any) -> bytes:
        await self._end(request, context)
        return REPLY

    async def generator(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield REPLY
        yield REPLY
        await self._end(request, context)

    async def writer(self, request: bytes, context: Any) -> None:
        await context.write(REPLY)
        await context.write(REPLY)
        await self._end(request, context)

    async def _end(self, request: bytes, context: Any) -> None:
        if request == b"hang":
            self.entered.set()
            await asyncio.Event().wait()
        elif request == b"abort":
            await context.abort(grpc.StatusCode.ABORTED, "aborted by the handler")
        elif request == b"set_code":
            context.set_code(grpc.StatusCode.DATA_LOSS)
        elif request == b"invalid":
            raise InvalidArgument([FieldViolation("task.input", "must not be empty")])
        elif request == b"not_found":
            raise NotFound("task", "t-1")
        elif request == b"crash":
            raise ZeroDivisionError("a bug")
        else:
            assert request.startswith(b"ok")


class _Scope:
    """A scope that runs ``enter`` before the call and ``leave`` after it."""

    def __init__(self, enter: Callable[[], Any], leave: Callable[[Any], None]) -> None:
        self._enter, self._leave, self._token = enter, leave, None

    async def __aenter__(self) -> _Scope:
        self._token = self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave(self._token)

    def sent(self) -> None:
        pass


class _Around(ServerInterceptor):
    """Runs ``enter``/``leave`` around every call: a stand-in for tracing or auth."""

    def __init__(self, enter: Callable[[], Any], leave: Callable[[Any], None]) -> None:
        self._enter, self._leave = enter, leave

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return wrap(
            await continuation(details),
            details.method,
            lambda call, request, context: _Scope(self._enter, self._leave),
        )


def _traced() -> _Around:
    span = trace.NonRecordingSpan(trace.SpanContext(TRACE_ID, 0x00F067AA0BA902B7, is_remote=False))
    return _Around(
        lambda: otel_context.attach(trace.set_span_in_context(span)), otel_context.detach
    )


def _authenticated() -> _Around:
    # Like the auth interceptor: the caller stays set until the call's task ends.
    return _Around(lambda: current_caller.set(Caller("alice", "alice")), lambda token: None)


@dataclass
class Served:
    channel: grpc.aio.Channel
    metrics: Metrics
    probe: Probe
    health: Any
    lines: asyncio.Queue[logging.LogRecord]

    def call(self, method: str, request: bytes, **kwargs: Any) -> Any:
        path = f"/{SERVICE}/{method}"
        if method == "Unary":
            return self.channel.unary_unary(path)(request, **kwargs)
        return self.channel.unary_stream(path)(request, **kwargs)

    async def line(self) -> logging.LogRecord:
        """The next access line (the next RPC to end on the server)."""
        return await asyncio.wait_for(self.lines.get(), timeout=10)

    def handled(self) -> dict[Any, float]:
        return series(self.metrics.registry, "grpc_server_handled_total")


class _Lines(logging.Handler):
    def __init__(self, queue: asyncio.Queue[logging.LogRecord]) -> None:
        super().__init__()
        self._queue = queue
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, record)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    metrics = Metrics()
    probe = Probe()
    server = grpc.aio.server(
        interceptors=[ErrorsInterceptor(), _traced(), MetricsInterceptor(metrics), _authenticated()]
    )
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
    lines: asyncio.Queue[logging.LogRecord] = asyncio.Queue()
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, level = _Lines(lines), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Served(channel, metrics, probe, health_servicer, lines)
    finally:
        await server.stop(None)
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _finish(call: Any, method: str) -> grpc.StatusCode:
    """Consume the call to its end; the status code the client saw."""
    try:
        if method == "Unary":
            await call
        else:
            async for _ in call:
                pass
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


KINDS = {"Unary": "unary", "Generator": "server_stream", "Writer": "server_stream"}


@pytest.mark.parametrize(("method", "messages"), [("Unary", 1), ("Generator", 2), ("Writer", 2)])
async def test_a_successful_call_is_counted_once_per_series(
    served: Served, method: str, messages: int
) -> None:
    assert await _finish(served.call(method, b"ok"), method) is grpc.StatusCode.OK
    await served.line()
    registry, kind = served.metrics.registry, KINDS[method]
    only = {grpc_labels(kind, SERVICE, method): 1.0}
    assert series(registry, "grpc_server_started_total") == only
    assert series(registry, "grpc_server_msg_received_total") == only
    assert series(registry, "grpc_server_msg_sent_total") == {
        grpc_labels(kind, SERVICE, method): float(messages)
    }
    assert served.handled() == {grpc_labels(kind, SERVICE, method, grpc_code="OK"): 1.0}
    assert series(registry, "grpc_server_handling_seconds_count") == only
    buckets = series(registry, "grpc_server_handling_seconds_bucket")
    assert buckets[grpc_labels(kind, SERVICE, method, le="+Inf")] == 1.0
    assert {dict(key)["le"] for key in buckets} == {
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
        "1.0", "2.5", "5.0", "10.0", "30.0", "60.0", "300.0", "+Inf",
    }  # fmt: skip


ENDINGS = [
    (b"invalid", "INVALID_ARGUMENT"),
    (b"not_found", "NOT_FOUND"),
    (b"abort", "ABORTED"),
    (b"set_code", "DATA_LOSS"),
    (b"crash", "INTERNAL"),
]


@pytest.mark.parametrize("method", ["Unary", "Generator", "Writer"])
@pytest.mark.parametrize(("request_bytes", "code"), ENDINGS)
async def test_the_code_recorded_is_the_code_the_client_gets(
    served: Served, method: str, request_bytes: bytes, code: str
) -> None:
    seen = await _finish(served.call(method, request_bytes), method)
    assert seen.name == code
    assert (await served.line()).code == code
    assert served.handled() == {grpc_labels(KINDS[method], SERVICE, method, grpc_code=code): 1.0}


async def test_messages_sent_before_a_failure_are_counted(served: Served) -> None:
    await _finish(served.call("Writer", b"crash"), "Writer")
    await _finish(served.call("Generator", b"crash"), "Generator")
    await _finish(served.call("Unary", b"crash"), "Unary")
    for _ in range(3):
        await served.line()
    assert series(served.metrics.registry, "grpc_server_msg_sent_total") == {
        grpc_labels("server_stream", SERVICE, "Writer"): 2.0,
        grpc_labels("server_stream", SERVICE, "Generator"): 2.0,
        grpc_labels("unary", SERVICE, "Unary"): 0.0,
    }


@pytest.mark.parametrize("method", ["Unary", "Generator", "Writer"])
async def test_a_call_the_client_cancels_is_cancelled(served: Served, method: str) -> None:
    call = served.call(method, b"hang")
    await served.probe.entered.wait()
    call.cancel()
    assert (await served.line()).code == "CANCELLED"
    assert served.handled() == {
        grpc_labels(KINDS[method], SERVICE, method, grpc_code="CANCELLED"): 1.0
    }


async def test_health_check_and_watch_are_counted(served: Served) -> None:
    stub = health_pb2_grpc.HealthStub(served.channel)
    await stub.Check(health_pb2.HealthCheckRequest(service=""))
    await served.line()
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    await served.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    assert (await served.line()).method == f"/{HEALTH}/Watch"
    assert served.handled() == {
        grpc_labels("unary", HEALTH, "Check", grpc_code="OK"): 1.0,
        grpc_labels("server_stream", HEALTH, "Watch", grpc_code="CANCELLED"): 1.0,
    }
    assert series(served.metrics.registry, "grpc_server_msg_sent_total") == {
        grpc_labels("unary", HEALTH, "Check"): 1.0,
        grpc_labels("server_stream", HEALTH, "Watch"): 2.0,
    }


async def test_reflection_streams_are_counted_as_bidi(served: Served) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
    asks = [reflection_pb2.ServerReflectionRequest(list_services="")] * 2
    answers = [answer async for answer in stub.ServerReflectionInfo(iter(asks))]
    assert len(answers) == 2
    await served.line()
    registry = served.metrics.registry
    only = grpc_labels("bidi_stream", reflection.SERVICE_NAME, "ServerReflectionInfo")
    assert served.handled() == {
        grpc_labels(
            "bidi_stream", reflection.SERVICE_NAME, "ServerReflectionInfo", grpc_code="OK"
        ): 1.0
    }
    assert series(registry, "grpc_server_msg_sent_total") == {only: 2.0}
    # Request streams are not counted message by message.
    assert series(registry, "grpc_server_msg_received_total") == {}


async def test_unknown_methods_are_not_recorded(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await served.channel.unary_unary(f"/{SERVICE}/Nope")(b"ok")
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.aio.AioRpcError):
        await served.channel.unary_unary("/no.such.Service/Method")(b"ok")
    await _finish(served.call("Unary", b"ok"), "Unary")
    # The first line is the known call's: the unknown ones wrote none.
    assert (await served.line()).method == f"/{SERVICE}/Unary"
    for name in ("grpc_server_started_total", "grpc_server_handled_total"):
        methods = {dict(key)["grpc_method"] for key in series(served.metrics.registry, name)}
        assert methods == {"Unary"}


async def test_the_access_line_says_who_called_what_and_how_it_ended(served: Served) -> None:
    metadata = (("x-request-id", "req-42"),)
    await _finish(served.call("Unary", b"ok top-secret-input", metadata=metadata), "Unary")
    record = await served.line()
    assert record.levelno == logging.INFO
    assert record.name == ACCESS_LOGGER
    entry = json.loads(JsonFormatter().format(record))
    assert entry["method"] == f"/{SERVICE}/Unary"
    assert entry["code"] == "OK"
    assert isinstance(entry["duration_ms"], float)
    assert entry["duration_ms"] >= 0
    assert entry["peer"].startswith("ipv4:127.0.0.1:")
    assert entry["caller"] == "alice"
    assert entry["request_id"] == "req-42"
    assert entry["trace_id"] == f"{TRACE_ID:032x}"
    line = JsonFormatter().format(record)
    assert "top-secret-input" not in line
    assert REPLY.decode() not in line


async def test_a_call_without_a_request_id_gets_one(served: Served) -> None:
    await _finish(served.call("Generator", b"invalid"), "Generator")
    await _finish(served.call("Generator", b"invalid"), "Generator")
    first, second = await served.line(), await served.line()
    assert len(first.request_id) == 32
    int(first.request_id, 16)
    assert first.request_id != second.request_id
    assert first.code == "INVALID_ARGUMENT"


async def test_an_oversized_request_id_is_clipped(served: Served) -> None:
    metadata = (("x-request-id", "r" * 5000),)
    await _finish(served.call("Unary", b"ok", metadata=metadata), "Unary")
    assert (await served.line()).request_id == "r" * 128


async def test_the_access_line_is_written_only_when_info_is_on(served: Served) -> None:
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    await _finish(served.call("Unary", b"ok"), "Unary")
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    await _finish(served.call("Unary", b"ok-second"), "Unary")
    await served.line()
    assert served.lines.empty()
    assert served.handled() == {grpc_labels("unary", SERVICE, "Unary", grpc_code="OK"): 2.0}
