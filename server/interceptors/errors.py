"""The outermost interceptor: every failure leaves as a ``google.rpc.Status`` with details.

Domain errors (``SwitchboardError``) become their status code with an ErrorInfo, plus
BadRequest field violations for INVALID_ARGUMENT and RetryInfo when a retry delay is
known. Anything else is a bug: the client gets INTERNAL with an error id and nothing
more, the log gets the same id with the traceback.

Inner interceptors refuse a call by returning a handler that raises a domain error
(or aborts); this one turns it into the status.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.server.api.status import rich_status
from switchboard.server.domain import InvalidArgument, SwitchboardError, Unavailable

_log = logging.getLogger(__name__)

# Details ride in a trailer, and gRPC drops or fails calls whose metadata passes ~8 KB.
_MAX_VIOLATIONS = 20
_MAX_VIOLATIONS_BYTES = 4096
_MAX_TEXT = 256
_MAX_MESSAGE = 1024

_BEHAVIOURS = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}

# The stubs make these generic; the run-time classes are not subscriptable.
if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class ErrorsInterceptor(_Interceptor):
    """Maps exceptions escaping a handler (of any streaming style) to rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler chosen by the rest of the chain."""
        handler: Handler | None = await continuation(handler_call_details)
        if handler is None:  # unknown method: gRPC answers UNIMPLEMENTED
            return None  # type: ignore[return-value]
        name = _BEHAVIOURS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, name)
        guarded = _guard(behaviour, handler_call_details.method)
        # RpcMethodHandler is a namedtuple at run time; the stubs do not say so.
        return handler._replace(**{name: guarded})  # type: ignore[attr-defined,no-any-return]


def status_of(error: SwitchboardError) -> status_pb2.Status:
    """The status a domain error reaches clients as."""
    message = _clip(error.message, _MAX_MESSAGE)
    details: list[Message] = []
    if isinstance(error, InvalidArgument):
        listed = _bad_request(error)
        left_off = len(error.violations) - len(listed.field_violations)
        if left_off:
            message += f" [{left_off} more violations not listed in the details]"
        details.append(listed)
    if isinstance(error, Unavailable) and error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(error.retry_after)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return rich_status(error.code, message, error.reason, error.metadata, details)


def _bad_request(error: InvalidArgument) -> error_details_pb2.BadRequest:
    listed = error_details_pb2.BadRequest()
    for violation in error.violations[:_MAX_VIOLATIONS]:
        listed.field_violations.add(
            field=_clip(violation.field, _MAX_TEXT),
            description=_clip(violation.description, _MAX_TEXT),
        )
        if listed.ByteSize() > _MAX_VIOLATIONS_BYTES:
            del listed.field_violations[-1]
            break
    return listed


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _guard(behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:  # every failure becomes a status
                await _abort(context, exc, method)

        return stream
    if not inspect.iscoroutinefunction(behaviour):
        # A synchronous handler runs on gRPC's thread pool, outside this event loop.
        return behaviour

    # Unary responses and streaming handlers that `await context.write()` alike.
    async def call(request: Any, context: Context) -> Any:
        try:
            return await behaviour(request, context)
        except Exception as exc:  # every failure becomes a status
            await _abort(context, exc, method)

    return call


async def _abort(context: Context, exc: Exception, method: str) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # the handler aborted with a status of its own
    if isinstance(exc, SwitchboardError):
        _log.debug("%s failed: %s %s", method, exc.code, exc.message)
        status = status_of(exc)
    else:
        error_id = uuid.uuid4().hex
        _log.error(
            "%s failed unexpectedly (error id %s)",
            method,
            error_id,
            exc_info=exc,
            extra={"error_id": error_id, "method": method},
        )
        status = rich_status(
            "INTERNAL",
            f"internal error (error id {error_id})",
            "INTERNAL",
            {"error_id": error_id},
        )
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)
