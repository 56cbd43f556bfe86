"""Wrapping a gRPC method handler, of any style, in per-call behaviour.

grpc.aio interceptors only see the method name and metadata. To see the request,
the outcome and the messages sent, an interceptor replaces the handler's behaviour
(RECIPES.md). Handlers come in three shapes here: coroutines returning one response,
async generators yielding a stream, and coroutines that stream by ``await
context.write()`` (the health ``Watch``). ``wrap`` runs a ``Scope`` around each of
them, so every interceptor writes its behaviour once, as a ``CallScope``:

- ``entered()`` runs before the handler; raising there refuses the call;
- ``sent()`` is called for each response message a wrapped handler returns, yields
  or writes with ``context.write()``;
- ``exited(exc)`` sees how the call ended (the exception, or none); raising there
  replaces the outcome (the errors interceptor turns exceptions into statuses).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from switchboard.server.api.status import status_code
from switchboard.server.domain import SwitchboardError

# The stubs make these generic; the run-time classes are not subscriptable.
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    Context = grpc.aio.ServicerContext
    ServerInterceptor = grpc.aio.ServerInterceptor

_BEHAVIOURS = {
    (False, False): ("unary_unary", "unary"),
    (False, True): ("unary_stream", "server_stream"),
    (True, False): ("stream_unary", "client_stream"),
    (True, True): ("stream_stream", "bidi_stream"),
}


@dataclass(frozen=True, slots=True)
class Call:
    """What is being called: ``/package.Service/Method`` split up, and its streaming kind.

    ``kind`` uses the grpc_type names of the Prometheus gRPC metrics: ``unary``,
    ``client_stream``, ``server_stream``, ``bidi_stream``.
    """

    method: str
    service: str
    name: str
    kind: str

    @classmethod
    def of(cls, method: str, kind: str) -> Call:
        """Parse a full method name such as ``/switchboard.v1.TaskService/Execute``."""
        service, _, name = method.lstrip("/").rpartition("/")
        return cls(method, service or "unknown", name or method, kind)


class Scope(Protocol):
    """One call's behaviour in an interceptor (see the module doc)."""

    async def __aenter__(self) -> Scope: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None: ...

    def sent(self) -> None:
        """One response message went out."""
        ...


class CallScope:
    """A ``Scope`` whose hooks do nothing: an interceptor overrides the ones it needs."""

    async def __aenter__(self) -> CallScope:
        await self.entered()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        await self.exited(exc)
        return None

    async def entered(self) -> None:
        """Before the handler runs; raising refuses the call."""

    async def exited(self, exc: BaseException | None) -> None:
        """After the handler, with what ended it (None: it returned)."""

    def sent(self) -> None:
        """One response message went out."""


ScopeFactory = Callable[[Call, Any, "Context"], Scope]
"""Makes the scope of one call from the call, its request and its context."""


def wrap(handler: Handler | None, method: str, scope: ScopeFactory) -> Handler | None:
    """``handler`` with ``scope`` around every call (None stays None: UNIMPLEMENTED)."""
    if handler is None:
        return None
    attribute, kind = _BEHAVIOURS[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, attribute)
    call = Call.of(method, kind)
    wrapped = _around(behaviour, call, scope, single=not handler.response_streaming)
    # RpcMethodHandler is a namedtuple at run time; the stubs do not say so.
    return handler._replace(**{attribute: wrapped})  # type: ignore[attr-defined,no-any-return]


def _around(
    behaviour: Callable[..., Any], call: Call, scope: ScopeFactory, *, single: bool
) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async with scope(call, request, context) as current:
                async for response in behaviour(request, context):
                    current.sent()
                    yield response

        return stream
    if not inspect.iscoroutinefunction(behaviour):
        # A synchronous handler runs on gRPC's thread pool, outside this event loop.
        return behaviour

    async def coroutine(request: Any, context: Context) -> Any:
        async with scope(call, request, context) as current:
            if not single:  # it streams through context.write()
                return await behaviour(request, _CountingWrites(context, current))
            response = await behaviour(request, context)
            current.sent()
            return response

    return coroutine


class _CountingWrites:
    """The call's context, telling the scope about each ``write()``; the rest passes through."""

    def __init__(self, context: Context, scope: Scope) -> None:
        self._context = context
        self._scope = scope

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._scope.sent()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def final_code(exc: BaseException | None, context: Context) -> grpc.StatusCode:
    """The status a call ends with, as the errors interceptor (outermost) will send it.

    No exception: the code the handler set, else OK; an abort: its code; a domain
    error: its code; the client going away: CANCELLED; anything else: INTERNAL.
    """
    if exc is None or isinstance(exc, grpc.aio.AbortError):
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
    if isinstance(exc, SwitchboardError):
        return status_code(exc.code)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.INTERNAL
