"""The outermost interceptor: every failure leaves as a ``google.rpc.Status`` with details.

Domain errors (``SwitchboardError``) become their status code with an ErrorInfo, plus
BadRequest field violations for INVALID_ARGUMENT and RetryInfo when a retry delay is
known. Anything else is a bug: the client gets INTERNAL with an error id and nothing
more, the log gets the same id with the traceback.

Inner interceptors refuse a call by returning a handler that raises a domain error
(or aborts); this one turns it into the status.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.server.api.status import rich_status
from switchboard.server.domain import InvalidArgument, SwitchboardError, Unavailable
from switchboard.server.interceptors.handlers import (
    Call,
    CallScope,
    Context,
    Handler,
    ServerInterceptor,
    wrap,
)

_log = logging.getLogger(__name__)

# Details ride in a trailer, and gRPC drops or fails calls whose metadata passes ~8 KB.
_MAX_VIOLATIONS = 20
_MAX_VIOLATIONS_BYTES = 4096
_MAX_TEXT = 256
_MAX_MESSAGE = 1024


class ErrorsInterceptor(ServerInterceptor):
    """Maps exceptions escaping a handler (of any streaming style) to rich statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler chosen by the rest of the chain."""
        handler = await continuation(handler_call_details)
        return wrap(handler, handler_call_details.method, _ErrorScope)  # type: ignore[return-value]


class _ErrorScope(CallScope):
    def __init__(self, call: Call, request: Any, context: Context) -> None:
        self._call = call
        self._context = context

    async def exited(self, exc: BaseException | None) -> None:
        """Turn a failure into a rich status."""
        if isinstance(exc, Exception):  # every failure becomes a status
            await _abort(self._context, exc, self._call.method)


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
    trailers = tuple(grpc_status.trailing_metadata)
    if isinstance(exc, Unavailable) and exc.retry_after is not None:
        # For HTTP-minded proxies and clients that do not read RetryInfo.
        seconds = max(1, math.ceil(exc.retry_after.total_seconds()))
        trailers += (("retry-after", str(seconds)),)
    await context.abort(grpc_status.code, grpc_status.details, trailers)
