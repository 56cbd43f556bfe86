"""The errors interceptor on a real grpc.aio server, for every handler style."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchboard.server.domain import (
    ERROR_DOMAIN,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SwitchboardError,
    Unavailable,
)
from switchboard.server.interceptors import ErrorsInterceptor
from tests.api.statuses import detail, failure

SERVICE = "test.Probe"
_ERRORS: dict[str, Callable[[], Exception]] = {
    "invalid": lambda: InvalidArgument(
        [FieldViolation("task.input", "must not be empty"), FieldViolation("task.tools[2]", "bad")]
    ),
    "many": lambda: InvalidArgument(
        [FieldViolation(f"requests[{i}].task.input", "x" * 1000) for i in range(60)]
    ),
    "not_found": lambda: NotFound("task", "t-404"),
    "precondition": lambda: FailedPrecondition("not now", reason="BUSY"),
    "exhausted": lambda: ResourceExhausted("queue full", retry_after=timedelta(seconds=2)),
    "bug": lambda: ZeroDivisionError("secret internals"),
}


def _fail(request: bytes) -> None:
    raise _ERRORS[request.decode()]()


class Probe:
    """Handlers of every style that fail as the request says (or succeed on b"ok")."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def unary(self, request: bytes, context: Any) -> bytes:
        if request == b"hang":
            self.entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if request == b"abort":
            await context.abort(grpc.StatusCode.ABORTED, "aborted by the handler")
        if request != b"ok":
            _fail(request)
        return b"done"

    async def generator(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"1"
        yield b"2"
        if request != b"ok":
            _fail(request)

    async def writer(self, request: bytes, context: Any) -> None:
        await context.write(b"1")
        await context.write(b"2")
        if request != b"ok":
            _fail(request)

    def blocking(self, request: bytes, context: Any) -> bytes:
        return b"sync " + request


@pytest.fixture
async def probe() -> Probe:
    return Probe()


@pytest.fixture
async def served(probe: Probe) -> AsyncIterator[tuple[grpc.aio.Channel, Any]]:
    """A channel to a server with the probe service and health, behind the interceptor."""
    server = grpc.aio.server(interceptors=[ErrorsInterceptor()])
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(probe.unary),
        "Generator": grpc.unary_stream_rpc_method_handler(probe.generator),
        "Writer": grpc.unary_stream_rpc_method_handler(probe.writer),
        "Blocking": grpc.unary_unary_rpc_method_handler(probe.blocking),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, health_servicer
    finally:
        await server.stop(None)


STYLES = [("Unary", False), ("Generator", True), ("Writer", True)]


def _call(channel: grpc.aio.Channel, method: str, streaming: bool, request: bytes) -> Any:
    path = f"/{SERVICE}/{method}"
    multicallable = channel.unary_stream(path) if streaming else channel.unary_unary(path)
    return multicallable(request)


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_success_passes_through(served: Any, method: str, streaming: bool) -> None:
    channel, _ = served
    call = _call(channel, method, streaming, b"ok")
    if streaming:
        assert [message async for message in call] == [b"1", b"2"]
    else:
        assert await call == b"done"
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_invalid_argument_carries_field_violations(
    served: Any, method: str, streaming: bool
) -> None:
    channel, _ = served
    call = _call(channel, method, streaming, b"invalid")
    received, status = await failure(call, streaming=streaming)
    assert received == ([b"1", b"2"] if streaming else [])
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == "task.input: must not be empty (and 1 more)"
    bad_request = detail(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("task.input", "must not be empty"),
        ("task.tools[2]", "bad"),
    ]
    info = detail(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", ERROR_DOMAIN)


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_not_found_carries_error_info(served: Any, method: str, streaming: bool) -> None:
    channel, _ = served
    call = _call(channel, method, streaming, b"not_found")
    _, status = await failure(call, streaming=streaming)
    assert await call.code() == grpc.StatusCode.NOT_FOUND
    assert status.message == "task 't-404' not found"
    info = detail(status, error_details_pb2.ErrorInfo)
    assert info.reason == "TASK_NOT_FOUND"
    assert info.domain == ERROR_DOMAIN
    assert dict(info.metadata) == {"kind": "task", "name": "t-404"}


async def test_failed_precondition(served: Any) -> None:
    channel, _ = served
    call = _call(channel, "Unary", False, b"precondition")
    _, status = await failure(call)
    assert await call.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert detail(status, error_details_pb2.ErrorInfo).reason == "BUSY"


async def test_resource_exhausted_says_when_to_retry(served: Any) -> None:
    channel, _ = served
    call = _call(channel, "Unary", False, b"exhausted")
    _, status = await failure(call)
    assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = detail(status, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta() == timedelta(seconds=2)
    assert detail(status, error_details_pb2.ErrorInfo).reason == "RESOURCE_EXHAUSTED"


async def test_many_violations_are_capped_and_the_rest_counted(served: Any) -> None:
    channel, _ = served
    call = _call(channel, "Unary", False, b"many")
    _, status = await failure(call)
    violations = detail(status, error_details_pb2.BadRequest).field_violations
    assert 0 < len(violations) <= 20
    assert violations[0].field == "requests[0].task.input"
    assert all(len(v.description) <= 256 for v in violations)
    assert f"[{60 - len(violations)} more violations not listed in the details]" in status.message
    assert len(status.SerializeToString()) < 8 * 1024


async def test_an_unexpected_error_is_internal_with_an_error_id_only(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    channel, _ = served
    call = _call(channel, "Generator", True, b"bug")
    with caplog.at_level(logging.ERROR, logger="switchboard.server.interceptors.errors"):
        _, status = await failure(call, streaming=True)
    assert await call.code() == grpc.StatusCode.INTERNAL
    info = detail(status, error_details_pb2.ErrorInfo)
    error_id = info.metadata["error_id"]
    assert status.message == f"internal error (error id {error_id})"
    everything_sent = status.SerializeToString() + repr(await call.trailing_metadata()).encode()
    for secret in (b"secret internals", b"ZeroDivisionError", b"Traceback"):
        assert secret not in everything_sent
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ZeroDivisionError)
    assert error_id in record.getMessage()
    assert "/test.Probe/Generator" in record.getMessage()


async def test_a_handlers_own_abort_passes_through(served: Any) -> None:
    channel, _ = served
    call = _call(channel, "Unary", False, b"abort")
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await call
    assert excinfo.value.code() == grpc.StatusCode.ABORTED
    assert excinfo.value.details() == "aborted by the handler"


async def test_cancellation_passes_through(served: Any, probe: Probe) -> None:
    channel, _ = served
    call = _call(channel, "Unary", False, b"hang")
    await probe.entered.wait()
    call.cancel()
    await probe.cancelled.wait()
    assert await call.code() == grpc.StatusCode.CANCELLED


async def test_a_synchronous_handler_is_left_alone(served: Any) -> None:
    channel, _ = served
    assert await _call(channel, "Blocking", False, b"x") == b"sync x"


async def test_unknown_methods_stay_unimplemented(served: Any) -> None:
    channel, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await channel.unary_unary("/test.Probe/Nope")(b"")
    assert excinfo.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_check_and_watch_work_through_it(served: Any) -> None:
    channel, health_servicer = served
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND

    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    second = await watch.read()
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


def test_every_domain_error_code_is_a_grpc_code() -> None:
    # A guard against renaming: the interceptor looks the codes up by name.
    for kind in (
        SwitchboardError,
        InvalidArgument,
        NotFound,
        FailedPrecondition,
        Unavailable,
        ResourceExhausted,
    ):
        assert kind.code in grpc.StatusCode.__members__, kind
