"""The metrics interceptor: the ``grpc_server_*`` series and one access-log line per RPC.

It sits inside the errors and tracing interceptors and outside auth and rate
limiting, so it sees every call those refuse, and the exception a call ends with
before the errors interceptor turns it into a status. The status code is read from:

- no exception: the code the handler set (``context.set_code``), else OK;
- ``grpc.aio.AbortError`` (the handler aborted): the code it aborted with;
- a domain error (``SwitchboardError``): its code, as the errors interceptor maps it;
- ``CancelledError`` / ``GeneratorExit`` (the client went away, or the server stopped
  the call): CANCELLED;
- any other exception: INTERNAL (the errors interceptor reports it as such).

Only registered methods are recorded: an unknown method never reaches a handler
(the client gets UNIMPLEMENTED), so its name never becomes a label value.
Synchronous handlers run on gRPC's thread pool and are not observed (the service
has none). Request messages are counted for unary-request calls (one each); the
messages of request streams (only reflection has one) are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from switchboard.server.auth import current_caller
from switchboard.server.interceptors.handlers import (
    Call,
    CallScope,
    Context,
    Handler,
    ServerInterceptor,
    final_code,
    wrap,
)
from switchboard.server.telemetry.access import Access, log_access, request_id
from switchboard.server.telemetry.metrics import Metrics

_SINGLE_REQUEST = frozenset({"unary", "server_stream"})


class MetricsInterceptor(ServerInterceptor):
    """Counts and times every RPC (of any streaming style) and writes its access line."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler chosen by the rest of the chain."""
        handler = await continuation(handler_call_details)
        return wrap(handler, handler_call_details.method, self._scope)  # type: ignore[return-value]

    def _scope(self, call: Call, request: Any, context: Context) -> _CallScope:
        return _CallScope(self._metrics, call, context)


class _CallScope(CallScope):
    def __init__(self, metrics: Metrics, call: Call, context: Context) -> None:
        labels = (call.kind, call.service, call.name)
        self._call = call
        self._context = context
        self._metrics = metrics
        self._labels = labels
        self._sent = metrics.grpc_msg_sent.labels(*labels)
        self._started = 0.0
        # Read while the call is alive: a call the client abandoned must not be touched
        # again (gRPC's core crashes on a context whose stream is gone).
        self._peer = context.peer()
        self._request_id = request_id(context.invocation_metadata())

    async def entered(self) -> None:
        """Count the call as started (and its request received)."""
        self._started = time.perf_counter()
        self._metrics.grpc_started.labels(*self._labels).inc()
        if self._call.kind in _SINGLE_REQUEST:
            self._metrics.grpc_msg_received.labels(*self._labels).inc()

    async def exited(self, exc: BaseException | None) -> None:
        """Count the call as handled with its code and time; write its access log line."""
        seconds = time.perf_counter() - self._started
        code = final_code(exc, self._context).name
        self._metrics.grpc_handled.labels(*self._labels, code).inc()
        self._metrics.grpc_handling_seconds.labels(*self._labels).observe(seconds)
        caller = current_caller.get()
        log_access(
            Access(
                method=self._call.method,
                code=code,
                duration_ms=seconds * 1000,
                peer=self._peer,
                caller=caller.subject if caller is not None else None,
                request_id=self._request_id,
            )
        )

    def sent(self) -> None:
        """One response message went out."""
        self._sent.inc()
