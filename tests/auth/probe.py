"""A small real gRPC server behind errors -> spy -> auth, with handlers of every style.

The probe's handlers answer with the caller they see in ``current_caller``; the spy
stands where the metrics interceptor stands and records the caller it sees after the
call, as the access log does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from switchboard.server.auth import Caller, TokenVerifier, current_caller
from switchboard.server.config import AuthConfig
from switchboard.server.interceptors import AuthInterceptor, ErrorsInterceptor
from switchboard.server.interceptors.handlers import Call, Context, Handler, wrap

SERVICE = "test.Probe"
LOGIN = "/switchboard.v1.AuthService/Login"
STYLES = [("Unary", False), ("Generator", True), ("Writer", True)]


def describe(caller: Caller | None) -> bytes:
    """How a handler reports the caller it saw."""
    if caller is None:
        return b"anonymous"
    return f"{caller.subject}|{caller.owner}|{' '.join(sorted(caller.scopes))}".encode()


async def _unary(request: bytes, context: Any) -> bytes:
    return describe(current_caller.get())


async def _generator(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield describe(current_caller.get())
    yield b"2"


async def _writer(request: bytes, context: Any) -> None:
    await context.write(describe(current_caller.get()))
    await context.write(b"2")


def _blocking(request: bytes, context: Any) -> bytes:
    return b"served without a check"


@dataclass
class Spy(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records, per method, the caller visible after the call (where metrics reads it)."""

    seen: dict[str, Caller | None] = field(default_factory=dict)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        spy = self

        class _Scope:
            def __init__(self, call: Call, request: Any, context: Context) -> None:
                self.method = call.method

            async def __aenter__(self) -> _Scope:
                return self

            async def __aexit__(
                self,
                exc_type: type[BaseException] | None,
                exc: BaseException | None,
                traceback: TracebackType | None,
            ) -> None:
                spy.seen[self.method] = current_caller.get()

            def sent(self) -> None:
                pass

        return wrap(handler, handler_call_details.method, _Scope)  # type: ignore[return-value]


@dataclass
class ProbeServer:
    """The running probe server and a channel to it."""

    server: grpc.aio.Server
    channel: grpc.aio.Channel
    verifier: TokenVerifier | None
    health: Any
    spy: Spy

    def call(
        self,
        method: str,
        streaming: bool = False,
        metadata: tuple[tuple[str, str], ...] = (),
        request: bytes = b"",
    ) -> Any:
        """Call ``method`` (a probe name, or a full ``/service/method``)."""
        path = method if method.startswith("/") else f"/{SERVICE}/{method}"
        callable_ = self.channel.unary_stream(path) if streaming else self.channel.unary_unary(path)
        return callable_(request, metadata=metadata)

    async def answer(self, method: str, streaming: bool, metadata: Any) -> list[bytes]:
        """The messages a successful call returns."""
        call = self.call(method, streaming, metadata)
        if streaming:
            return [message async for message in call]
        return [await call]

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(None)
        if self.verifier is not None:
            await self.verifier.stop()


async def serve_probe(config: AuthConfig) -> ProbeServer:
    """Start the probe server with auth as ``config`` says."""
    verifier = TokenVerifier(config) if config.mode == "jwt" else None
    spy = Spy()
    server = grpc.aio.server(
        interceptors=[ErrorsInterceptor(), spy, AuthInterceptor(verifier, config)]
    )
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Generator": grpc.unary_stream_rpc_method_handler(_generator),
        "Writer": grpc.unary_stream_rpc_method_handler(_writer),
        "Blocking": grpc.unary_unary_rpc_method_handler(_blocking),
    }
    login = {"Login": grpc.unary_unary_rpc_method_handler(_unary)}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(SERVICE, handlers),
            grpc.method_handlers_generic_handler("switchboard.v1.AuthService", login),
        )
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    if verifier is not None:
        verifier.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return ProbeServer(server, channel, verifier, health_servicer, spy)
